"""Sharded evaluation on Ray against one process: robot episodes per second with 1 and 2 workers.

The same episodes (the robot benchmark's, single front view, 12 candidates x 3 CEM rounds) are run
in-process and through ``consensus.distributed.sharded`` with 1 and 2 workers on a local cluster, each
into a fresh results file; the records are checked equal to the one-process run's.

    python benchmarks/sharded_evaluation.py [--episodes 12]

Writes benchmarks/results/sharded-evaluation.json and .md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

import ray
import torch

from consensus.distributed.sharded import connect, sharded
from consensus.eval.harness import read_results, run_resumable
from consensus.tasks.robot.experiment import episode_solver

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cores = os.cpu_count()
    connect(num_cpus=cores)
    episodes = [("view:front", seed) for seed in range(args.episodes)]
    key = lambda e: f"{e[0]}/{e[1]}"  # noqa: E731
    make = functools.partial(episode_solver, 12, 3)
    runs = {"one process": {"solve": make()}, **{f"Ray, {w} worker{'s' * (w > 1)}": {"executor": sharded(make, w)}
                                                 for w in (1, 2)}}
    seconds, records = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for label, how in runs.items():
            path = Path(folder) / f"{len(seconds)}.jsonl"
            start = time.perf_counter()
            run_resumable(episodes, key, how.get("solve"), path, executor=how.get("executor"), description=label)
            seconds[label] = time.perf_counter() - start
            records[label] = {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in read_results(path)}
    ray.shutdown()
    same = all(r == records["one process"] for r in records.values())
    base = seconds["one process"]
    report = {"cores": cores, "episodes": args.episodes, "seconds": seconds, "same_records": same,
              "episodes_per_second": {k: args.episodes / v for k, v in seconds.items()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sharded-evaluation.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Sharded evaluation: robot episodes, one process vs Ray workers", "",
             f"{args.episodes} episodes (front view, 12 candidates x 3 CEM rounds), {cores} cores, wall time including "
             f"each worker's start and segmenter load; records equal to the one-process run: {'yes' if same else 'NO'}.",
             "", "| run | seconds | episodes / s | time relative to one process |", "| --- | --- | --- | --- |"]
    lines += [f"| {k} | {v:.1f} | {args.episodes / v:.2f} | {v / base:.2f}× |" for k, v in seconds.items()]
    (RESULTS / "sharded-evaluation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
