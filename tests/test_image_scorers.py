"""Image scorers: the classifier scorer on a small torch model, the CLIP scorer on a tiny random CLIPModel."""

from __future__ import annotations

import json
import string

import pytest
import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from consensus import Ensemble
from consensus.scorers.image.classifier import resize_and_crop
from consensus.scorers.image import ClassifierScorer, CLIPScorer


def tiny_classifier(channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def tiny_clip_tokenizer(tmp_path) -> CLIPTokenizer:
    """A character-level CLIP tokenizer: every letter is a token, so no merges are needed."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + "-/.,":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=32)


def tiny_clip(vocab_size: int) -> CLIPModel:
    torch.manual_seed(0)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2}
    text = dict(
        small, vocab_size=vocab_size, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1
    )
    return CLIPModel(
        CLIPConfig(text_config=text, vision_config=dict(small, image_size=32, patch_size=8), projection_dim=16)
    )


def test_classifier_energy_is_minus_log_probability():
    scorer = ClassifierScorer(tiny_classifier(), ["cat", "dog", "bird"], name="tiny")
    images = torch.rand(4, 1, 12, 12)
    log_p = torch.log_softmax(scorer.model(images), -1)
    torch.testing.assert_close(scorer.energy(images, "dog"), -log_p[:, 1])
    torch.testing.assert_close(
        scorer.energy(images, ["cat", 2, "DOG", "bird"]), -log_p[torch.arange(4), torch.tensor([0, 2, 1, 2])]
    )


def test_classifier_has_a_gradient_through_resizing_and_normalisation():
    scorer = ClassifierScorer(
        tiny_classifier(3), ["a", "b", "c"], image_size=16, mean=(0.5,) * 3, std=(0.2,) * 3, channels=3
    )
    images = torch.rand(2, 3, 20, 30, requires_grad=True)
    scorer.energy(images, "a").sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert resize_and_crop(images, 16).shape == (2, 3, 16, 16)


def test_classifier_does_not_mutate_its_input():
    scorer = ClassifierScorer(tiny_classifier(3), ["a", "b", "c"], image_size=8, channels=3)
    images = torch.rand(2, 1, 10, 10)
    before = images.clone()
    scorer.energy(images, "b")
    assert torch.equal(images, before)


@pytest.mark.parametrize(
    "condition, error",
    [("dgo", r"unknown class name 'dgo'; did you mean 'dog'"), ("zebra", "unknown class name 'zebra'"),
     (7, "class index 7 is out of range"), (["cat"], "got 1 class conditions for 2 images")],
)  # fmt: skip
def test_classifier_bad_condition_is_a_clear_error(condition, error):
    scorer = ClassifierScorer(tiny_classifier(), ["cat", "dog", "bird"])
    with pytest.raises(ValueError, match=error):
        scorer.energy(torch.rand(2, 1, 8, 8), condition)


def test_ambiguous_class_name_asks_for_the_index():
    scorer = ClassifierScorer(tiny_classifier(), ["crane", "dog", "bird"], aliases={"crane": 2})
    with pytest.raises(ValueError, match="'crane' is ambiguous.*pass the class index"):
        scorer.energy(torch.rand(1, 1, 8, 8), "crane")


@pytest.mark.parametrize(
    "images, error",
    [(torch.rand(1, 8, 8), r"shaped \[N, C, H, W\]"), (torch.rand(2, 1, 8, 8) * 255, r"range \[.*255|pixel values in \[0, 1\]"),
     (torch.rand(2, 1, 8, 8) * 2 - 1, r"map \[-1, 1\] images with \(x \+ 1\) / 2"),
     (torch.randint(0, 255, (2, 1, 8, 8), dtype=torch.uint8), "expects float images"),
     (torch.rand(2, 2, 8, 8), "expects 3 channels"), (torch.full((1, 3, 8, 8), float("nan")), "range")],
)  # fmt: skip
def test_wrong_image_shape_or_range_is_a_clear_error(images, error):
    scorer = ClassifierScorer(tiny_classifier(3), ["a", "b", "c"], channels=3)
    with pytest.raises((ValueError, TypeError), match=error):
        scorer.energy(images, "a")


def test_clip_scorer_energy_gradient_and_cutouts(tmp_path):
    tokenizer = tiny_clip_tokenizer(tmp_path)
    model = tiny_clip(len(tokenizer))
    scorer = CLIPScorer(model, tokenizer, name="clip")
    images = torch.rand(3, 3, 40, 48, requires_grad=True)
    energy = scorer.energy(images, "a photo of a cat")
    # The energy is 1 - cosine of the model's own embeddings.
    with torch.no_grad():
        image_emb = model.get_image_features(pixel_values=scorer_views(scorer, images)).pooler_output
        tokens = tokenizer(["a photo of a cat"], return_tensors="pt")
        text_emb = model.get_text_features(**tokens).pooler_output
    expected = 1 - torch.nn.functional.cosine_similarity(image_emb, text_emb)
    torch.testing.assert_close(energy.detach(), expected, atol=1e-5, rtol=0)
    energy.sum().backward()
    assert images.grad.abs().sum() > 0
    # Per-image prompts, and cut-outs that are deterministic (same images, same energy) yet change the energy.
    per_image = scorer.energy(images, ["a cat", "a dog", "a cat"]).detach()
    assert per_image[1].item() == pytest.approx(scorer.energy(images[1:2], "a dog").item(), abs=1e-6)
    assert per_image[2].item() == pytest.approx(scorer.energy(images[2:3], "a cat").item(), abs=1e-6)
    cut = CLIPScorer(model, tokenizer, cutouts=4, name="clip-cutouts")
    first, second = cut.energy(images, "a cat"), cut.energy(images, "a cat")
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, scorer.energy(images, "a cat"))
    # A CLIP scorer and a classifier share one ensemble.
    ensemble = Ensemble([scorer, ClassifierScorer(tiny_classifier(3), ["cat", "dog", "x"], channels=3, image_size=16)])
    assert set(ensemble(images.detach(), "cat").per_scorer) == {"clip", "ClassifierScorer"}


def scorer_views(scorer: CLIPScorer, images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
    return (resize_and_crop(images, 32) - mean) / std


def test_clip_scorer_bad_condition_and_images(tmp_path):
    tokenizer = tiny_clip_tokenizer(tmp_path)
    scorer = CLIPScorer(tiny_clip(len(tokenizer)), tokenizer)
    with pytest.raises(ValueError, match="needs a text, or one text per image"):
        scorer.energy(torch.rand(2, 3, 32, 32), ["one text"])
    with pytest.raises(ValueError, match=r"pixel values in \[0, 1\]"):
        scorer.energy(torch.rand(2, 3, 32, 32) * 255, "a cat")
