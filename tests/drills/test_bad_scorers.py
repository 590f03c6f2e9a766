"""Drill: a scorer that raises, returns NaN or the wrong shape, is slow, or hangs, through the engine and the CLI."""

import threading
import time

import pytest
import torch
from drill_helpers import finishes_within

from consensus import Budget, Ensemble, Proposals, Scorer, TopK, run_consensus
from consensus.core.engine import GeneratorError
from consensus.core.ensemble import NonFiniteEnergyError, ScorerError
from consensus.tasks.robot import cli as robot_cli


class Distance(Scorer):
    modality = "number"

    def energy(self, candidates, condition):
        return (torch.tensor(candidates, dtype=torch.float64) - 3.0).abs()


class Behaves(Scorer):
    """A scorer that misbehaves in one chosen way."""

    modality = "number"

    def __init__(self, how, name):
        self.how, self._name = how, name
        self.release = threading.Event()

    @property
    def name(self):
        return self._name

    def energy(self, candidates, condition):
        n = len(candidates)
        if self.how == "raise":
            raise RuntimeError("model exploded")
        if self.how == "nan":
            return torch.full((n,), float("nan"))
        if self.how == "half nan":
            return torch.tensor([float("nan") if i < n // 2 else 0.0 for i in range(n)], dtype=torch.float64)
        if self.how == "shape":
            return torch.zeros(n + 1)
        if self.how == "slow":
            time.sleep(0.2)
        if self.how == "hang":
            self.release.wait()  # until the test ends
        return torch.zeros(n, dtype=torch.float64)


def walk(condition, population, generator):
    return Proposals([float(x) for x in torch.randn(6, generator=generator) * 4], tokens=6, complete=[False] * 6)


def run(ensemble, item="problem-7"):
    return run_consensus(walk, ensemble, None, feedback=TopK(2), budget=Budget(iterations=3), item=item)


def test_a_raising_scorer_is_named_with_the_iteration_and_the_item():
    with pytest.raises(ScorerError, match=r"scorer exploding failed on 6 candidates: RuntimeError: model exploded "
                                          r"\(iteration 0 of item problem-7\)"):
        run(Ensemble([Distance(), Behaves("raise", "exploding")]))


def test_nan_and_wrong_shapes_are_named():
    with pytest.raises(NonFiniteEnergyError, match="scorer nan returned NaN/inf"):
        run(Ensemble([Distance(), Behaves("nan", "nan")]))
    with pytest.raises(ValueError, match=r"scorer shape returned \(7,\)"):
        run(Ensemble([Distance(), Behaves("shape", "shape")]))
    seen = []
    run_consensus(walk, Ensemble([Distance(), Behaves("half nan", "half")], nonfinite="drop"), None,
                  feedback=TopK(2), budget=Budget(iterations=3), callback=seen.append)
    for info in seen:  # the NaN half never survives
        assert all(i >= 3 for i in info["survivors"])
    with pytest.raises(ValueError, match="no candidate has a finite energy"):
        run(Ensemble([Distance(), Behaves("nan", "nan")], nonfinite="drop"))


def test_a_hanging_scorer_cannot_stall_the_run():
    hanging = Behaves("hang", "hanging")
    try:
        with pytest.raises(ScorerError, match="scorer hanging took more than its deadline of 0.5 s"):
            finishes_within(30, run, Ensemble([Distance(), hanging], deadline=0.5))
        skipped = finishes_within(30, run, Ensemble([Distance(), hanging], deadline=0.5, late="skip"))
        assert abs(skipped.best - 3.0) < 4 and skipped.iterations == 3  # the other expert decided alone
    finally:
        hanging.release.set()


def test_a_slow_scorer_within_its_deadline_counts():
    slow = Behaves("slow", "slow")
    result = run(Ensemble([Distance(), slow], deadline=5.0))
    assert result.seconds["slow"] >= 0.6  # three calls of 0.2 s, each waited for


def test_a_raising_generator_is_named_with_the_item():
    def broken(condition, population, generator):
        raise RuntimeError("out of memory")

    with pytest.raises(GeneratorError, match="the generator step broken failed at iteration 0 of item problem-7: RuntimeError"):
        run_consensus(broken, Ensemble([Distance()]), None, item="problem-7")


def test_the_cli_says_a_scorer_failed_in_one_line_with_exit_3(tmp_path, capsys):
    status = robot_cli.main(["--goal", "red bowl on top of blue mug", "--samples", "2", "--iterations", "1",
                             "--max-steps", "1", "--out", str(tmp_path / "run"),
                             "--scorer", "tests.fixtures.my_scorer:ExplodingScorer"])
    err = capsys.readouterr().err
    assert status == 3 and "scorer ExplodingScorer failed" in err and "model exploded" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
