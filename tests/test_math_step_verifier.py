"""The step-level (process) verifier's pipeline: partial solutions labelled by rollouts of the real generator,
a classifier trained on those soft labels by scripts/train_math_verifier.py, and StepVerifier reading it."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from consensus.scorers.text.verifier import StepVerifier
from consensus.tasks.math.data import training_template_problems

SCRIPTS = Path(__file__).parents[1] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rollout = _script("rollout_math_steps")


def test_step_prefixes_end_at_line_breaks_before_the_answer():
    solution = "He has 3 + 4 = 7 apples.\nThen 7 * 2 = 14.\n#### 14"
    assert rollout.step_prefixes(solution) == ["He has 3 + 4 = 7 apples.\n", "He has 3 + 4 = 7 apples.\nThen 7 * 2 = 14.\n"]
    assert rollout.step_prefixes("#### 14") == []


def test_chosen_solutions_put_the_right_ones_first_and_drop_duplicates():
    record = {"gold": "14", "samples": ["a = 3\n#### 3", "b = 14\n#### 14", "a = 3\n#### 3", "c = 5\n#### 5"]}
    assert rollout.chosen_solutions(record, 2) == [("b = 14\n#### 14", True), ("a = 3\n#### 3", False)]


def test_rollouts_value_a_sound_partial_solution_above_a_broken_one(gemma):
    problem = next(p for p in training_template_problems(20, seed=11) if p.solution.count("\n") >= 2)
    sound = rollout.step_prefixes(problem.solution.strip())[-1]  # every step but the answer line
    last = sound.rstrip("\n").split("\n")[-1]
    result = last.rsplit("=", 1)[1].strip().split()[0].lstrip("$£€")
    broken = sound[:-len(last) - 1] + last.replace(result, str(int(float(result)) + 7), 1) + "\n"
    values = rollout.rollout_values(gemma, problem.question, problem.answer, [sound, broken], 4, 0.7,
                                    torch.Generator().manual_seed(0))
    assert all(v in (0, 0.25, 0.5, 0.75, 1) for v in values)
    assert values[0] > values[1], (problem.question, sound, broken, values)


def _rollout_file(path: Path) -> Path:
    """Synthetic rollout records over two templates: partial solutions that use the question's numbers reached
    the answer, ones with numbers from nowhere did not (a structural signal the classifier can learn)."""
    lines = []
    for i in range(40):
        a, b = 3 + i, 5 + 2 * i
        question = f"Sam has {a} apples and buys {b} more. How many apples does he have?"
        steps = [{"prefix": f"Sam has {a} + {b} = {a + b} apples.\n", "value": 0.75 + 0.25 * (i % 2)},
                 {"prefix": f"Sam has {a + 91} + {b + 57} = {a + b + 148} apples.\n", "value": 0.25 * (i % 2)}]
        solutions = [{"text": f"Sam has {a} + {b} = {a + b} apples.\n#### {a + b}", "correct": True}]
        lines.append(json.dumps({"question": question, "gold": str(a + b), "template": f"t{i % 5}", "steps": steps,
                                 "solutions": solutions}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_step_verifier_trained_on_rollout_labels_ranks_by_them(tmp_path):
    out = tmp_path / "step-verifier"
    subprocess.run([sys.executable, str(SCRIPTS / "train_math_verifier.py"), "--problems", "0", "--epochs", "40",
                    "--rollouts", str(_rollout_file(tmp_path / "rollouts.jsonl")), "--out", str(out)], check=True)
    config = json.loads((out / "config.json").read_text())
    assert config["pairs"] == 40 * 3 and 0.5 < config["validation_auc"] <= 1
    question = "Ann has 12 pens and buys 30 more. How many pens does she have?"
    energy = StepVerifier(out).energy(["Ann has 12 + 30 = 42 pens.\n", "Ann has 77 + 64 = 141 pens.\n"], question)
    assert energy[0] < energy[1]


def test_training_without_any_data_says_what_to_give(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPTS / "train_math_verifier.py"), "--problems", "0",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode != 0 and "--rollouts" in run.stderr


def test_missing_step_verifier_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="rollout_math_steps.py"):
        StepVerifier(tmp_path)
