"""Scorers as Ray actors: each expert in its own process (its own CPUs, GPU or node), called concurrently.

``remote(MyScorer, *args, num_gpus=1)`` builds the scorer inside a Ray actor, once, and returns a
``Scorer`` that forwards ``energy`` to it. An ``Ensemble`` that holds remote scorers submits all of
their calls before it runs the local ones and collects the results last, so one ensemble call costs
about its slowest scorer, not the sum of them (``Ensemble.__call__``). The remote scorer keeps the
contract: the same energies, and the same errors, since an exception raised in the actor is re-raised
here as its own type, for the Ensemble to name the scorer.

Ray is optional (``pip install 'consensus[ray]'``) and imported only here; connect first with
``ray.init()`` (a local cluster) or ``ray.init(address=...)`` (a cluster's head), or let the first
remote scorer start a local one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from consensus.core.scorer import Scorer


def import_ray():
    """ray, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("remote scorers need Ray: pip install 'consensus[ray]'") from err
    return ray


def task_error(err: Exception) -> Exception:
    """The exception a Ray task raised, as it raised it (Ray wraps it in a RayTaskError)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, Exception) else err.as_instanceof_cause()


class _ScorerActor:
    """The actor's body: builds the scorer once, then scores on request."""

    def __init__(self, build: Any, args: tuple, kwargs: dict):
        self.scorer = build(*args, **kwargs)
        if not isinstance(self.scorer, Scorer):
            raise TypeError(f"{build!r} built {self.scorer!r}, which is not a consensus.Scorer")

    def describe(self) -> tuple[str, str, bool]:
        return self.scorer.name, type(self.scorer).modality, type(self.scorer).reads_noise_level

    def energy(self, candidates: Sequence[Any], condition: Any) -> torch.Tensor:
        with torch.no_grad():  # a remote energy carries no autograd graph back
            return self.scorer.energy(candidates, condition)


class RemoteScorer(Scorer):
    """A scorer that lives in a Ray actor (build it with ``remote``). Not differentiable: gradients do not
    cross processes, so gradient guidance keeps its scorers local. ``modality`` is the built scorer's."""

    modality = "any"
    differentiable = False
    runs_elsewhere = True

    def __init__(self, actor: Any, name: str):
        self.actor, self._name = actor, name

    @property
    def name(self) -> str:
        return self._name

    def submit(self, candidates: Sequence[Any], condition: Any, noise_level: Any = None) -> Any:
        """Start a call on the actor; ``collect`` its result. (``remote`` refuses a scorer that reads the noise
        level, so there is none to pass on.)"""
        return self.actor.energy.remote(candidates, condition)

    def collect(self, call: Any, timeout: float | None = None) -> torch.Tensor:
        """The energies of a submitted call; an exception in the actor is raised here as its own type,
        and a call past ``timeout`` seconds raises TimeoutError."""
        ray = import_ray()
        try:
            return ray.get(call, timeout=timeout)
        except ray.exceptions.GetTimeoutError as err:
            raise TimeoutError(f"{self.name} did not answer within {timeout} s") from err
        except ray.exceptions.RayTaskError as err:
            raise task_error(err) from None

    def energy(self, candidates: Sequence[Any], condition: Any) -> torch.Tensor:
        return self.collect(self.submit(candidates, condition))


def remote(build: Any, *args: Any, num_cpus: float = 1, num_gpus: float = 0, name: str | None = None,
           actor_options: dict[str, Any] | None = None, **kwargs: Any) -> RemoteScorer:
    """``build(*args, **kwargs)`` (a Scorer class or any function returning a Scorer) inside a new Ray actor.

    ``num_cpus`` and ``num_gpus`` may be fractional (two scorers sharing a GPU: ``num_gpus=0.5``);
    ``actor_options`` passes any other Ray actor option, such as a placement on a node
    (``{"resources": {"node:10.0.0.2": 0.01}}`` or a ``scheduling_strategy``). The model loads once, in
    the actor. The scorer keeps the built scorer's name and modality (its class declares them)."""
    ray = import_ray()
    actor_class = ray.remote(_ScorerActor).options(num_cpus=num_cpus, num_gpus=num_gpus, **(actor_options or {}))
    actor = actor_class.remote(build, args, kwargs)
    try:
        own_name, modality, reads_noise_level = ray.get(actor.describe.remote())
    except ray.exceptions.RayActorError as err:
        raise RuntimeError(f"the remote scorer {build!r} failed to start: {err}") from err
    if reads_noise_level:
        ray.kill(actor)
        raise ValueError(f"{own_name} reads the diffusion step's noise level, which stays with the local loop; "
                         "keep noise-aware and smoothed scorers local (in the Ensemble directly)")
    scorer = RemoteScorer(actor, name or own_name)
    scorer.modality = modality  # what the built scorer's class declares
    return scorer
