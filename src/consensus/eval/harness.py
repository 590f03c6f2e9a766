"""Resumable evaluation: one JSON line per example, appended as soon as it is done.

Restarting a killed run reads the lines already written and skips those examples, so no
example is lost or repeated; a torn last line (the kill arrived mid-write) is dropped and
its example redone. A progress bar shows the running accuracy and the ETA.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The complete records of a results file (a torn last line is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # only the last line can be torn: the file is append-only
    return records


def _truncate_torn_tail(path: Path, records: int) -> None:
    """Rewrite the file to its complete records, so appends start on a fresh line."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:records]
    path.write_text("".join(line if line.endswith("\n") else line + "\n" for line in lines), encoding="utf-8")


def run_resumable(
    examples: Sequence[T],
    key: Callable[[T], str],
    solve: Callable[[list[T]], Iterable[dict[str, Any]]],
    path: str | Path,
    *,
    batch_size: int = 1,
    correct: Callable[[dict[str, Any]], bool] | None = None,
    description: str = "eval",
    settings: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Solve every example not yet in ``path`` and append its record; return all records.

    ``solve`` takes a batch of examples and yields one record per example, in order; each
    record gets ``"id": key(example)``. ``correct`` tells whether a record is right; the progress
    bar shows its running mean. ``settings`` (the run's settings, JSON-able) are stored in every
    record, and a file holding records made with other settings is refused, never mixed.
    """
    if not examples:
        raise ValueError("the example set is empty; check the data source and its size")
    keys = [key(e) for e in examples]
    if len(set(keys)) != len(keys):
        raise ValueError("example ids are not unique; a resumed run could not tell them apart")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_results(path)
    if path.exists():
        _truncate_torn_tail(path, len(done))
    if settings is not None:
        other = next((r.get("settings") for r in done if r.get("settings") != settings), False)
        if other is not False:
            changed = sorted(k for k in {*(other or {}), *settings} if (other or {}).get(k) != settings.get(k))
            raise ValueError(f"{path} holds results made with other settings (differing: {', '.join(changed)}); "
                             "write to another file, or delete it to start over")
    done_ids = {r["id"] for r in done}
    todo = [e for e, k in zip(examples, keys) if k not in done_ids]
    wanted = set(keys)
    records = [r for r in done if r["id"] in wanted]
    hits = sum(correct(r) for r in records) if correct else 0
    bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc=description, dynamic_ncols=True)
    if correct and records:
        bar.set_postfix(acc=f"{hits / len(records):.3f}")
    with path.open("a", encoding="utf-8") as out:
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            for example, record in zip(batch, solve(batch), strict=True):
                record = {"id": key(example), **record, **({"settings": settings} if settings is not None else {})}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                records.append(record)
                if correct:
                    hits += correct(record)
                    bar.set_postfix(acc=f"{hits / len(records):.3f}")
                bar.update(1)
    bar.close()
    order = {k: i for i, k in enumerate(keys)}
    return sorted(records, key=lambda r: order[r["id"]])
