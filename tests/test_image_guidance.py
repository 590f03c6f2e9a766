"""Gradient guidance (and guided particles) through the engine on tiny randomly initialised diffusers UNets and
schedulers: the generic paths of core/feedback/guidance.py and generators/diffusion."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn

from consensus import Ensemble, Guidance, Resample, Scorer, read_trace
from consensus.core.ensemble import NonDifferentiableScorerError, NonFiniteGradientError, combine_gradients
from consensus.core.feedback import Feedback
from consensus.core.feedback.guidance import DenoisingHooks
from consensus.core.scorer import NoiseLevel
from consensus.core.trace import TraceWriter, validate_record
from consensus.generators.diffusion import DiffusionGenerator
from consensus.generators.diffusion.steps import eps_to_prediction, eps_to_x0, prediction_to_eps, x0_to_eps
from consensus.scorers.image import ClassifierScorer, NoiseAwareClassifierScorer, Smoothed
from consensus.scorers.text import ArithmeticVerifier


class BrightnessScorer(Scorer):
    """Squared distance of the mean pixel to a target brightness (the condition), times ``gain``."""

    modality = "image"
    differentiable = True

    def __init__(self, gain: float = 1.0, name: str = "brightness"):
        self.gain, self._name = gain, name

    @property
    def name(self) -> str:
        return self._name

    def energy(self, candidates, condition):
        return self.gain * (candidates.mean((1, 2, 3)) - condition) ** 2


class LeftRightScorer(Scorer):
    """Prefers a bright left half and a dark right half; ignores the condition."""

    modality = "image"
    differentiable = True

    def energy(self, candidates, condition):
        half = candidates.shape[-1] // 2
        return candidates[..., half:].mean((1, 2, 3)) - candidates[..., :half].mean((1, 2, 3))


class FrozenScorer(BrightnessScorer):
    differentiable = False


class SqrtScorer(Scorer):
    """Finite energy (0) but a NaN gradient: d/dx sqrt(0 * x) = 0 * inf."""

    modality = "image"
    differentiable = True

    def energy(self, candidates, condition):
        return (0 * candidates).sqrt().sum((1, 2, 3))


def tiny_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    ).eval()  # fmt: skip


def scheduler(kind: str):
    ddpm = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    return ddpm if kind == "ddpm" else DDIMScheduler.from_config(ddpm.config)


@pytest.mark.parametrize("kind, eta", [("ddpm", None), ("ddim", 0.0), ("ddim", 1.0)])
def test_guidance_lowers_the_energy_for_ddpm_and_ddim(kind, eta):
    generator = DiffusionGenerator(tiny_unet(), scheduler(kind))
    ensemble = Ensemble([BrightnessScorer()])
    plain = generator.generate(6, num_inference_steps=10, eta=eta, seed=3).images
    guided = generator.generate(6, ensemble, 0.9, num_inference_steps=10, guidance_scale=0.3, eta=eta, seed=3).images
    assert guided.shape == plain.shape == (6, 1, 8, 8)
    assert 0 <= guided.min() and guided.max() <= 1
    before, after = ensemble(plain, 0.9).total, ensemble(guided, 0.9).total
    assert (after < before).all(), (before, after)
    # And towards the asked target: a dark target moves the other way.
    dark = generator.generate(6, ensemble, 0.1, num_inference_steps=10, guidance_scale=0.3, eta=eta, seed=3).images
    assert dark.mean() < plain.mean() < guided.mean()


def test_zero_scale_is_the_unguided_sampler():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    plain = generator.generate(3, num_inference_steps=5, seed=1).images
    guided = generator.generate(
        3, Ensemble([BrightnessScorer()]), 0.9, num_inference_steps=5, guidance_scale=0.0, seed=1
    )
    torch.testing.assert_close(guided.images, plain, atol=1e-5, rtol=0)


class Shift(Feedback):
    """Wraps the step's model function with a constant move of x̂0, as Guidance wraps it with its gradient step."""

    needs_energies = False
    needs_hooks = DenoisingHooks

    def __init__(self, delta: float):
        self.delta = delta

    def __call__(self, proposals, energies, context):
        inner = proposals.hooks.denoised
        proposals.hooks.denoised = lambda x_t: inner(x_t) + self.delta
        return {}


