"""Drill: a results file survives SIGKILL at random moments and a corrupt middle line, item for item."""

import json
import random
import subprocess
import sys
import time

from consensus.eval.harness import read_results, run_resumable

# Each item's value comes from its own seed, so any subset of items, run in any order, gives the same records.
WORKER = """
import random, sys, time
from consensus.eval.harness import run_resumable
def solve(batch):
    for i in batch:
        time.sleep(0.02)
        yield {"value": random.Random(1000 + i).random()}
run_resumable(list(range(30)), str, solve, sys.argv[1], settings={"drill": 1})
"""


def _run(out):
    return subprocess.run([sys.executable, "-c", WORKER, str(out)], stderr=subprocess.DEVNULL, check=True)


def test_ten_kills_and_a_corrupt_line_lose_and_repeat_nothing(tmp_path):
    reference = tmp_path / "uninterrupted.jsonl"
    _run(reference)
    out = tmp_path / "killed.jsonl"
    rng = random.Random(7)
    for kill in range(10):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(out)], stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.9, 1.3))  # start-up is about 1 s: some kills land before any item, most after
        proc.kill()  # SIGKILL: no cleanup, as a crash or an OOM kill
        proc.wait()
        if kill == 4 and len(read_results(out)) >= 6:
            lines = out.read_text().splitlines(keepends=True)
            lines[3] = '{"id": "3", "value": 0.5, garbage\n'  # a corrupt line in the middle
            out.write_text("".join(lines))
    _run(out)
    by_id = lambda path: {r["id"]: r for r in read_results(path)}  # noqa: E731
    assert by_id(out) == by_id(reference) and len(out.read_text().splitlines()) == 30  # item for item, once each
    rejected = (tmp_path / "killed.jsonl.rejected").read_text()
    if "garbage" not in rejected:  # the kill schedule gave too few lines to corrupt: corrupt now and resume
        lines = out.read_text().splitlines(keepends=True)
        lines[3] = '{"id": "3", "value": 0.5, garbage\n'
        out.write_text("".join(lines))
        _run(out)
        assert by_id(out) == by_id(reference)
        rejected = (tmp_path / "killed.jsonl.rejected").read_text()
    assert any("garbage" in json.loads(line)["text"] for line in rejected.splitlines())


def test_a_blank_line_or_a_record_without_id_is_set_aside_not_truncating(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    solve = lambda batch: ({"value": i * i} for i in batch)  # noqa: E731
    run_resumable(list(range(12)), str, solve, out)
    lines = out.read_text().splitlines(keepends=True)
    lines[4] = '{"value": 16}\n'  # line 5 of 12 loses its id
    lines.insert(8, "\n")  # and a blank line
    out.write_text("".join(lines))
    redone = []
    records = run_resumable(list(range(12)), str, lambda b: (redone.append(i) or {"value": i * i} for i in b), out)
    assert redone == [4] and [r["value"] for r in records] == [i * i for i in range(12)]
    assert "line(s) 5 (not a record with an id)" in capsys.readouterr().err
    assert json.loads((tmp_path / "results.jsonl.rejected").read_text())["line"] == 5


def test_a_resumed_trace_keeps_only_the_lines_of_finished_items(tmp_path):
    from consensus.core.trace import TraceWriter, keep_items, read_trace

    path = tmp_path / "trace.jsonl"
    with TraceWriter(path) as trace:
        for item, iterations in (("p-0", 3), ("p-1", 2)):  # p-1 was killed after two iterations
            for i in range(iterations):
                trace.write({"item": item, "iteration": i})
    with path.open("a") as f:
        f.write('{"item": "p-1", "iter')  # and mid-line
    keep_items(path, {"p-0"})
    assert [(r["item"], r["iteration"]) for r in read_trace(path)] == [("p-0", 0), ("p-0", 1), ("p-0", 2)]
