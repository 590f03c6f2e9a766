"""Drills: a run stopped by SIGTERM or Ctrl-C, a disk that fills up or is read-only, a results file edited by hand
into the wrong shape, and ``--scorer`` modules that misbehave as they are imported.

The runs are the real command line (self-consistency, sampled, so per-item seeding matters) on a tiny random LM,
so 30 items take seconds; each ends compared item for item with one uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from consensus.cli import LOCK, main
from consensus.core.files import json_lines
from consensus.eval.harness import read_results, scan_results
from consensus.report.manifest import MANIFEST

SIZE = 30
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def command(model, folder, size=SIZE):
    return [sys.executable, "-m", "consensus.cli", "math", "--source", "chain_sum", "--size", str(size), "--method",
            "self-consistency", "--n", "2", "--model", str(model), "--shots", "1", "--out", str(folder)]


def records_of(folder):
    """The records of a run folder by id, timings aside (they differ between runs, nothing else may)."""
    return {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in read_results(folder / "results.jsonl")}


def state_of(folder):
    return json.loads((folder / MANIFEST).read_text())["state"]


@pytest.fixture(scope="module")
def reference(tiny_math_model, tmp_path_factory):
    """The records of one uninterrupted run."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(command(tiny_math_model, folder), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert state_of(folder) == "finished"
    return records_of(folder)


def wait_until_running(process, folder):
    """Until the run holds its folder's lock and has said in its manifest that it runs, or has ended."""
    while process.poll() is None:
        try:
            if f"pid {process.pid}:" in (folder / LOCK).read_text() and state_of(folder) == "running":
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.01)


