"""Sharded evaluation on Ray: the examples of a run spread over a pool of workers, each loading its models once.

``sharded(make_solve, workers=2)`` is an executor for ``consensus.eval.harness.run_resumable``: each
worker is a Ray actor that calls ``make_solve()`` once (loading the models) and then solves one example
at a time; records stream back to the one process that writes the results file, so resuming, settings
and set-aside lines work exactly as in a one-process run. A worker that is lost mid-run (its process
killed, its node gone) is replaced and its example given to the pool again: the file gets every
example exactly once. Each example draws its randomness from its own seed (the tasks' rule), so the
records equal a one-process run's, whatever worker solved them and in whatever order.

    ray.init()                       # or ray.init(address="auto") on a cluster (see the README)
    run_resumable(problems, key, None, "runs/math.jsonl", executor=sharded(make_solve, workers=4))
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from consensus.distributed.ray_scorers import import_ray, task_error

T = TypeVar("T")
MAX_RESTARTS = 10  # lost workers replaced in one run before it gives up (a crash loop is a bug, not bad luck)


class _Worker:
    def __init__(self, make_solve: Callable[[], Callable[[list[Any]], Iterable[dict[str, Any]]]]):
        self.solve = make_solve()

    def solve_batch(self, batch: list[Any]) -> list[dict[str, Any]]:
        return list(self.solve(batch))


def add_ray_options(parser: argparse.ArgumentParser, items: str = "items") -> None:
    """``--ray [ADDRESS]`` and ``--workers N``: the options of every command that can shard its evaluation."""
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help=f"spread the {items} over Ray workers: a local cluster, or the cluster at ADDRESS")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (with --ray), each loading the models once")


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address``, or start a local one (``address`` None or "local"), once."""
    ray = import_ray()
    if ray.is_initialized():
        return
    if address in (None, "local"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


def sharded(make_solve: Callable[[], Callable[[list[T]], Iterable[dict[str, Any]]]], workers: int = 2,
            num_cpus: float = 1, num_gpus: float = 0,
            batch_size: int = 1) -> Callable[[list[T]], Iterable[tuple[T, dict[str, Any]]]]:
    """An executor that solves the examples left over ``workers`` Ray actors (each ``num_cpus``/``num_gpus``).

    ``make_solve`` (picklable: a module-level function or a ``functools.partial`` of one) runs once in
    each worker and returns the task's ``solve(batch) -> records``. Examples go out in the batches of
    ``batch_size`` consecutive examples that a one-process run would form, so a task that batches
    (greedy decoding of several problems at once) computes exactly what it would in one process."""
    if workers < 1 or batch_size < 1:
        raise ValueError(f"a sharded run needs workers >= 1 and batch_size >= 1, got {workers}, {batch_size}")

    def run(todo: list[T]) -> Iterable[tuple[T, dict[str, Any]]]:
        ray = import_ray()
        actor = ray.remote(_Worker).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)
        queue: deque[list[T]] = deque(todo[i:i + batch_size] for i in range(0, len(todo), batch_size))
        pool = [actor.remote(make_solve) for _ in range(min(workers, len(queue)))]
        pending: dict[Any, tuple[int, list[T]]] = {}
        restarts = 0

        def dispatch(slot: int) -> None:
            batch = queue.popleft()
            pending[pool[slot].solve_batch.remote(batch)] = (slot, batch)

        for slot in range(len(pool)):
            dispatch(slot)
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            slot, batch = pending.pop(ready)
            try:
                records = ray.get(ready)
            except ray.exceptions.RayActorError as err:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise RuntimeError(f"{restarts} workers were lost in this run (a worker that cannot load its "
                                       f"models fails every time); the last: {err}") from None
                pool[slot] = actor.remote(make_solve)  # a fresh worker; the batch goes back to the pool
                queue.appendleft(batch)
            except ray.exceptions.RayTaskError as err:
                raise task_error(err) from None
            else:
                yield from zip(batch, records, strict=True)
            if queue:
                dispatch(slot)

    return run
