"""A run folder's manifest, ``run.json``: what a task's CLI wrote and how a report should show it.

Every task's CLI writes one run folder (trace, results, images) and this file in it, at the start of
the run and again at its end, so that a killed run can still be reported:

    task              the subcommand ("math", "image", "vqa", "robot")
    title             one line saying what was run
    command           the command line that made the folder
    settings          the run's settings, {name: value}
    summary           what the run printed at its end, {label: value} (empty while it runs)
    trace             the trace file (``consensus.core.trace``), relative to the folder, or null
    results           one JSON line per item (a problem's record; key "id"), or null
    columns           the results' fields to show in the table of items
    images            [{"path": ..., "caption": ...}] shown at the top (grids, an episode's GIF, video frames)
    candidate_images  a pattern for a candidate's thumbnail, "xhat0/{iteration:02d}-{candidate:02d}.png", or null
    state             "running", "finished", "interrupted" (SIGTERM, Ctrl-C) or "failed" (an error ended it)
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from consensus.core.files import write_atomic

MANIFEST = "run.json"
STATES = ("running", "finished", "interrupted", "failed")


def write_manifest(folder: str | Path, *, task: str, title: str, command: str = "",
                   settings: dict[str, Any] | None = None,
                   summary: dict[str, Any] | None = None, trace: str | None = "trace.jsonl",
                   results: str | None = None, columns: list[str] | None = None,
                   images: list[dict[str, str]] | None = None, candidate_images: str | None = None,
                   state: str = "running") -> Path:
    """Write ``folder/run.json`` atomically (fields above) and return its path."""
    if state not in STATES:
        raise ValueError(f"a run's state is one of {', '.join(STATES)}, not {state!r}")
    folder = Path(folder)
    manifest = {"task": task, "title": title, "command": command, "settings": settings or {},
                "summary": summary or {}, "trace": trace, "results": results, "columns": columns or [],
                "images": images or [], "candidate_images": candidate_images, "state": state}
    path = folder / MANIFEST
    write_atomic(path, json.dumps(manifest, indent=1, default=str) + "\n")
    return path


def report_hint(folder: str | Path) -> str:
    """The line a CLI prints at its end: the command that makes this run's report."""
    return f"report: consensus report {shlex.quote(str(folder))}"
