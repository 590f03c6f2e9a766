"""Read what a report shows, forgivingly: a malformed or truncated file gives what is readable and a
warning naming each line that was not, never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.core.files import json_lines
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
    for line in json_lines(path):
        why = line.why
        if why is None and not isinstance(line.value, dict):
            why = f"a JSON {type(line.value).__name__}, not an object"
        if why is None and check is not None:
            try:
                check(line.value)
            except ValueError as e:
                why = str(e)
        if why is not None:
            warnings.append(f"{path.name} line {line.number}: {why}; skipped")
            continue
        records.append(line.value)
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
        manifest = read_manifest(folder, warnings)
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


MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "task": (str,), "title": (str,), "command": (str,), "settings": (dict,), "summary": (dict,),
    "trace": (str, type(None)), "results": (str, type(None)), "columns": (list,), "images": (list,),
    "candidate_images": (str, type(None)), "state": (str,),
}


def read_manifest(folder: Path, warnings: list[str]) -> dict[str, Any]:
    """The folder's ``run.json`` as a dict of the fields it may hold (``consensus.report.manifest``), each of its
    type; a field of another type (a hand edit) is left out with a warning, and an unreadable file gives ``{}``."""
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        warnings.append(f"{MANIFEST}: not readable JSON ({e}); reporting the folder's trace and results alone")
        return {}
    if not isinstance(manifest, dict):
        warnings.append(f"{MANIFEST}: a JSON {type(manifest).__name__}, not an object; reporting the folder's trace "
                        "and results alone")
        return {}
    kept = {}
    for name, value in manifest.items():
        types = MANIFEST_FIELDS.get(name)
        if types is not None and not isinstance(value, types):
            warnings.append(f"{MANIFEST}: its {name!r} is a {type(value).__name__}; left out")
        elif types is not None:
            kept[name] = value
    if any(not isinstance(column, str) for column in kept.get("columns", [])):
        warnings.append(f"{MANIFEST}: its 'columns' holds names that are not strings; those are left out")
        kept["columns"] = [column for column in kept["columns"] if isinstance(column, str)]
    return kept


def read_results(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """A results file's records through the harness's reader (``scan_results``: one record per id); each line it
    rejects adds a warning naming it."""
    records, rejected = scan_results(path)
    warnings.extend(f"{path.name} line {r['line']}: {r['why']}; skipped" for r in rejected)
    return records
