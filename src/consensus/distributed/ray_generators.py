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

from consensus.distributed.ray_scorers import _import_ray, task_error
from consensus.generators.text.protocol import Completion


class _GeneratorActor:
    def __init__(self, build: Any, args: tuple, kwargs: dict):
        self.lm = build(*args, **kwargs)

    def name(self) -> str:
        return self.lm.name

    def sample(self, prompts: Sequence[str], n: int, options: dict[str, Any],
               state: torch.Tensor | None) -> tuple[list[list[Completion]], torch.Tensor | None]:
        generator = None
        if state is not None:
            generator = torch.Generator()
            generator.set_state(state)
        completions = self.lm.sample(prompts, n, generator=generator, **options)
        return completions, None if generator is None else generator.get_state()

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        return self.lm.continuation_logprobs(prompts, continuations)


class RemoteTextGenerator:
    """A ``TextGenerator`` whose model lives in a Ray actor (build it with ``remote_text_generator``)."""

    def __init__(self, actor: Any, name: str):
        self.actor, self.name = actor, name

    def _get(self, call: Any) -> Any:
        ray = _import_ray()
        try:
            return ray.get(call)
        except ray.exceptions.RayTaskError as err:
            raise task_error(err) from None

    def sample(self, prompts: Sequence[str], n: int = 1, *, generator: torch.Generator | None = None,
               **options: Any) -> list[list[Completion]]:
        if generator is not None and generator.device.type != "cpu":
            raise ValueError("a remote generator takes a CPU torch.Generator (its state travels to the actor)")
        state = None if generator is None else generator.get_state()
        completions, state = self._get(self.actor.sample.remote(list(prompts), n, options, state))
        if generator is not None:
            generator.set_state(state)  # advanced as a local draw would have advanced it
        return completions

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        return self._get(self.actor.continuation_logprobs.remote(list(prompts), list(continuations)))


def remote_text_generator(build: Any, *args: Any, num_cpus: float = 1, num_gpus: float = 0,
                          actor_options: dict[str, Any] | None = None, **kwargs: Any) -> RemoteTextGenerator:
    """``build(*args, **kwargs)`` (e.g. ``CausalLMGenerator.from_pretrained`` or ``load_gemma``) in a new actor."""
    ray = _import_ray()
    actor_class = ray.remote(_GeneratorActor).options(num_cpus=num_cpus, num_gpus=num_gpus, **(actor_options or {}))
    actor = actor_class.remote(build, args, kwargs)
    try:
        name = ray.get(actor.name.remote())
    except ray.exceptions.RayActorError as err:
        raise RuntimeError(f"the remote generator {build!r} failed to start: {err}") from err
    return RemoteTextGenerator(actor, name)
