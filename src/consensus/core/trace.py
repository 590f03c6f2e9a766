"""The trace: one JSON object per engine iteration, appended to a JSON-lines file; one schema for every task.

Each line holds what happened in that iteration for one item (a problem, a question, a step of an
episode, a batch of images), so a run can be audited or plotted afterwards:

    item              what the run was about (a problem id, a question, ...), or null
    iteration         0, 1, ... within the run
    candidates        a short summary of every candidate (a text, "image 1x28x28", an action)
    energies          {"total": [...], "per_scorer": {name: [...]}}, or null when nothing scored
    survivors         indices of the candidates that went on
    feedback          {form name: what it did} (kept indices, the chosen token, the guidance step, ...)
    best_energy       the lowest total energy among the survivors (null when unscored)
    tokens            generator tokens spent in this iteration; generator_tokens, scorer_calls: so far
    seconds           {"generator": s, scorer name: s, ...} spent in this iteration

Non-finite numbers are written as null. Lines are flushed as they are written: a crash loses at
most the iteration in flight.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


TRACE_FIELDS: dict[str, tuple[type, ...]] = {
    "item": (str, int, type(None)),
    "iteration": (int,),
    "candidates": (list,),
    "energies": (dict, type(None)),
    "survivors": (list,),
    "feedback": (dict,),
    "best_energy": (float, int, type(None)),
    "tokens": (int,),
    "generator_tokens": (int,),
    "scorer_calls": (int,),
    "seconds": (dict,),
}


def validate_record(record: dict[str, Any]) -> None:
    """Raise ValueError unless ``record`` (one parsed trace line) follows the trace schema above."""
    missing = [k for k in TRACE_FIELDS if k not in record]
    if missing:
        raise ValueError(f"trace record lacks {missing}")
    for key, types in TRACE_FIELDS.items():
        if not isinstance(record[key], types) or isinstance(record[key], bool):
            raise ValueError(f"trace field {key!r} is {type(record[key]).__name__}, expected {types}")
    n = len(record["candidates"])
    if not all(isinstance(c, str) for c in record["candidates"]):
        raise ValueError("trace candidates must be summaries (strings)")
    if not all(isinstance(i, int) and 0 <= i < n for i in record["survivors"]):
        raise ValueError(f"trace survivors {record['survivors']} are not indices of the {n} candidates")
    energies = record["energies"]
    if energies is not None:
        if set(energies) != {"total", "per_scorer"} or len(energies["total"]) != n:
            raise ValueError("trace energies must be {'total': [one per candidate], 'per_scorer': {...}}")
        if any(len(v) != n for v in energies["per_scorer"].values()):
            raise ValueError("trace per-scorer energies must have one value per candidate")
    if not all(isinstance(v, (int, float)) for v in record["seconds"].values()):
        raise ValueError("trace seconds must be numbers")


SUMMARY_CHARS = 200


def summarize_candidate(candidate: Any) -> str:
    """A short, readable summary of one candidate for the trace: a text (cut), a tensor's shape, or its
    ``summary()`` / repr."""
    if isinstance(candidate, str):
        return candidate if len(candidate) <= SUMMARY_CHARS else candidate[: SUMMARY_CHARS - 1] + "…"
    if hasattr(candidate, "shape") and hasattr(candidate, "dtype"):
        return "tensor " + "x".join(str(d) for d in candidate.shape)
    text = candidate.summary() if hasattr(candidate, "summary") else repr(candidate)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


class TraceWriter:
    """Appends records to ``path`` as JSON lines; usable as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()  # runs in lockstep write from their own threads

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(_jsonable(record), ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drop_items(path: str | Path, items: set[Any]) -> None:
    """Rewrite a trace, atomically, without the lines of ``items``: on resuming a run, the partial lines of
    the items not yet done (the one that was killed) go, and their rerun writes them afresh. Lines of
    other items, even of other runs sharing the file, stay."""
    path = Path(path)
    if not path.exists():
        return
    gone = {_TORN, *items}
    kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.endswith("\n") and _item_of(line) not in gone]
    fresh = path.with_name(path.name + ".tmp")
    fresh.write_text("".join(kept), encoding="utf-8")
    os.replace(fresh, path)


_TORN = object()  # the item of a line that is not JSON (a torn or corrupt line, which goes too)


def _item_of(line: str) -> Any:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return _TORN
    return record.get("item") if isinstance(record, dict) else None


def read_trace(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a trace file; a torn last line (a crash mid-write) is skipped."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
