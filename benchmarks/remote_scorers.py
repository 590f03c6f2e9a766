"""Scorers as Ray actors against the same scorers in-process: wall time of one ensemble call.

Three scorers of deliberately equal cost (each a fixed CPU workload on one thread: 40 rounds of a
384x384 matrix product) are called as one Ensemble, in-process (one after another) and as three Ray
actors (concurrently), interleaved, after a warm-up call each; the median of the repeats is reported
with the ratio remote / local. On a machine with at least three free cores the ideal ratio is 1/3;
on this project's 2-core machine it is 1/2 at best (two actors at a time).

    python benchmarks/remote_scorers.py [--repeats 7]

Writes benchmarks/results/remote-scorers.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import ray
import torch

from consensus import Ensemble, Scorer
from consensus.distributed.ray_scorers import remote
from consensus.distributed.sharded import connect

RESULTS = Path(__file__).resolve().parent / "results"


class Busy(Scorer):
    """A fixed amount of CPU work on one thread, then an energy per candidate."""

    modality = "text"

    def __init__(self, name: str, size: int = 384, rounds: int = 40):
        self._name, self.size, self.rounds = name, size, rounds

    @property
    def name(self) -> str:
        return self._name

    def energy(self, candidates, condition):
        torch.set_num_threads(1)
        x = torch.randn(self.size, self.size, generator=torch.Generator().manual_seed(0))
        for _ in range(self.rounds):
            x = torch.tanh(x @ x / self.size)
        return torch.full((len(candidates),), float(x.mean()), dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cores = os.cpu_count()
    connect(num_cpus=cores)  # Busy, defined here, reaches the actors by value (cloudpickle)
    names = ("a", "b", "c")
    ensembles = {"in-process": Ensemble([Busy(n) for n in names]),
                 "Ray actors": Ensemble([remote(Busy, n, num_cpus=cores / 3) for n in names])}
    candidates = [f"candidate {i}" for i in range(8)]
    seconds: dict[str, list[float]] = {k: [] for k in ensembles}
    for repeat in range(args.repeats + 1):
        for label, ensemble in ensembles.items():
            start = time.perf_counter()
            ensemble(candidates, None)
            if repeat:  # the first round warms up (actor start-up, first allocation)
                seconds[label].append(time.perf_counter() - start)
    ray.shutdown()
    median = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = median["Ray actors"] / median["in-process"]
    report = {"cores": cores, "repeats": args.repeats, "median_seconds": median, "ratio_remote_to_local": ratio,
              "seconds": seconds}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "remote-scorers.json").write_text(json.dumps(report, indent=1) + "\n")
    table = "\n".join([
        "# Three equal scorers: in-process vs Ray actors (one ensemble call)", "",
        f"{cores} cores, median of {args.repeats} interleaved calls after a warm-up (`python benchmarks/remote_scorers.py`).",
        "", "| ensemble | s / call | ratio |", "| --- | --- | --- |",
        f"| in-process (one after another) | {median['in-process']:.3f} | 1.00× |",
        f"| Ray actors (concurrent) | {median['Ray actors']:.3f} | {ratio:.2f}× |", ""])
    (RESULTS / "remote-scorers.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