def test_sigterm_and_ctrl_c_stop_a_run_cleanly_and_it_resumes_to_the_uninterrupted_records(
        tmp_path, tiny_math_model, reference):
    folder = tmp_path / "stopped"
    out = folder / "results.jsonl"
    rng = random.Random(5)
    for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        before = len(read_results(out))
        process = subprocess.Popen(command(tiny_math_model, folder), env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        wait_until_running(process, folder)
        wanted = before + rng.randint(0, 3)  # 0: while the model loads, before any item
        while len(read_results(out)) < wanted and process.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))  # and at a random point of the item in flight
        process.send_signal(stop)
        error = process.communicate(timeout=120)[1]
        assert process.returncode == 128 + stop, error[-2000:]
        last = error.strip().splitlines()[-1]
        assert last == (f"consensus math: interrupted by {signal.Signals(stop).name}; every finished item is saved in "
                        f"{folder}: run the same command again to resume")
        assert state_of(folder) == "interrupted"
        assert scan_results(out)[1] == [], "a clean stop leaves no torn or partial line"
    assert len(read_results(out)) < SIZE, "every stop came mid-run"
    done = subprocess.run(command(tiny_math_model, folder), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert records_of(folder) == reference
    assert len(out.read_text().splitlines()) == SIZE and not (folder / "results.jsonl.rejected").exists()
    assert state_of(folder) == "finished"


@pytest.fixture
def small_disk(tmp_path):
    """A 16 KiB tmpfs: a real file system that fills up after a few lines."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    assert mounted.returncode == 0, f"this drill mounts a small tmpfs, as root (CI runs as root): {mounted.stderr}"
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def remount(disk, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], check=True)


def test_a_full_disk_stops_the_run_with_a_clear_error_and_no_torn_line(small_disk, tiny_math_model, reference):
    folder = small_disk / "run"
    full = subprocess.run(command(tiny_math_model, folder), env=ENV, capture_output=True, text=True)
    assert full.returncode == 3, full.stderr[-2000:]
    assert "no space is left on its device; free some space, then run the same command again" in full.stderr
    written = read_results(folder / "results.jsonl")
    assert 0 < len(written) < SIZE, "the disk filled mid-run"
    for name in ("results.jsonl", "trace.jsonl"):
        if (folder / name).exists():
            lines = list(json_lines(folder / name))
            assert all(line.why is None and line.text.endswith("\n") for line in lines), f"a torn line in {name}"
    remount(small_disk, "size=4m")  # space freed: the same command goes on from where it stopped
    done = subprocess.run(command(tiny_math_model, folder), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert records_of(folder) == reference and not (folder / "results.jsonl.rejected").exists()


def test_a_read_only_out_is_refused_at_once_new_or_resumed(small_disk, tiny_math_model, capsys):
    remount(small_disk, "size=4m")
    started = small_disk / "started"
    assert subprocess.run(command(tiny_math_model, started, size=2), env=ENV, capture_output=True).returncode == 0
    remount(small_disk, "ro")
    for folder, size in ((small_disk / "new", 2), (started, 3)):
        with pytest.raises(SystemExit) as exit_info:
            main(command(tiny_math_model, folder, size)[3:])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == (f"consensus math: error: cannot write {folder}: its file system is "
                                           "read-only; give an --out on a file system you can write to\n")


def test_results_edited_into_the_wrong_shape_are_set_aside_and_their_items_redone(
        tmp_path, tiny_math_model, reference):
    folder = tmp_path / "edited"
    assert subprocess.run(command(tiny_math_model, folder), env=ENV, capture_output=True).returncode == 0
    out = folder / "results.jsonl"
    lines = out.read_text().splitlines(keepends=True)
    record = json.loads(lines[4])
    lines[2] = json.dumps(list(json.loads(lines[2]).values())) + "\n"  # a list, not a record
    lines[4] = json.dumps({**record, "tokens": str(record["tokens"]), "correct": "true"}) + "\n"  # numbers as strings
    lines[6] = json.dumps({**json.loads(lines[6]), "id": [record["id"]]}) + "\n"  # an id that is a list
    lines[8] = "[" * 100_000 + "]" * 100_000 + "\n"  # deeper than any parser goes
    lines[10] = "x" * 5_000_000 + "\n"  # a huge line
    out.write_text("".join(lines))
    done = subprocess.run(command(tiny_math_model, folder), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert records_of(folder) == reference and len(out.read_text().splitlines()) == SIZE
    rejected = [json.loads(line) for line in (folder / "results.jsonl.rejected").read_text().splitlines()]
    assert [(r["line"], r["why"]) for r in rejected] == [
        (3, "not a record with an id"), (5, "its 'tokens' is a str, not int"),
        (7, "its id is a list, not a string or an integer"), (9, "nested too deeply to read"),
        (11, "not JSON (Expecting value)")]


@pytest.mark.parametrize(("spec", "said"), [
    ("tests.fixtures.scorer_module_raising:Anything",
     "importing 'tests.fixtures.scorer_module_raising' raised RuntimeError: this module needs a GPU; fix the module"),
    ("tests.fixtures.scorer_module_exiting:Anything",
     "importing 'tests.fixtures.scorer_module_exiting' raised SystemExit(4) (it calls sys.exit); fix the module"),
    ("tests.fixtures.scorer_module_noisy:NeedsWeights",
     "building NeedsWeights() raised FileNotFoundError: weights.pt not found next to the module"),
    ("../../etc/passwd:Scorer", "'../../etc/passwd' must be a module's dotted name"),
])
def test_a_scorer_module_that_fails_or_exits_as_it_loads_is_one_clear_error(spec, said, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["math", "--source", "chain_sum", "--size", "1", "--method", "solution", "--scorer", spec])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"consensus math: error: --scorer {spec!r}: ") and said in error and error.count("\n") == 1


def test_a_malformed_scorer_spec_imports_nothing(capsys):
    sys.modules.pop("tests.fixtures.scorer_module_noisy", None)
    with pytest.raises(SystemExit):
        main(["math", "--source", "chain_sum", "--size", "1", "--method", "solution", "--scorer",
              "tests.fixtures.scorer_module_noisy:NeedsWeights:heavy"])
    assert "the weight 'heavy' is not a number" in capsys.readouterr().err
    assert "tests.fixtures.scorer_module_noisy" not in sys.modules, "its side effects never ran"
