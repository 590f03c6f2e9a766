"""The embedded default experiment: the committed Fashion-MNIST generator guided by the committed scorers.

Runs with no download. Two sets of settings:

- plain gradient guidance (the paper's form; ``benchmarks/image_benchmark.py``), chosen with the
  guidance scorers only, never the evaluation models: on 50 samples, guide with one scorer and count
  how often the other two see the asked class; a constant step of 0.3 transferred best (0.1 too weak;
  0.5 and the fading schedules gave samples that fool only the guiding scorer);
- guidance that stays on the data manifold (the ``consensus image`` default), chosen for the ensemble
  by ``benchmarks/image_guidance_search.py``'s rule on validation seeds disjoint from the benchmark's
  (the best FID among settings with held-out accuracy at least 0.9): the noise-aware scorers, a step
  of 0.1 and particles resampled by exp(−E) every 4 steps of a stochastic DDIM (eta 1); without
  particles, the same rule chose the noise-aware scorers with a step of 0.3.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from consensus.core.ensemble import Ensemble
from consensus.core.scorer import Scorer
from consensus.generators.diffusion.diffusers import DiffusionGenerator
from consensus.scorers.image.classifier import ClassifierScorer, NoiseAwareClassifierScorer
from consensus.scorers.image.smoothed import Smoothed
from consensus.tasks.image.data import FASHION_CLASSES
from consensus.zoo.fashion import NOISE_AWARE_NAMES, SCORER_NAMES, load_fashion_classifier, load_fashion_generator

DEFAULT_STEPS = 20
DEFAULT_SCALE = 0.3
DEFAULT_SCHEDULE = "constant"
ON_MANIFOLD_SCALE, ON_MANIFOLD_SCALE_WITHOUT_PARTICLES = 0.1, 0.3
ON_MANIFOLD_RESAMPLE_EVERY, ON_MANIFOLD_TEMPERATURE, ON_MANIFOLD_ETA = 4, 1.0, 1.0


def fashion_generator(sampler: str = "ddim") -> DiffusionGenerator:
    """The unconditional Fashion-MNIST diffusion model with a DDIM (default) or DDPM sampler."""
    from diffusers import DDIMScheduler

    unet, ddpm = load_fashion_generator()
    if sampler == "ddim":
        return DiffusionGenerator(unet, DDIMScheduler.from_config(ddpm.config))
    if sampler == "ddpm":
        return DiffusionGenerator(unet, ddpm)
    raise ValueError(f"unknown sampler {sampler!r}; use 'ddim' or 'ddpm'")


def fashion_ensemble(names: Sequence[str] = SCORER_NAMES, *, noise_aware: bool = False, smoothing: float | None = None,
                     copies: int = 4, extra: Sequence[tuple[Scorer, float]] = (), **options: Any) -> Ensemble:
    """The task's one ensemble builder (the CLI's, the benchmarks' and the examples'): the committed guidance scorers
    ``names`` (``cnn``, ``mlp``, ``resnet``) equally weighted, as balancing happens in the gradient, then ``extra``
    (scorer, weight) pairs. Each reads the predicted clean image x̂0, or with ``noise_aware`` its version that reads
    the noisy sample and its noise level, and with ``smoothing`` (TFG's smoothing, ``Smoothed``) every scorer is read
    on ``copies`` noisy copies of x̂0 spread ``smoothing`` · √(1−ᾱ). ``options``: ``Ensemble``'s keywords."""
    scorers = [fashion_scorer(f"noise-aware-{n}" if noise_aware else n) for n in names] + [s for s, _ in extra]
    if smoothing is not None:
        scorers = [Smoothed(s, smoothing, copies) for s in scorers]
    return Ensemble(scorers, [1.0] * len(names) + [w for _, w in extra], **options)


def class_from_prompt(prompt: str) -> str:
    """The one Fashion-MNIST class a free-text prompt names ("a photo of a sneaker" -> "Sneaker")."""
    text = prompt.lower()
    found = [
        c for c in FASHION_CLASSES if any(re.search(rf"\b{re.escape(part)}s?\b", text) for part in c.lower().split("/"))
    ]
    # "Ankle boot" contains no other class; "T-shirt/top" vs "Shirt": prefer the longest match.
    found = [c for c in found if not any(c != o and c.lower() in o.lower() for o in found)]
    if len(found) != 1:
        what = "no Fashion-MNIST class" if not found else f"several classes ({', '.join(found)})"
        raise ValueError(f"the prompt {prompt!r} names {what}; name one of: {', '.join(FASHION_CLASSES)}")
    return found[0]


def fashion_scorer(name: str) -> ClassifierScorer | NoiseAwareClassifierScorer:
    """A committed Fashion-MNIST guidance scorer named ``fashion-<name>``: ``cnn``, ``mlp`` or ``resnet`` read the
    predicted clean image; ``noise-aware-cnn`` (...) read the noisy sample and its noise level."""
    if name in NOISE_AWARE_NAMES:
        return NoiseAwareClassifierScorer(load_fashion_classifier(name), FASHION_CLASSES, name=f"fashion-{name}")
    if name not in SCORER_NAMES:
        raise ValueError(f"unknown Fashion-MNIST scorer {name!r}; use one of {SCORER_NAMES + NOISE_AWARE_NAMES} "
                         "(the eval models never guide)")
    return ClassifierScorer(load_fashion_classifier(name), FASHION_CLASSES, channels=1, name=f"fashion-{name}")
