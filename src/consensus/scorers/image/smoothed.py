"""A scorer read on noisy copies of a diffusion step's predicted clean image (TFG's smoothing of the guide).

Early in sampling the predicted clean image x̂0 = E[x0 | x_t] is a blur, the mean of many images that
x_t could become, and a classifier's gradient at that one point is mostly the texture that fools it
there. The likelihood the guide wants is p(c | x_t) = E_{x0 | x_t}[p(c | x0)], an average over the
images x_t could become; this scorer approximates the posterior by a Gaussian around x̂0 whose
spread shrinks with the noise (Ye et al. 2024, "TFG", the smoothed guidance of its implicit dynamics):

    E_s(x̂0) = −log E_δ[exp(−E(x̂0 + σ_t δ))] ≈ −log (1/m) Σ_j exp(−E(x̂0 + σ_t δ_j)),   δ_j ~ N(0, I),
    σ_t = strength · √(1−ᾱ_t)                 (in the model's [−1, 1] units, half that in [0, 1] pixels).

For a classifier (E = −log p) that is the Monte-Carlo log of the smoothed likelihood. Its gradient,
Σ_j softmax(−E)_j ∇E(x̂0 + σ_t δ_j), averages the push over nearby images, so a direction that helps at
one point only cancels out. At the clean end σ_t → 0 and E_s = E. The copies are drawn from a generator
seeded by the timestep, so a run is reproducible; m copies cost m calls' worth of the scorer.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from consensus.core.scorer import NoiseLevel, Scorer


class Smoothed(Scorer):
    """``scorer`` read on ``copies`` noisy copies of each candidate image (the module docstring).

    Args:
        scorer: an image scorer (candidates ``[N, C, H, W]`` in [0, 1]).
        strength: σ_t / √(1−ᾱ_t), the spread in units of the step's noise (> 0).
        copies: m, the noisy copies per candidate (≥ 1).
        seed: seeds the copies' noise together with the timestep.
    """

    modality = "image"
    differentiable = True
    reads_noise_level = True

    def __init__(self, scorer: Scorer, strength: float = 0.5, copies: int = 4, seed: int = 0):
        if not (math.isfinite(strength) and strength > 0) or copies < 1:
            raise ValueError(f"Smoothed needs strength > 0 and copies >= 1, got strength={strength}, copies={copies}")
        if scorer.modality != "image" or not scorer.differentiable:
            raise ValueError(f"Smoothed smooths the gradient of a differentiable image scorer; {scorer.name} reads "
                             f"{scorer.modality!r} and differentiable={scorer.differentiable}")
        self.scorer, self.strength, self.copies, self.seed = scorer, strength, copies, seed

    @property
    def name(self) -> str:
        return f"{self.scorer.name} (smoothed)"

    def energy(self, candidates: torch.Tensor, condition: Any, noise_level: NoiseLevel | None = None) -> torch.Tensor:
        sigma = 0.0 if noise_level is None else self.strength * noise_level.noise_std / 2  # [0, 1] pixels
        if sigma == 0.0:
            return self.scorer.energy_at(candidates, condition, noise_level)
        n, m = len(candidates), self.copies
        generator = torch.Generator().manual_seed(self.seed * 10_000 + noise_level.timestep)
        noise = torch.randn((m, *candidates.shape), generator=generator).to(candidates)
        noisy = (candidates.unsqueeze(0) + sigma * noise).flatten(0, 1)
        noisy = noisy + (noisy.clamp(0, 1) - noisy).detach()  # in range for the scorer, gradient unchanged
        per_copy = isinstance(condition, (list, tuple)) and len(condition) == n
        conditions = list(condition) * m if per_copy else condition
        if noise_level.eps is not None:  # the copies share their candidate's noise estimate
            noise_level = NoiseLevel(noise_level.timestep, noise_level.alpha_bar, noise_level.eps.repeat(m, 1, 1, 1))
        energies = self.scorer.energy_at(noisy, conditions, noise_level).view(m, n)
        return -(torch.logsumexp(-energies, dim=0) - math.log(m))