def test_forms_wrap_the_model_function_the_step_calls_and_compose():
    """The step steps with whatever model function the chain hands it: a wrapper moves the samples, two wrappers
    compose (here cancelling), and a wrapper after Guidance acts on Guidance's guided function."""
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    ensemble = Ensemble([BrightnessScorer()])
    plain = generator.generate(3, None, None, num_inference_steps=4, seed=2).images
    moved = generator.generate(3, None, None, num_inference_steps=4, feedback=[Shift(0.05)], seed=2).images
    back = generator.generate(3, None, None, num_inference_steps=4, feedback=[Shift(0.05), Shift(-0.05)], seed=2).images
    assert (moved - plain).abs().max() > 1e-3
    torch.testing.assert_close(back, plain, atol=1e-5, rtol=0)
    guided = generator.generate(3, ensemble, 0.9, num_inference_steps=4, feedback=[Guidance(0.3)], seed=2).images
    both = generator.generate(3, ensemble, 0.9, num_inference_steps=4, feedback=[Guidance(0.3), Shift(0.05),
                                                                                  Shift(-0.05)], seed=2).images
    assert (guided - plain).abs().max() > 1e-3
    torch.testing.assert_close(both, guided, atol=1e-5, rtol=0)


def test_classifier_scorer_guides_toward_the_asked_class():
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    scorer = ClassifierScorer(classifier, ["a", "b", "c"], name="linear")
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    plain = generator.generate(8, num_inference_steps=10, seed=0).images
    guided = generator.generate(8, Ensemble([scorer]), "b", num_inference_steps=10, guidance_scale=0.3, seed=0).images
    assert scorer.energy(guided, "b").mean() < scorer.energy(plain, "b").mean()
    assert (scorer.log_probs(guided).argmax(1) == 1).float().mean() > (
        scorer.log_probs(plain).argmax(1) == 1
    ).float().mean()


