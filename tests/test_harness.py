import json
import subprocess
import sys
import time

import pytest

from consensus.eval.harness import read_results, run_resumable

WORKER = """
import sys, time
from consensus.eval.harness import run_resumable
def solve(batch):
    for x in batch:
        time.sleep(0.05)
        yield {"square": x * x, "correct": x % 3 == 0}
run_resumable(list(range(60)), str, solve, sys.argv[1], batch_size=4, correct=lambda r: r["correct"])
"""


def test_killed_evaluation_resumes_without_losing_or_repeating(tmp_path):
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(out)], stderr=subprocess.DEVNULL)
    while len(read_results(out)) < 10:  # wait until it is well into the run
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup, as a crash or an OOM kill
    proc.wait()
    written = len(read_results(out))
    assert 10 <= written < 60
    with out.open("a") as f:
        f.write('{"id": "torn')  # the kill can also land mid-line
    solved = []

    def solve(batch):
        solved.extend(batch)
        return ({"square": x * x, "correct": x % 3 == 0} for x in batch)

    records = run_resumable(list(range(60)), str, solve, out, batch_size=4)
    assert [r["id"] for r in records] == [str(i) for i in range(60)]
    assert len(solved) == 60 - written and not set(map(str, solved)) & {r["id"] for r in records[:written]}
    lines = out.read_text().splitlines()
    assert len(lines) == 60 and all(json.loads(line)["square"] == int(json.loads(line)["id"]) ** 2 for line in lines)


def test_empty_set_and_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        run_resumable([], str, lambda b: [], tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="unique"):
        run_resumable([1, 1], lambda x: "same", lambda b: [{}] * len(b), tmp_path / "r.jsonl")


def test_progress_bar_shows_the_running_accuracy_of_records_done_and_resumed(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    solve = lambda batch: ({"right": x < 3} for x in batch)
    run_resumable(list(range(4)), str, solve, out, correct=lambda r: r["right"])
    assert "acc=0.750" in capsys.readouterr().err
    run_resumable(list(range(6)), str, solve, out, correct=lambda r: r["right"])  # 4 resumed, 2 new
    err = capsys.readouterr().err  # the resumed records' accuracy first, then with each new one
    assert err.index("acc=0.750") < err.index("acc=0.600") < err.index("acc=0.500")


def test_results_of_other_settings_are_refused_not_mixed(tmp_path):
    out = tmp_path / "results.jsonl"
    solve = lambda batch: ({"square": x * x} for x in batch)  # noqa: E731
    first = run_resumable([1, 2], str, solve, out, settings={"samples": 12, "iterations": 3})
    assert [r["settings"] for r in first] == [{"samples": 12, "iterations": 3}] * 2
    again = run_resumable([1, 2, 3], str, solve, out, settings={"samples": 12, "iterations": 3})
    assert [r["id"] for r in again] == ["1", "2", "3"]  # resumed, only 3 was new
    with pytest.raises(ValueError, match="other settings \\(differing: samples\\)"):
        run_resumable([1, 2, 3], str, solve, out, settings={"samples": 24, "iterations": 3})
    assert len(read_results(out)) == 3  # nothing written by the refused run
