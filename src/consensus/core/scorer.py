"""The scorer contract: one frozen model that gives every candidate an energy.

Every scorer maps a batch of candidates and one condition to a 1-D tensor of energies,
one per candidate, where **lower means the scorer is more satisfied**. A scorer never
mutates its inputs and holds no state shared with the loop, so it can live on its own
device or process. What it reads and whether its energy has a gradient with respect to
the candidate are declared once, as class attributes, so the loops can check them.

A scorer that reads images of a diffusion model's noisy samples may also declare ``reads_noise_level``:
it then gets the step's ``NoiseLevel`` as a keyword, so a classifier trained on noisy samples (classifier
guidance) or a smoothed scorer knows how noisy the sample behind its candidate is.

Several items can be scored in one call (``energy_items``: runs in lockstep share their scorers' calls as they
share their generator's); by default it is one ``energy`` per item.

Every scorer can be called in two halves, ``submit(candidates, condition) -> call`` and ``collect(call, timeout) ->
Tensor``; here they compute the energy at once. A scorer that runs elsewhere (``consensus.distributed``: a Ray
actor) sets ``runs_elsewhere`` and makes ``submit`` start the work and return at once; an Ensemble starts every such
call before it runs its local scorers, so remote experts work at the same time.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch


@dataclass(frozen=True)
class NoiseLevel:
    """How noisy the sample behind a diffusion step's candidates is.

    The candidates are the decoded clean predictions x̂0 of samples x_t at ``timestep``, where
    x_t = √ᾱ x̂0 + √(1−ᾱ) ε̂ with ᾱ = ``alpha_bar`` and ε̂ = ``eps``, the denoiser's noise estimate in the
    model's space ``[N, ...]`` (detached), so a scorer can rebuild x_t from a candidate.
    """

    timestep: int
    alpha_bar: float
    eps: torch.Tensor | None = None

    @property
    def noise_std(self) -> float:
        """√(1−ᾱ): the standard deviation of the noise in x_t."""
        return math.sqrt(max(0.0, 1.0 - self.alpha_bar))


class Scorer(ABC):
    """Base class of every scorer.

    Class attributes:
        modality: what a candidate is ("text", "image", "state", ...).
        differentiable: whether ``energy`` is differentiable with respect to the candidate,
            so that gradient-based feedback (diffusion guidance) may use it.
        reads_noise_level: whether ``energy`` takes a keyword ``noise_level`` (a ``NoiseLevel``, or None
            for clean candidates); the Ensemble passes it to such scorers only.
        runs_elsewhere: whether ``submit`` only starts the work (another process or machine does it), so an
            Ensemble submits to it before running its local scorers.
    """

    modality: ClassVar[str]
    differentiable: ClassVar[bool] = False
    reads_noise_level: ClassVar[bool] = False
    runs_elsewhere: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def energy(self, candidates: Sequence[Any], condition: Any) -> torch.Tensor:
        """Return a float tensor of shape ``[len(candidates)]``; lower is better."""

    def energy_at(self, candidates: Sequence[Any], condition: Any,
                  noise_level: NoiseLevel | None = None) -> torch.Tensor:
        """``energy``, given the noise level when this scorer reads it (``reads_noise_level``)."""
        if self.reads_noise_level:
            return self.energy(candidates, condition, noise_level=noise_level)
        return self.energy(candidates, condition)

    def submit(self, candidates: Sequence[Any], condition: Any, noise_level: NoiseLevel | None = None) -> Any:
        """Start scoring; ``collect`` gives the energies. Here the work is done now, and the call is its result."""
        return self.energy_at(candidates, condition, noise_level)

    def collect(self, call: Any, timeout: float | None = None) -> torch.Tensor:
        """The energies of a ``submit`` call (a TimeoutError past ``timeout`` seconds, for a scorer elsewhere)."""
        return call

    def energy_items(self, candidate_sets: Sequence[Sequence[Any]], conditions: Sequence[Any],
                     noise_levels: Sequence[NoiseLevel | None] | None = None) -> list[torch.Tensor]:
        """Several items' energies, one tensor per item: ``[energy_at(c, x, l) for each item]``. A scorer whose
        model pays per call (a forward pass that a larger batch fills better) overrides it to read every item's
        candidates in one call; it must return what the one-item calls would, within float tolerance."""
        levels = noise_levels if noise_levels is not None else [None] * len(conditions)
        return [self.energy_at(c, x, level) for c, x, level in zip(candidate_sets, conditions, levels)]

    def __repr__(self) -> str:
        return f"{self.name}(modality={self.modality!r}, differentiable={self.differentiable})"


def parse_scorer_spec(spec: str) -> tuple[str, str, float]:
    """``module:Class[:weight]`` read into its module, class and weight (default 1), without importing anything:
    a malformed spec is a ValueError saying how to write one."""
    if not isinstance(spec, str):
        raise ValueError(f"--scorer {spec!r}: write module:Class or module:Class:weight")
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--scorer {spec!r}: write module:Class or module:Class:weight, "
                         "e.g. tests.fixtures.my_scorer:LengthScorer:0.5")
    module_name, class_name = parts[0], parts[1]
    if not all(part.isidentifier() for part in module_name.split(".")) or not class_name.isidentifier():
        raise ValueError(f"--scorer {spec!r}: {module_name!r} must be a module's dotted name and {class_name!r} a "
                         "class name, e.g. tests.fixtures.my_scorer:LengthScorer")
    try:
        weight = float(parts[2]) if len(parts) == 3 else 1.0
    except ValueError:
        raise ValueError(f"--scorer {spec!r}: the weight {parts[2]!r} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"--scorer {spec!r}: the weight must be a finite number >= 0, got {weight}")
    return module_name, class_name, weight


def scorer_from_spec(spec: str) -> tuple[Scorer, float]:
    """A user's scorer from ``module:Class[:weight]`` (the CLIs' ``--scorer``): the spec is read first
    (``parse_scorer_spec``), so a malformed one imports nothing; then the class is imported from the module (found
    on the path or in the current directory), built with no arguments, and checked against the contract. Whatever
    the module's own code raises, or a ``sys.exit`` in it, is a ValueError naming the spec. Returns the scorer and
    its ensemble weight."""
    module_name, class_name, weight = parse_scorer_spec(spec)
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would, so a module next to the user's data is found
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--scorer {spec!r}: cannot import module {module_name!r} ({err}); give a module on "
                         "the Python path or under the current directory") from err
    except (Exception, SystemExit) as err:  # the module's own code failed; KeyboardInterrupt still stops the run
        raise ValueError(f"--scorer {spec!r}: importing {module_name!r} raised {_said(err)}; fix the module") from err
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"--scorer {spec!r}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise ValueError(f"--scorer {spec!r}: {class_name} is not a consensus.Scorer subclass; subclass it and "
                         "implement energy(candidates, condition)")
    try:
        scorer = cls()
    except TypeError as err:
        raise ValueError(f"--scorer {spec!r}: {class_name}() needs arguments ({err}); a scorer given on the "
                         "command line must build with none") from err
    except (Exception, SystemExit) as err:
        raise ValueError(f"--scorer {spec!r}: building {class_name}() raised {_said(err)}") from err
    return scorer, weight


def _said(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit({error.code!r}) (it calls sys.exit)"
    return f"{type(error).__name__}: {error}"