def test_balancing_gives_scorers_on_different_scales_an_equal_say():
    g_big, g_small = torch.randn(2, 1, 4, 4) * 1e4, torch.randn(2, 1, 4, 4) * 1e-4
    balanced = combine_gradients([g_big, g_small], [1.0, 1.0], balance=True)
    unit = lambda g: g / g.pow(2).mean((1, 2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(balanced, (unit(g_big) + unit(g_small)) / 2)
    raw = combine_gradients([g_big, g_small], [1.0, 1.0], balance=False)
    torch.testing.assert_close(raw, g_big + g_small)
    # End to end: a scorer 10^4 times louder does not drown the other one.
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    loud, quiet = BrightnessScorer(gain=1e4, name="loud"), LeftRightScorer()
    plain = generator.generate(6, num_inference_steps=10, seed=2).images
    guided = generator.generate(
        6, Ensemble([loud, quiet]), 0.5, num_inference_steps=10, guidance_scale=0.3, seed=2
    ).images
    assert quiet.energy(guided, None).mean() < quiet.energy(plain, None).mean() - 0.1


def test_prediction_types_round_trip():
    x_t, eps, alpha_bar = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), torch.tensor(0.3)
    for kind in ("epsilon", "sample", "v_prediction"):
        torch.testing.assert_close(
            prediction_to_eps(eps_to_prediction(eps, x_t, alpha_bar, kind), x_t, alpha_bar, kind), eps
        )
    torch.testing.assert_close(x0_to_eps(x_t, eps_to_x0(x_t, eps, alpha_bar), alpha_bar), eps)


def test_v_prediction_model_is_guided_too():
    ddim = DDIMScheduler(num_train_timesteps=100, prediction_type="v_prediction")
    generator = DiffusionGenerator(tiny_unet(), ddim)
    ensemble = Ensemble([BrightnessScorer()])
    plain = generator.generate(4, num_inference_steps=8, seed=0).images
    guided = generator.generate(4, ensemble, 0.9, num_inference_steps=8, guidance_scale=0.3, seed=0).images
    assert (ensemble(guided, 0.9).total < ensemble(plain, 0.9).total).all()


def test_trace_and_callback_record_every_scorer_per_step(tmp_path):
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    ensemble = Ensemble([BrightnessScorer(), LeftRightScorer()])
    seen = []
    with TraceWriter(tmp_path / "trace.jsonl") as trace:
        generator.generate(3, ensemble, 0.5, num_inference_steps=4, seed=0, trace=trace, callback=seen.append)
    lines = list(read_trace(tmp_path / "trace.jsonl"))
    assert [line["iteration"] for line in lines] == [0, 1, 2, 3] == [info["iteration"] for info in seen]
    for line in lines:
        validate_record(line)
        assert set(line["energies"]["per_scorer"]) == {"brightness", "LeftRightScorer"}
        assert line["candidates"] == ["tensor 1x8x8"] * 3 and len(line["feedback"]["Guidance"]["direction_rms"]) == 3
    assert seen[0]["proposals"].hooks.x0.shape == (3, 1, 8, 8)
    assert seen[0]["feedback"]["Guidance"]["step_size"] == pytest.approx(0.1)
    # The guidance did its job over the steps: the brightness energy falls from first to last.
    assert sum(lines[-1]["energies"]["per_scorer"]["brightness"]) < sum(lines[0]["energies"]["per_scorer"]["brightness"])


def test_linear_schedule_fades_the_step_out():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    seen = []
    generator.generate(2, Ensemble([BrightnessScorer()]), 0.5, num_inference_steps=5, guidance_scale=1.0,
                       schedule="linear", seed=0, callback=seen.append)  # fmt: skip
    sizes = [info["feedback"]["Guidance"]["step_size"] for info in seen]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0.7 and sizes[-1] < 0.2


def test_guided_particles_resample_toward_low_energy():
    """A form nobody wrote a loop for: guidance and particle resampling chained on one population."""
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    ensemble = Ensemble([BrightnessScorer()])
    plain = generator.generate(8, num_inference_steps=6, seed=4).images
    particles = generator.generate(8, ensemble, 0.9, num_inference_steps=6, seed=4,
                                   feedback=[Guidance(0.0), Resample(k=8, temperature=1e-4)])
    assert particles.images.shape == plain.shape
    assert ensemble(particles.images, 0.9).total.mean() < ensemble(plain, 0.9).total.mean()
    assert particles.run.iterations == 6 and particles.run.stop_reason == "complete"


def test_non_differentiable_scorer_is_refused_in_gradient_mode():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    with pytest.raises(NonDifferentiableScorerError, match=r"FrozenScorer.*differentiable=False.*best-of-N"):
        generator.generate(
            2, Ensemble([BrightnessScorer(), FrozenScorer(name="FrozenScorer")]), 0.5, num_inference_steps=2
        )


def test_nan_gradient_is_a_clear_error():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    with pytest.raises(NonFiniteGradientError, match="SqrtScorer gave a NaN/inf gradient at timestep"):
        generator.generate(2, Ensemble([SqrtScorer()]), None, num_inference_steps=2)


def test_bad_settings_are_clear_errors():
    unet = tiny_unet()
    with pytest.raises(ValueError, match="unknown guidance schedule 'fast'"):
        Guidance(0.5, schedule="fast")
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        Guidance(float("nan"))
    with pytest.raises(ValueError, match="DDPMScheduler.step takes no eta"):
        DiffusionGenerator(unet, scheduler("ddpm")).generate(1, num_inference_steps=2, eta=0.5)
    with pytest.raises(ValueError, match="unknown prediction type 'noise'"):
        prediction_to_eps(torch.zeros(1), torch.zeros(1), torch.ones(1), "noise")
    with pytest.raises(ValueError, match="normalization='none'"):
        DiffusionGenerator(unet, scheduler("ddim")).generate(
            2, Ensemble([BrightnessScorer()], normalization="zscore"), 0.5, num_inference_steps=2)


def test_drop_policy_leaves_a_non_finite_sample_unguided():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    plain = generator.generate(2, num_inference_steps=3, seed=0).images
    dropped = generator.generate(2, Ensemble([SqrtScorer()], nonfinite="drop"), None, num_inference_steps=3,
                                 guidance_scale=0.3, seed=0).images
    torch.testing.assert_close(dropped, plain, atol=1e-5, rtol=0)


def test_recurrence_takes_each_step_again_from_a_renoised_sample():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    seen = []
    result = generator.generate(3, Ensemble([BrightnessScorer()]), 0.9, num_inference_steps=4, guidance_scale=0.3,
                                recurrence=2, seed=0, callback=seen.append)
    assert result.run.iterations == 12 and result.run.stop_reason == "complete"
    timesteps = [info["feedback"]["Guidance"]["timestep"] for info in seen]
    assert timesteps == [t for t in timesteps[::3] for _ in range(3)]  # each timestep three times in a row
    assert result.images.shape == (3, 1, 8, 8) and 0 <= result.images.min() and result.images.max() <= 1
    plain = generator.generate(3, Ensemble([BrightnessScorer()]), 0.9, num_inference_steps=4, guidance_scale=0.3,
                               seed=0).images
    assert not torch.equal(plain, result.images)  # the re-noising drew fresh noise


def test_particles_resampled_only_at_the_chosen_steps():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    seen = []
    generator.generate(4, Ensemble([BrightnessScorer()]), 0.9, num_inference_steps=6, seed=0, callback=seen.append,
                       feedback=[Guidance(0.1), Resample(k=4, temperature=0.5, every=3)])
    assert [info["feedback"]["Resample"]["resampled"] for info in seen] == [True, False, False, True, False, False]


def test_clipped_guidance_and_the_increasing_schedule():
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    seen = []
    generator.generate(3, Ensemble([BrightnessScorer(gain=1e3)]), 0.9, num_inference_steps=5, seed=0,
                       callback=seen.append, feedback=[Guidance(0.5, schedule="increasing", balance=False, clip=0.25)])
    records = [info["feedback"]["Guidance"] for info in seen]
    assert all(rms <= 0.25 + 1e-6 for r in records for rms in r["direction_rms"])
    sizes = [r["step_size"] for r in records]
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="clip must be > 0"):
        Guidance(0.5, clip=0.0)


