"""Resumable evaluation: one JSON line per example, appended (and synced to disk) as soon as it is done.

Restarting a killed run reads the lines already written and skips those examples, so no example
is lost or repeated. A line that is not a complete record (the kill arrived mid-write, a corrupt or
hand-edited line anywhere, a record without an id or of the wrong shape, a second record of one id) is never deleted:
it is moved, with its line number and why, to ``<file>.rejected``, a warning says so, and only
its example is redone. The run's settings are stored in every record, and a file holding records
of other settings is refused, never mixed. A write that fails (a full disk) leaves no torn line
(``consensus.core.files``). A progress bar shows the running accuracy and the ETA.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from consensus.core.files import LineWriter, json_lines, write_atomic

T = TypeVar("T")


def scan_results(path: str | Path, fields: dict[str, type | tuple[type, ...]] | None = None,
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The records of a results file, and its rejected lines as ``{"line", "why", "text"}``. A record is a JSON
    object with a string or integer ``id`` not seen before, holding each of ``fields`` with a value of its type."""
    path = Path(path)
    if not path.exists():
        return [], []
    records, rejected, seen = [], [], set()
    for line in json_lines(path):
        record = line.value
        why = line.why or _not_a_record(record, fields or {})
        if why is None and record["id"] in seen:
            why = f"repeats id {record['id']!r}"
        if why is not None:
            rejected.append({"line": line.number, "why": why, "text": line.text})
            continue
        seen.add(record["id"])
        records.append(record)
    return records, rejected


def _not_a_record(record: Any, fields: dict[str, type | tuple[type, ...]]) -> str | None:
    """Why a parsed line is not a results record, or None."""
    if not isinstance(record, dict) or "id" not in record:
        return "not a record with an id"
    if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
        return f"its id is a {type(record['id']).__name__}, not a string or an integer"
    for name, types in fields.items():
        if name not in record:
            return f"lacks the field {name!r}"
        if not isinstance(record[name], types) or (isinstance(record[name], bool) and bool not in _types(types)):
            return f"its {name!r} is a {type(record[name]).__name__}, not {' or '.join(t.__name__ for t in _types(types))}"
    return None


def _types(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def read_results(path: str | Path, fields: dict[str, type | tuple[type, ...]] | None = None) -> list[dict[str, Any]]:
    """The complete records of a results file (see ``scan_results``)."""
    return scan_results(path, fields)[0]


def check_settings(path: str | Path, settings: dict[str, Any]) -> None:
    """Refuse (ValueError naming the differing settings) a results file holding records of other settings.

    ``run_resumable`` calls it; a command line calls it first too, to fail before loading any model."""
    other = next((r.get("settings") for r in read_results(path) if r.get("settings") != settings), False)
    if other is not False:
        changed = sorted(k for k in {*(other or {}), *settings} if (other or {}).get(k) != settings.get(k))
        raise ValueError(f"{path} holds results made with other settings (differing: {', '.join(changed)}); "
                         "give another --out, or delete it to start over")


def _set_aside(path: Path, records: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> None:
    """Append the rejected lines to ``<path>.rejected`` and rewrite ``path`` to its records, atomically."""
    aside = path.with_name(path.name + ".rejected")
    with LineWriter(aside, durable=True) as f:
        for entry in rejected:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    lines = ", ".join(f"{e['line']} ({e['why']})" for e in rejected)
    print(f"warning: {path}: set aside line(s) {lines} in {aside}; their examples are run again", file=sys.stderr)


Solved = Iterable[tuple[T, dict[str, Any]]]


def in_order(solve: Callable[[list[T]], Iterable[dict[str, Any]]], batch_size: int = 1) -> Callable[[list[T]], Solved]:
    """The one-process way to solve what is left: batch after batch, in this process."""

    def run(todo: list[T]) -> Solved:
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            yield from zip(batch, solve(batch), strict=True)

    return run


def run_resumable(
    examples: Sequence[T],
    key: Callable[[T], str],
    solve: Callable[[list[T]], Iterable[dict[str, Any]]] | None,
    path: str | Path,
    *,
    batch_size: int = 1,
    correct: Callable[[dict[str, Any]], bool | dict[str, bool]] | None = None,
    description: str = "eval",
    settings: dict[str, Any] | None = None,
    executor: Callable[[list[T]], Solved] | None = None,
    fields: dict[str, type | tuple[type, ...]] | None = None,
) -> list[dict[str, Any]]:
    """Solve every example not yet in ``path`` and append its record; return all records.

    ``solve`` takes a batch of examples and yields one record per example, in order; each
    record gets ``"id": key(example)``. ``correct`` tells whether a record is right (or, as a dict, whether
    each named answer in it is); the progress bar shows the running mean of each. ``settings`` (the run's settings, JSON-able) are stored in every
    record, and a file holding records made with other settings is refused, never mixed.
    ``executor`` replaces the in-process loop: it takes the examples left and yields
    ``(example, record)`` as each is done, in any order (``consensus.distributed.sharded`` spreads
    them over Ray workers); the file is written here either way, one record at a time.
    ``fields`` ({name: type}) is the shape of a record: a line on disk without it (a hand edit) is set aside and its
    example run again, and a record ``solve`` returns without it is an error.
    """
    if not examples:
        raise ValueError("the example set is empty; check the data source and its size")
    keys = [key(e) for e in examples]
    if len(set(keys)) != len(keys):
        raise ValueError("example ids are not unique; a resumed run could not tell them apart")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        check_settings(path, settings)
    done, rejected = scan_results(path, fields)
    if rejected:
        _set_aside(path, done, rejected)
    done_ids = {r["id"] for r in done}
    todo = [e for e, k in zip(examples, keys) if k not in done_ids]
    wanted = set(keys)
    records = [r for r in done if r["id"] in wanted]
    bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc=description, dynamic_ncols=True)
    tally: dict[str, int] = {}  # right answers so far, per name that correct() gives

    def count(record: dict[str, Any]) -> None:
        outcome = correct(record)
        for name, right in outcome.items() if isinstance(outcome, dict) else [("acc", outcome)]:
            tally[name] = tally.get(name, 0) + bool(right)

    for record in records if correct else []:
        count(record)
    if tally:
        bar.set_postfix({name: f"{hits / len(records):.3f}" for name, hits in tally.items()})
    if executor is None:
        if solve is None:
            raise ValueError("run_resumable needs a solve function or an executor")
        executor = in_order(solve, batch_size)
    with LineWriter(path, durable=True) as out:  # durable: a record reported done survives a crash of the machine
        for example, record in executor(todo):
            record = {"id": key(example), **record, **({"settings": settings} if settings is not None else {})}
            if (why := _not_a_record(record, fields or {})) is not None:
                raise ValueError(f"the record of {record['id']!r} is not one this run can resume from: {why}")
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            records.append(record)
            if correct:
                count(record)
                bar.set_postfix({name: f"{hits / len(records):.3f}" for name, hits in tally.items()})
            bar.update(1)
    bar.close()
    order = {k: i for i, k in enumerate(keys)}
    return sorted(records, key=lambda r: order[r["id"]])
