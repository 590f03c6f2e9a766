"""One run per folder at a time: a second run into a folder another process is running into is refused at once,
naming the holder's pid and command, with exit status 2; a holder killed with SIGKILL leaves no stale lock."""

import os
import signal
import subprocess
import sys
import time

import pytest

from consensus.cli import LOCK, fresh_run_dir, main

HOLD = """
import sys, time
from pathlib import Path
from consensus.cli import lock_run_folder
lock_run_folder(Path(sys.argv[1]), "consensus math --out " + sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process running into a folder (it takes the lock as a run does, then works for two minutes)."""
    folder = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    yield folder, process
    process.kill()
    process.wait()


def test_a_second_run_into_a_busy_folder_is_refused_naming_the_holder(holder, tiny_math_model, capsys):
    folder, process = holder
    argv = ["math", "--source", "chain_sum", "--size", "2", "--method", "greedy", "--model", str(tiny_math_model),
            "--shots", "1", "--out", str(folder)]
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and time.monotonic() - start < 30, "refused at once, before any model loads"
    assert f"pid {process.pid}" in error and f"consensus math --out {folder}" in error and "in use" in error
    assert not (folder / "results.jsonl").exists()
    process.send_signal(signal.SIGKILL)  # the holder dies without a word: its lock goes with it
    process.wait()
    main(argv)
    assert len((folder / "results.jsonl").read_text().splitlines()) == 2
    assert f"pid {os.getpid()}" in (folder / LOCK).read_text()


def test_a_new_run_passes_over_an_empty_folder_another_run_has_just_taken(holder):
    folder, _ = holder
    assert fresh_run_dir(folder) == folder.with_name("run-2")
