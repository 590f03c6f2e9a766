"""Every example of the README, shell and Python, runs as written and does what the text says (so the README
cannot drift).

Each line of the README's bash blocks runs its ``consensus ...`` commands, in order, in a fresh folder holding
the repository's ``examples/`` and a copy of ``benchmarks/results/`` (and a one-problem ``test.jsonl``, the GSM8K file the
README's example reads), with one change only where the README gives a size or runs over a problem set: one
problem instead of many."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A key line each example must print, by subcommand.
EXPECTED = {
    "math": "accuracy (flexible)",
    "image": "wrote ",
    "vqa": "answer: ",
    "robot": "succeeded after",
    "report": "wrote ",
}


def readme_commands() -> list[list[str]]:
    """Each bash line's ``consensus`` commands, in order."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()  # drop a trailing comment
            parts = [part.strip().removeprefix(".venv/bin/") for part in line.split("&&")]
            commands = [part for part in parts if part.startswith("consensus ")]
            if commands:
                lines.append(commands)
    return lines


def small(argv: list[str]) -> list[str]:
    """One problem instead of a problem set; everything else as written."""
    if argv[1] != "math":
        return argv
    if "--size" in argv:
        i = argv.index("--size") + 1
        return argv if argv[i] == "0" else [*argv[:i], "1", *argv[i + 1:]]
    return [*argv, "--size", "1"]


def test_the_readme_has_an_example_of_every_subcommand():
    assert {shlex.split(c)[1] for line in readme_commands() for c in line} == set(EXPECTED)


@pytest.mark.parametrize("commands", readme_commands(), ids=" && ".join)
def test_readme_example_runs_as_written(commands, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results",
                    ignore=shutil.ignore_patterns("*.html"))  # a copy: the example writes a page beside the results
    (tmp_path / "test.jsonl").write_text(json.dumps({
        "question": "Ava has 3 bags of 4 apples. How many apples does she have?",
        "answer": "She has 3 * 4 = <<3*4=12>>12 apples.\n#### 12"}) + "\n")
    for command in commands:
        argv = small(shlex.split(command))
        done = subprocess.run([sys.executable, "-m", "consensus.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr[-3000:]}"
        assert EXPECTED[argv[1]] in done.stdout, done.stdout


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.parametrize("block", readme_python_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_readme_python_example_runs_as_written(block, tmp_path):
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
