"""Drill: a results file survives SIGKILL at random moments and a corrupt middle line, item for item."""

import json
import random
import subprocess
import sys
import time

from consensus.eval.harness import read_results, run_resumable


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


def test_a_resumed_trace_drops_only_the_lines_of_unfinished_items(tmp_path):
    from consensus.core.trace import TraceWriter, drop_items, read_trace

    path = tmp_path / "trace.jsonl"
    with TraceWriter(path) as trace:
        trace.write({"item": "another run's item", "iteration": 0})  # a file shared with another run
        for item, iterations in (("p-0", 3), ("p-1", 2)):  # p-1 was killed after two iterations
            for i in range(iterations):
                trace.write({"item": item, "iteration": i})
    with path.open("a") as f:
        f.write('{"item": "p-1", "iter')  # and mid-line
    drop_items(path, {"p-1", "p-2"})  # the items of this run not done yet
    assert [(r["item"], r["iteration"]) for r in read_trace(path)] == [
        ("another run's item", 0), ("p-0", 0), ("p-0", 1), ("p-0", 2)]


def test_a_math_run_killed_ten_times_equals_an_uninterrupted_one(tmp_path, tiny_math_model):
    """The real command line (self-consistency: sampled, so per-item seeding matters) on a tiny random LM, so
    30 items take seconds."""
    model = tiny_math_model
    command = [sys.executable, "-m", "consensus.cli", "math", "--source", "chain_sum", "--size", "30", "--method",
               "self-consistency", "--n", "2", "--model", str(model), "--shots", "1"]
    env = {**__import__("os").environ, "TQDM_DISABLE": "1"}
    reference = tmp_path / "uninterrupted"
    done = subprocess.run([*command, "--out", str(reference)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "killed"
    out = folder / "results.jsonl"
    rng = random.Random(3)
    for kill in range(10):
        before = len(read_results(out))
        proc = subprocess.Popen([*command, "--out", str(folder)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wanted = before + rng.randint(1, 3)  # kill after a few more items: mid-run, at a random item
        while len(read_results(out)) < wanted and proc.poll() is None:
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no cleanup, as a crash or an OOM kill
        proc.wait()
        if kill == 4:  # and a corrupt line in the middle of what is written
            lines = out.read_text().splitlines(keepends=True)
            lines[len(lines) // 2] = '{"id": "chain_sum-2x1-0-3", "text": garbage\n'
            out.write_text("".join(lines))
    done = subprocess.run([*command, "--out", str(folder)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731 - timings differ, nothing else
    by_id = lambda path: {r["id"]: strip(r) for r in read_results(path)}  # noqa: E731
    assert by_id(out) == by_id(reference / "results.jsonl")
    assert len(out.read_text().splitlines()) == 30  # item for item, once each
    rejected = [json.loads(line) for line in (folder / "results.jsonl.rejected").read_text().splitlines()]
    assert any("garbage" in entry["text"] for entry in rejected)
