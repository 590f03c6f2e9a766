"""A text-to-image pipeline of the Stable Diffusion family, tiny and random: guidance through the VAE with a CLIP scorer."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from test_image_scorers import tiny_clip, tiny_clip_tokenizer  # tests/ is on sys.path under pytest
from transformers import CLIPTextConfig, CLIPTextModel

from consensus import Ensemble
from consensus.generators.diffusion import DiffusionGenerator
from consensus.scorers.image import CLIPScorer


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
        max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))  # fmt: skip
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), norm_num_groups=4, sample_size=16,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )  # fmt: skip
    scheduler = DDIMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip


def test_text_pipeline_guided_by_clip_through_the_vae(pipe):
    generator = DiffusionGenerator.from_pipeline(pipe, "a photo of a cat", cfg_scale=3.0)
    assert generator.sample_shape == (4, 8, 8) and generator.uncond_hidden_states is not None
    scorer = CLIPScorer(tiny_clip(len(pipe.tokenizer)), pipe.tokenizer, cutouts=2, name="clip")
    ensemble = Ensemble([scorer])
    plain = generator.generate(3, num_inference_steps=6, seed=0).images
    guided = generator.generate(
        3, ensemble, "a photo of a cat", num_inference_steps=6, guidance_scale=0.5, seed=0
    ).images
    assert plain.shape == guided.shape == (3, 3, 16, 16)  # decoded by the VAE
    assert scorer.energy(guided, "a photo of a cat").mean() < scorer.energy(plain, "a photo of a cat").mean()


def test_conditional_unet_without_text_is_a_clear_error(pipe):
    with pytest.raises(ValueError, match="is conditional: pass encoder_hidden_states, or use from_pipeline"):
        DiffusionGenerator(pipe.unet, pipe.scheduler)
