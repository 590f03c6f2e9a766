"""Sharded evaluation on a local Ray cluster the tests start: the same records as one process, each item once."""

import functools
import os
from pathlib import Path

from consensus.cli import main
from consensus.distributed.sharded import sharded
from consensus.eval.harness import read_results, run_resumable
from consensus.tasks.robot.experiment import episode_solver


def _without_seconds(path):
    return {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in read_results(path)}


def test_a_sharded_math_run_equals_the_one_process_run(ray_cluster, tiny_math_model, tmp_path):
    argv = ["math", "--source", "chain_sum", "--size", "6", "--method", "self-consistency", "--n", "2", "--model",
            str(tiny_math_model), "--shots", "1"]
    main([*argv, "--out", str(tmp_path / "one")])
    main([*argv, "--out", str(tmp_path / "sharded"), "--ray", "--workers", "2"])
    one, sharded_run = tmp_path / "one" / "results.jsonl", tmp_path / "sharded" / "results.jsonl"
    assert _without_seconds(sharded_run) == _without_seconds(one)


def test_a_sharded_robot_run_equals_the_one_process_run(ray_cluster, tmp_path):
    episodes = [(method, seed) for seed in range(3) for method in ("random", "view:front")]
    key = lambda e: f"{e[0]}/{e[1]}"  # noqa: E731
    run_resumable(episodes, key, episode_solver(2, 1), tmp_path / "one.jsonl")
    run_resumable(episodes, key, None, tmp_path / "sharded.jsonl",
                  executor=sharded(functools.partial(episode_solver, 2, 1), workers=2, num_cpus=0.5))
    assert _without_seconds(tmp_path / "sharded.jsonl") == _without_seconds(tmp_path / "one.jsonl")


def dies_once(marker: str):
    """A worker that kills its own process the first time it meets item 3 (as a lost node would)."""

    def solve(batch):
        for item in batch:
            if item == 3 and not Path(marker).exists():
                Path(marker).touch()
                os._exit(1)
            yield {"square": item * item}

    return solve


def test_a_worker_lost_mid_run_loses_and_repeats_no_item(ray_cluster, tmp_path):
    marker = tmp_path / "a worker died"
    records = run_resumable(list(range(8)), str, None, tmp_path / "r.jsonl",
                            executor=sharded(functools.partial(dies_once, str(marker)), workers=2, num_cpus=0.5))
    assert marker.exists()  # a worker was lost
    assert [r["square"] for r in records] == [i * i for i in range(8)]
    assert sorted(r["id"] for r in read_results(tmp_path / "r.jsonl")) == sorted(map(str, range(8)))  # once each
