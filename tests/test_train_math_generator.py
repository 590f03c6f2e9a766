"""scripts/train_math_generator.py on a tiny random Gemma 3: a few steps, LoRA and full fine-tune,
and a run stopped halfway then resumed ends with the weights of a run that was never stopped."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_math_generator.py"


def train_command(base, out, *extra):
    return [sys.executable, str(SCRIPT), "--base", str(base), "--out", str(out), "--problems", "48", "--steps", "6",
            "--batch-size", "2", "--save-every", "100", "--eval-every", "3", "--dev-problems", "4", "--threads", "1",
            *extra]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return {**{k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}}


@pytest.mark.parametrize("rank", ["4", "0"])
def test_a_few_steps_lower_the_loss_and_leave_only_the_weights(tiny_gemma, tmp_path, rank):
    out = tmp_path / "out"
    run = subprocess.run(train_command(tiny_gemma, out, "--rank", rank, "--lr", "1e-2"), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    import json

    log = json.loads((out / "training_log.json").read_text())["log"]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6]
    assert log[-1]["dev_loss"] < log[2]["dev_loss"]  # it learns, on problems it was not trained on
    assert not (out / "checkpoint").exists() and weights(out)


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(tiny_gemma, tmp_path):
    straight = subprocess.run(train_command(tiny_gemma, tmp_path / "straight", "--rank", "4"), capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    resumed = tmp_path / "resumed"
    first = subprocess.Popen(train_command(tiny_gemma, resumed, "--rank", "4"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in first.stdout:  # stop it as a person would, with Ctrl-C, once step 2 is done
        if '"step": 2,' in line:
            first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=600)
    assert first.returncode != 0 and "stopped at step" in err, err
    assert (resumed / "checkpoint" / "training_state.pt").exists()

    second = subprocess.run(train_command(tiny_gemma, resumed, "--rank", "4"), capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0 and "resuming at step" in second.stdout, second.stderr
    a, b = weights(tmp_path / "straight"), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    other = subprocess.run(train_command(tiny_gemma, tmp_path / "other", "--rank", "4", "--seed", "1"),
                           capture_output=True, text=True, timeout=600)
    assert not all(torch.equal(a[k], v) for k, v in weights(tmp_path / "other").items())  # the test can fail
    assert other.returncode == 0


def test_a_checkpoint_of_other_settings_is_refused(tiny_gemma, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(train_command(tiny_gemma, out, "--rank", "4"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in first.stdout:
        if '"step": 1,' in line:
            first.send_signal(signal.SIGTERM)
    first.communicate(timeout=600)
    again = subprocess.run(train_command(tiny_gemma, out, "--rank", "8"), capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "other settings" in again.stderr