class GaussianDataDenoiser(nn.Module):
    """The exact noise prediction for data N(mu, s^2) per pixel: with x_t = √ᾱ x0 + √(1−ᾱ) ε,
    E[x0 | x_t] = mu + √ᾱ s² (x_t − √ᾱ mu) / (ᾱ s² + 1 − ᾱ) and ε̂ = (x_t − √ᾱ E[x0 | x_t]) / √(1−ᾱ).
    A sampler driven by it draws the data's distribution (up to its discretisation), so whatever a sampling
    option changes in its output is the option's own doing."""

    def __init__(self, alphas_cumprod: torch.Tensor, mu: float, s: float, size: int = 4):
        super().__init__()
        self.alphas_cumprod, self.mu, self.s = alphas_cumprod, mu, s
        self.config = type("Config", (), {"sample_size": size, "in_channels": 1})()
        self.anchor = nn.Parameter(torch.zeros(()))  # where the generator looks for the device and dtype

    def forward(self, x, t):
        a = self.alphas_cumprod[t].to(x.dtype).reshape(-1, 1, 1, 1)
        x0 = self.mu + a.sqrt() * self.s**2 * (x - a.sqrt() * self.mu) / (a * self.s**2 + 1 - a)
        return type("Output", (), {"sample": (x - a.sqrt() * x0) / (1 - a).sqrt()})()


