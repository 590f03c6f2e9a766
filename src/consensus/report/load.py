"""Read what a report shows, forgivingly: a malformed or truncated file gives what is readable and a
warning naming each line that was not, never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.core.trace import validate_record
from consensus.eval.harness import scan_results
from consensus.report.confined import inside
from consensus.report.manifest import MANIFEST


@dataclass
class Run:
    """A run folder as read: its manifest, its trace records and result records, and what could not be read."""

    folder: Path
    manifest: dict[str, Any]
    trace: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_jsonl(path: Path, check: Callable[[dict[str, Any]], None] | None = None,
               warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The records of a JSON-lines file that parse (and pass ``check``); each other line adds a warning to
    ``warnings`` with its line number and why, and is skipped."""
    warnings = [] if warnings is None else warnings
    records = []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = number == len(lines) and not text.endswith("\n")
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
            if check is not None:
                check(record)
        except json.JSONDecodeError as e:
            why = "half-written last line (the run was stopped mid-write)" if torn else f"not JSON ({e.msg})"
            warnings.append(f"{path.name} line {number}: {why}; skipped")
            continue
        except ValueError as e:
            warnings.append(f"{path.name} line {number}: {e}; skipped")
            continue
        records.append(record)
    return records


def load_run(path: str | Path) -> Run:
    """A run folder (with ``run.json``, or at least a ``trace.jsonl``), or a trace file on its own."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a run folder or a trace file")
    warnings: list[str] = []
    if path.is_file():
        folder, manifest = path.parent, {"task": "run", "title": path.name, "trace": path.name}
    else:
        folder = path
        manifest_path = folder / MANIFEST
        if manifest_path.exists():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                manifest = {}
                warnings.append(f"{MANIFEST}: not JSON ({e.msg}); reporting the folder's trace and results alone")
        else:
            manifest = {}
        if not manifest:
            manifest = {"task": "run", "title": folder.name,
                        "trace": "trace.jsonl" if (folder / "trace.jsonl").exists() else None,
                        "results": "results.jsonl" if (folder / "results.jsonl").exists() else None}
        if not manifest.get("trace") and not manifest.get("results"):
            raise FileNotFoundError(f"{folder} holds no {MANIFEST}, trace.jsonl or results.jsonl; is it a run folder?")
    run = Run(folder, manifest, warnings=warnings)
    for key in ("trace", "results"):
        name = manifest.get(key)
        if not name:
            continue
        file = inside(folder, name, f"{MANIFEST} {key}", warnings)
        if file is None:
            continue
        if key == "trace":
            run.trace = read_jsonl(file, validate_record, warnings)
        else:
            run.results = read_results(file, warnings)
    return run


def read_results(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """A results file's records through the harness's reader (``scan_results``: one record per id); each line it
    rejects adds a warning naming it."""
    records, rejected = scan_results(path)
    warnings.extend(f"{path.name} line {r['line']}: {r['why']}; skipped" for r in rejected)
    return records
