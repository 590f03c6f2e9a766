"""The committed Fashion-MNIST models: they load, classify the test split, and guide a small batch end to end."""

from __future__ import annotations

import argparse

import pytest
import torch

from consensus import read_trace
from consensus.core.trace import validate_record
from consensus.tasks.image import cli
from consensus.tasks.image.experiment import fashion_ensemble, fashion_generator
from consensus.tasks.image.data import FASHION_CLASSES, load_fashion_mnist
from consensus.zoo.fashion import NOISE_AWARE_NAMES, SCORER_NAMES, load_fashion_classifier

# A missing Debian package fails here with the install command in the message: data is not optional.
TEST_IMAGES, TEST_LABELS = load_fashion_mnist("test")


@pytest.mark.parametrize("name", [*SCORER_NAMES, "eval-classifier", "eval-features"])
def test_committed_classifiers_load_and_classify_the_test_split(name):
    model = load_fashion_classifier(name)
    with torch.no_grad():
        accuracy = (model(TEST_IMAGES[:2000]).argmax(1) == TEST_LABELS[:2000]).float().mean().item()
    assert accuracy > 0.82, f"{name}: {accuracy:.3f}"


@pytest.mark.parametrize("name", NOISE_AWARE_NAMES)
def test_noise_aware_classifiers_classify_noisy_test_images(name):
    """Read as the noise-aware scorer reads them: x_t of the test images at a middle noise level, and clean."""
    from diffusers import DDPMScheduler

    from consensus.core.scorer import NoiseLevel
    from consensus.tasks.image.experiment import fashion_scorer
    from consensus.zoo import WEIGHTS_DIR

    alpha_bar = float(DDPMScheduler.from_pretrained(WEIGHTS_DIR / "fashion-diffusion").alphas_cumprod[400])
    scorer = fashion_scorer(name)
    images, labels = TEST_IMAGES[:2000], TEST_LABELS[:2000]
    eps = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for level, least in ((None, 0.75), (NoiseLevel(400, alpha_bar, eps), 0.7)):
            logits = scorer.model(*scorer.noisy_sample(images, level))
            accuracy = (logits.argmax(1) == labels).float().mean().item()
            assert accuracy > least, f"{name} at {level and level.timestep}: {accuracy:.3f}"


def test_data_thirds_are_disjoint_and_cover_the_train_split():
    a, _ = load_fashion_mnist("train", part="A")
    c, _ = load_fashion_mnist("train", part="C")
    assert len(a) == len(c) == 20000
    assert not set(map(bytes, (a[:500] * 255).byte().flatten(1).numpy())) & set(
        map(bytes, (c * 255).byte().flatten(1).numpy())
    )
    with pytest.raises(ValueError, match="part 'D' is not one or more of"):
        load_fashion_mnist("train", part="D")


def test_ensemble_guidance_draws_the_asked_classes():
    generator = fashion_generator("ddim")
    ensemble = fashion_ensemble()
    judge = load_fashion_classifier("eval-classifier")
    classes = list(FASHION_CLASSES) * 2
    labels = torch.arange(10).repeat(2)
    plain = generator.generate(20, num_inference_steps=10, seed=0).images
    guided = generator.generate(20, ensemble, classes, num_inference_steps=10, guidance_scale=0.3, seed=0).images
    with torch.no_grad():
        accuracy_plain = (judge(plain).argmax(1) == labels).float().mean().item()
        accuracy_guided = (judge(guided).argmax(1) == labels).float().mean().item()
        assert ensemble(guided, classes).total.mean() < ensemble(plain, classes).total.mean()
    assert accuracy_guided >= 0.6 and accuracy_guided > accuracy_plain + 0.3, (accuracy_plain, accuracy_guided)


def test_ddpm_sampler_runs_on_the_committed_generator():
    images = fashion_generator("ddpm").generate(2, fashion_ensemble(["mlp"]), "Trouser", num_inference_steps=5).images
    assert images.shape == (2, 1, 28, 28) and 0 <= images.min() and images.max() <= 1


def test_cli_writes_a_grid_and_a_trace(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["image", "--prompt", "a photo of a sneaker", "--num-images", "4", "--steps", "4", "--out", str(tmp_path),
         "--trace", str(tmp_path / "guided.jsonl"), "--scorer", "tests.fixtures.my_scorer:InkScorer:0.5"]
    )
    assert cli.run(args) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    steps = list(read_trace(tmp_path / "guided.jsonl"))
    assert len(steps) == 4 and all(s["item"] == "Sneaker" for s in steps)
    for step in steps:
        validate_record(step)
    assert set(steps[0]["energies"]["per_scorer"]) == {*(f"fashion-noise-aware-{n}" for n in SCORER_NAMES), "InkScorer"}
    assert len(steps[0]["energies"]["per_scorer"]["fashion-noise-aware-cnn"]) == 4
    assert [s["feedback"]["Resample"]["resampled"] for s in steps] == [True, False, False, False]  # every 4 steps
    assert "Sneaker" in capsys.readouterr().out


def test_cli_guides_with_smoothed_scorers_and_plain_guidance(tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["image", "--class", "Bag", "--num-images", "4", "--steps", "4", "--out", str(tmp_path), "--scorer-inputs",
         "clean", "--smoothing", "0.5", "--smoothing-copies", "2", "--resample-every", "0", "--scorers", "cnn"])
    assert cli.run(args) == 0
    steps = list(read_trace(tmp_path / "trace.jsonl"))
    assert set(steps[0]["energies"]["per_scorer"]) == {"fashion-cnn (smoothed)"}
    assert all(set(s["feedback"]) == {"Guidance"} and s["feedback"]["Guidance"]["step_size"] == 0.3 for s in steps)


@pytest.mark.parametrize("argv, error", [(["--class", "Sneakers"], "unknown class name 'Sneakers'; did you mean 'sneaker'"),
                                         (["--prompt", "a cat"], "names no Fashion-MNIST class")])  # fmt: skip
def test_cli_bad_class_is_a_clear_error(argv, error, tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    with pytest.raises(ValueError, match=error):
        cli.run(parser.parse_args(["image", *argv, "--out", str(tmp_path)]))


def test_grid_names_its_rows(tmp_path):
    from PIL import Image

    from consensus.tasks.image.grid import LABEL_WIDTH, save_grid

    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plain = Image.open(save_grid(images, tmp_path / "plain.png", columns=10))
    named = Image.open(save_grid(images, tmp_path / "named.png", columns=10, row_labels=["Bag", "Coat"]))
    assert named.size == (plain.width + LABEL_WIDTH, plain.height)
    assert named.crop((0, 0, LABEL_WIDTH, named.height)).convert("L").getextrema()[0] < 128  # the labels' ink