def test_recurrence_without_guidance_leaves_the_samplers_mean_unchanged():
    """Re-noising x_t' to x_t by the forward process and stepping again draws from the same marginal, so with
    an exact denoiser and no guidance the samples' mean stays the data's; checked against the plain sampler and
    the data mean, within four standard errors."""
    ddpm = scheduler("ddpm")
    generator = DiffusionGenerator(GaussianDataDenoiser(ddpm.alphas_cumprod, mu=0.3, s=0.2), ddpm)
    ensemble = Ensemble([BrightnessScorer()])
    draws = {r: generator.generate(2000, ensemble, 0.5, num_inference_steps=10, guidance_scale=0.0, recurrence=r,
                                   seed=1).images for r in (0, 2)}
    means = {r: images.mean((1, 2, 3)) for r, images in draws.items()}  # in [0, 1]: the data mean is (0.3 + 1) / 2
    error = (means[0].var() / 2000 + means[2].var() / 2000).sqrt()
    assert abs(means[2].mean() - means[0].mean()) < 4 * error
    assert abs(means[0].mean() - 0.65) < 4 * means[0].std() / 2000**0.5 + 0.01


class NoiseRecorder(BrightnessScorer):
    """Records the noise level the ensemble passes; ``BrightnessScorer.energy`` itself takes none."""

    reads_noise_level = True

    def __init__(self):
        super().__init__(name="recorder")
        self.seen = []

    def energy(self, candidates, condition, noise_level=None):
        self.seen.append(noise_level)
        return super().energy(candidates, condition)


def test_scorers_that_read_the_noise_level_get_each_steps():
    sampler = scheduler("ddim")
    recorder = NoiseRecorder()
    # The plain BrightnessScorer would fail on an unexpected keyword: only the recorder is given it.
    ensemble = Ensemble([recorder, BrightnessScorer(name="plain")])
    DiffusionGenerator(tiny_unet(), sampler).generate(3, ensemble, 0.5, num_inference_steps=5, guidance_scale=0.1)
    assert [level.timestep for level in recorder.seen] == sampler.timesteps.tolist()
    for level in recorder.seen:
        assert level.alpha_bar == pytest.approx(float(sampler.alphas_cumprod[level.timestep]))
        assert level.eps.shape == (3, 1, 8, 8) and not level.eps.requires_grad
        assert level.noise_std == pytest.approx((1 - level.alpha_bar) ** 0.5)


class NoisyProbe(nn.Module):
    """A noise-aware 'classifier' of two classes: class 0 likes a bright x_t; it records what it read."""

    def forward(self, x_t, noise_std):
        self.seen = (x_t.detach(), noise_std.detach())
        brightness = 3 * x_t.mean((1, 2, 3))
        return torch.stack([brightness, -brightness], dim=1)


def test_noise_aware_scorer_rebuilds_the_noisy_sample_and_guides_as_classifier_guidance():
    probe = NoisyProbe()
    scorer = NoiseAwareClassifierScorer(probe, ["bright", "dark"])
    gen = torch.Generator().manual_seed(0)
    x0, eps, alpha_bar = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1, torch.randn(4, 1, 8, 8, generator=gen), 0.6
    x_t = alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps
    images = ((x0 + 1) / 2).requires_grad_(True)
    energy = scorer.energy(images, "bright", NoiseLevel(10, alpha_bar, eps))
    assert torch.allclose(probe.seen[0], x_t, atol=1e-6)
    assert torch.allclose(probe.seen[1], torch.full((4,), (1 - alpha_bar) ** 0.5))
    # ∂E/∂image = 2 √ᾱ ∇_{x_t} E: the gradient of classifier guidance, carried to the candidate.
    (on_images,) = torch.autograd.grad(energy.sum(), images)
    noisy = x_t.clone().requires_grad_(True)
    own = -torch.log_softmax(probe(noisy, probe.seen[1]), -1)[:, 0]
    (on_noisy,) = torch.autograd.grad(own.sum(), noisy)
    assert torch.allclose(on_images, 2 * alpha_bar**0.5 * on_noisy, atol=1e-6)
    scorer.energy(images, "bright")  # finished images are read as clean
    assert torch.allclose(probe.seen[0], x0, atol=1e-6) and probe.seen[1].abs().max() == 0
    with pytest.raises(ValueError, match="pixel-space diffusion model"):
        scorer.energy(images, "bright", NoiseLevel(10, alpha_bar, torch.zeros(4, 4, 2, 2)))
    # End to end: guided by it, the samples come out brighter than the unguided ones.
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    plain = generator.generate(8, num_inference_steps=8, seed=1).images
    guided = generator.generate(8, Ensemble([scorer]), "bright", num_inference_steps=8, guidance_scale=0.3, seed=1)
    assert guided.images.mean() > plain.mean() + 0.05


