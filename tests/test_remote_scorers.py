"""Scorers as Ray actors (consensus.distributed.ray_scorers) on a local cluster the tests start."""

import time

import pytest
import torch

from consensus import Ensemble, Scorer
from consensus.core.ensemble import NonFiniteEnergyError, ScorerError
from consensus.distributed.ray_scorers import remote as make_remote
from consensus.scorers.text import AnswerAgreement, ArithmeticVerifier

def remote(build, *args):
    return make_remote(build, *args, num_cpus=0.5)  # fractional: the 2-CPU test cluster never runs out


SOLUTIONS = ["3 * 4 = 12\n#### 12", "3 + 4 = 9\n#### 9", "3 * 4 = 12, so 12\n#### 12", "no computation"]


class Clock(Scorer):
    """Sleeps, and returns when it started and ended (so a test can see two calls overlap in time)."""

    modality = "text"

    def __init__(self, seconds: float, name: str):
        self.seconds, self._name = seconds, name

    @property
    def name(self):
        return self._name

    def energy(self, candidates, condition):
        start = time.time()
        time.sleep(self.seconds)
        return torch.tensor([start, time.time()] + [0.0] * (len(candidates) - 2), dtype=torch.float64)


class Broken(Scorer):
    modality = "text"

    def __init__(self, how: str):
        self.how = how

    def energy(self, candidates, condition):
        if self.how == "raise":
            raise RuntimeError("model exploded")
        if self.how == "bad input":
            raise ValueError("this scorer reads images")
        return torch.full((len(candidates),), float("nan"))


def test_remote_energies_equal_local_ones(ray_cluster):
    local = Ensemble([ArithmeticVerifier(), AnswerAgreement()], normalization="zscore")
    far = Ensemble([remote(ArithmeticVerifier), remote(AnswerAgreement)], normalization="zscore")
    assert far.names == local.names
    near, away = local(SOLUTIONS, "How many?"), far(SOLUTIONS, "How many?")
    torch.testing.assert_close(away.total, near.total)
    for name in local.names:
        torch.testing.assert_close(away.per_scorer[name], near.per_scorer[name])


def test_remote_scorers_work_at_the_same_time(ray_cluster):
    ensemble = Ensemble([remote(Clock, 1.0, "a"), remote(Clock, 1.0, "b")])
    result = ensemble(["x", "y", "z"], None)
    (start_a, end_a), (start_b, end_b) = (result.per_scorer[n][:2].tolist() for n in ("a", "b"))
    assert start_b < end_a and start_a < end_b  # the two calls overlapped


def test_remote_errors_are_the_local_ones(ray_cluster):
    with pytest.raises(ScorerError, match="scorer Broken failed on 4 candidates: RuntimeError: model exploded"):
        Ensemble([remote(Broken, "raise")])(SOLUTIONS, None)
    with pytest.raises(ValueError, match="scorer Broken: this scorer reads images"):
        Ensemble([remote(Broken, "bad input")])(SOLUTIONS, None)
    with pytest.raises(NonFiniteEnergyError, match="scorer Broken returned NaN/inf"):
        Ensemble([remote(Broken, "nan")])(SOLUTIONS, None)


def test_a_hung_remote_scorer_meets_the_deadline(ray_cluster):
    late = Ensemble([ArithmeticVerifier(), remote(Clock, 30.0, "slow")], deadline=0.5, late="skip")
    result = late(SOLUTIONS, None)
    assert set(result.per_scorer) == {"ArithmeticVerifier"}


def test_a_remote_generator_samples_what_the_local_one_does(ray_cluster, tiny_lm, tmp_path):
    from consensus.distributed.ray_generators import remote_text_generator
    from consensus.generators import CausalLMGenerator, TextGenerator
    from consensus.scorers.text import LMLikelihood

    tiny_lm.model.save_pretrained(tmp_path / "lm")
    tiny_lm.tokenizer.save_pretrained(tmp_path / "lm")
    far = remote_text_generator(CausalLMGenerator.from_pretrained, str(tmp_path / "lm"), num_cpus=0.5)
    near = CausalLMGenerator.from_pretrained(str(tmp_path / "lm"))
    assert isinstance(far, TextGenerator)
    seeds = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(2):  # twice: the generator's state comes back advanced, as locally
        local = near.sample(["Question: What is 2 + 3?\nAnswer:"], 3, max_new_tokens=6, generator=seeds[0])
        remote_ = far.sample(["Question: What is 2 + 3?\nAnswer:"], 3, max_new_tokens=6, generator=seeds[1])
        assert [[c.text for c in row] for row in remote_] == [[c.text for c in row] for row in local]
    candidates = [c.text for c in local[0]]
    torch.testing.assert_close(LMLikelihood(far).energy(candidates, "2 + 3?"),
                               LMLikelihood(near).energy(candidates, "2 + 3?"))
