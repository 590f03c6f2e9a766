"""Diffusion generators: the denoiser protocol, the diffusers adapter, and the engine's denoising steps."""

from consensus.generators.diffusion.diffusers import DiffusionGenerator, GenerationResult
from consensus.generators.diffusion.protocol import Denoiser
from consensus.generators.diffusion.steps import DenoisingStepHooks, DenoisingState, DenoisingSteps

__all__ = ["Denoiser", "DenoisingStepHooks", "DenoisingState", "DenoisingSteps", "DiffusionGenerator", "GenerationResult"]