def test_smoothed_scorer_is_the_log_mean_of_its_noisy_copies_likelihoods():
    inner = BrightnessScorer(gain=5.0)
    smoothed = Smoothed(inner, strength=1.0, copies=3, seed=2)
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    level = NoiseLevel(7, 0.36)
    noise = torch.randn((3, 4, 1, 8, 8), generator=torch.Generator().manual_seed(2 * 10_000 + 7))
    copies = (images + 1.0 * 0.8 / 2 * noise).clamp(0, 1).flatten(0, 1)  # σ = strength · √(1−ᾱ) / 2 pixels
    expected = -(torch.logsumexp(-inner.energy(copies, 0.5).view(3, 4), 0) - math.log(3))
    assert torch.allclose(smoothed.energy(images, 0.5, level), expected, atol=1e-6)
    assert torch.equal(smoothed.energy(images, 0.5, level), smoothed.energy(images, 0.5, level))  # reproducible
    assert torch.equal(smoothed.energy(images, 0.5), inner.energy(images, 0.5))  # clean candidates: the scorer itself
    assert smoothed.name == "brightness (smoothed)" and smoothed.differentiable


def test_smoothed_scorer_gives_each_copy_its_candidates_condition():
    torch.manual_seed(0)
    classifier = ClassifierScorer(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), ["a", "b", "c"])
    images, classes = torch.rand(4, 1, 8, 8), ["a", "c", "b", "a"]
    barely = Smoothed(classifier, strength=1e-6, copies=5)
    assert torch.allclose(barely.energy(images, classes, NoiseLevel(50, 0.5)), classifier.energy(images, classes),
                          atol=1e-4)
    # Guided through the engine, a smoothed scorer lowers its own energy as the plain one does.
    generator = DiffusionGenerator(tiny_unet(), scheduler("ddim"))
    ensemble = Ensemble([Smoothed(BrightnessScorer(), strength=0.5, copies=4)])
    plain = generator.generate(6, num_inference_steps=8, seed=3).images
    guided = generator.generate(6, ensemble, 0.9, num_inference_steps=8, guidance_scale=0.3, seed=3).images
    assert ensemble(guided, 0.9).total.mean() < ensemble(plain, 0.9).total.mean()


def test_bad_smoothing_and_noise_aware_settings_are_clear_errors(ray_cluster):
    from consensus.distributed.ray_scorers import remote
    from consensus.tasks.image.experiment import fashion_scorer

    with pytest.raises(ValueError, match="strength > 0 and copies >= 1"):
        Smoothed(BrightnessScorer(), strength=0.0)
    with pytest.raises(ValueError, match="strength > 0 and copies >= 1"):
        Smoothed(BrightnessScorer(), copies=0)
    with pytest.raises(ValueError, match="smooths the gradient of a differentiable image scorer"):
        Smoothed(ArithmeticVerifier())
    with pytest.raises(ValueError, match="smooths the gradient of a differentiable image scorer"):
        Smoothed(FrozenScorer())
    with pytest.raises(ValueError, match="keep noise-aware and smoothed scorers local"):
        remote(fashion_scorer, "noise-aware-mlp", num_cpus=0.5)
