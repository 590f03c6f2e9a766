"""The trace: one JSON object per engine iteration, appended to a JSON-lines file; one schema for every task.

Each line holds what happened in that iteration for one item (a problem, a question, a step of an
episode, a batch of images), so a run can be audited or plotted afterwards:

    item              what the run was about (a problem id, a question, ...), or null
    iteration         0, 1, ... within the run
    candidates        a short summary of every candidate (a text, "image 1x28x28", an action)
    energies          {"total": [...], "per_scorer": {name: [...]}}, or null when nothing scored
    survivors         indices of the candidates that went on
    feedback          {form name: what it did} (kept indices, the chosen token, the guidance step, ...), in the
                      chain's order; a second form of one name is "Name#2", a third "Name#3"
    best_energy       the lowest total energy among the survivors (null when unscored)
    tokens            generator tokens spent in this iteration; generator_tokens, scorer_calls: so far
    seconds           {"generator": s, scorer name: s, ...} spent in this iteration

Non-finite numbers are written as null. Each line is written whole as it is made (``consensus.core.files``): a
crash loses at most the iteration in flight, and a write that fails leaves no torn line.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from consensus.core.files import LineWriter, json_lines, write_atomic


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
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in record["survivors"]):
        raise ValueError(f"trace survivors {record['survivors']} are not indices of the {n} candidates")
    energies = record["energies"]
    if energies is not None:
        total, per_scorer = energies.get("total"), energies.get("per_scorer")
        if set(energies) != {"total", "per_scorer"} or not _numbers(total, n) or not isinstance(per_scorer, dict):
            raise ValueError("trace energies must be {'total': [one number per candidate], 'per_scorer': {...}}")
        if not all(_numbers(v, n) for v in per_scorer.values()):
            raise ValueError("trace per-scorer energies must have one number (or null) per candidate")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in record["seconds"].values()):
        raise ValueError("trace seconds must be numbers")


def _numbers(values: Any, n: int) -> bool:
    """Whether ``values`` is a list of ``n`` numbers, null standing for a non-finite one."""
    return isinstance(values, list) and len(values) == n and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)


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
        self._file = LineWriter(self.path)
        self._lock = threading.Lock()  # runs in lockstep write from their own threads

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(_jsonable(record), ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)

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
    kept = [line.text for line in json_lines(path)
            if line.why is None and line.text.endswith("\n") and _item_of(line.value) not in items]
    write_atomic(path, "".join(kept))  # torn and corrupt lines go too


def _item_of(record: Any) -> Any:
    item = record.get("item") if isinstance(record, dict) else None
    return item if isinstance(item, (str, int)) else None


def read_trace(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a trace file: its lines that are JSON objects (a torn last line, from a crash
    mid-write, is skipped, and so is any line that is not an object)."""
    for line in json_lines(path):
        if isinstance(line.value, dict):
            yield line.value
