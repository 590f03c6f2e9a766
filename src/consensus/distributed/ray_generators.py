"""A text generator in its own Ray actor (on its own GPU or node), behind the ``TextGenerator`` protocol.

``remote_text_generator(build, *args, num_gpus=1)`` builds the generator (a ``CausalLMGenerator``, or
any ``TextGenerator``) once inside an actor; the returned object forwards ``sample`` and
``continuation_logprobs``, so the solution- and line-level steps and the likelihood scorer use it as
they would a local one. The sampler's random generator travels as its state and comes back advanced,
so a seeded run draws the same tokens as with the local generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from consensus.distributed.ray_scorers import import_ray, task_error
from consensus.generators.text.protocol import Completion


class _GeneratorActor:
    def __init__(self, build: Any, args: tuple, kwargs: dict):
        self.lm = build(*args, **kwargs)

    def name(self) -> str:
        return self.lm.name

    def sample(self, prompts: Sequence[str], n: int, options: dict[str, Any], states: list[torch.Tensor] | None,
               per_prompt: bool) -> tuple[list[list[Completion]], list[torch.Tensor] | None]:
        generators = None if states is None else [torch.Generator() for _ in states]
        for generator, state in zip(generators or [], states or []):
            generator.set_state(state)
        chosen = generators if per_prompt or generators is None else generators[0]
        completions = self.lm.sample(prompts, n, generator=chosen, **options)
        return completions, None if generators is None else [g.get_state() for g in generators]

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        return self.lm.continuation_logprobs(prompts, continuations)


class RemoteTextGenerator:
    """A ``TextGenerator`` whose model lives in a Ray actor (build it with ``remote_text_generator``)."""

    def __init__(self, actor: Any, name: str):
        self.actor, self.name = actor, name

    def _get(self, call: Any) -> Any:
        ray = import_ray()
        try:
            return ray.get(call)
        except ray.exceptions.RayTaskError as err:
            raise task_error(err) from None

    def sample(self, prompts: Sequence[str], n: int = 1, *,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               **options: Any) -> list[list[Completion]]:
        per_prompt = isinstance(generator, (list, tuple))
        generators = list(generator) if per_prompt else None if generator is None else [generator]
        if any(g.device.type != "cpu" for g in generators or []):
            raise ValueError("a remote generator takes CPU torch.Generators (their state travels to the actor)")
        states = None if generators is None else [g.get_state() for g in generators]
        completions, states = self._get(self.actor.sample.remote(list(prompts), n, options, states, per_prompt))
        for g, state in zip(generators or [], states or []):
            g.set_state(state)  # advanced as a local draw would have advanced it
        return completions

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        return self._get(self.actor.continuation_logprobs.remote(list(prompts), list(continuations)))


def remote_text_generator(build: Any, *args: Any, num_cpus: float = 1, num_gpus: float = 0,
                          actor_options: dict[str, Any] | None = None, **kwargs: Any) -> RemoteTextGenerator:
    """``build(*args, **kwargs)`` (e.g. ``CausalLMGenerator.from_pretrained`` or ``load_gemma``) in a new actor."""
    ray = import_ray()
    actor_class = ray.remote(_GeneratorActor).options(num_cpus=num_cpus, num_gpus=num_gpus, **(actor_options or {}))
    actor = actor_class.remote(build, args, kwargs)
    try:
        name = ray.get(actor.name.remote())
    except ray.exceptions.RayActorError as err:
        raise RuntimeError(f"the remote generator {build!r} failed to start: {err}") from err
    return RemoteTextGenerator(actor, name)
