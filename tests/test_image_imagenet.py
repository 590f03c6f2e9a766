"""The real offline ImageNet classifiers, on real photos from scikit-image: the cat must come out a cat."""

from __future__ import annotations

import pytest
import skimage.data as skimage_data
import torch

from consensus.scorers.image.imagenet import imagenet_class_names
from consensus.scorers.image import MobileNetV2, imagenet_scorer

CATS = {"Egyptian cat", "tiger cat", "tabby"}


def photo(name: str) -> torch.Tensor:
    return torch.from_numpy(getattr(skimage_data, name)()).permute(2, 0, 1).float().div(255)[None]


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    # chelsea is 300x451 and coffee 400x600: the scorer resizes and crops both itself.
    return [photo("chelsea"), photo("coffee")]


@pytest.fixture(scope="module")
def mobilenet():
    return imagenet_scorer("mobilenet_v2")


@pytest.mark.parametrize("model", ["mobilenet_v2", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_the_cat_is_a_cat_and_the_coffee_an_espresso(model, photos):
    scorer = imagenet_scorer(model)
    cat, coffee = photos
    with torch.no_grad():
        cat_top = scorer.class_names[scorer.log_probs(cat).argmax().item()]
        coffee_top = scorer.class_names[scorer.log_probs(coffee).argmax().item()]
        # Energy = -log p: the right label costs less than a wrong one.
        assert scorer.energy(cat, "Egyptian cat") < scorer.energy(cat, "espresso")
    assert cat_top in CATS and coffee_top == "espresso"


def test_mobilenet_definition_matches_torchvision_keys_and_gives_a_pixel_gradient(mobilenet, photos):
    scorer = mobilenet
    assert isinstance(scorer.model, MobileNetV2)
    assert "features.18.0.weight" in scorer.model.state_dict() and "classifier.1.bias" in scorer.model.state_dict()
    cat = photos[0].clone().requires_grad_(True)
    scorer.energy(cat, "tabby").backward()
    assert cat.grad.shape == cat.shape and torch.isfinite(cat.grad).all() and cat.grad.abs().sum() > 0


def test_imagenet_names_synonyms_and_errors(mobilenet):
    names, aliases = imagenet_class_names()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and aliases["Tinca tinca"] == 0
    scorer = mobilenet
    image = torch.rand(1, 3, 64, 64)
    assert scorer.energy(image, "Tinca tinca") == scorer.energy(image, "tench")
    with pytest.raises(ValueError, match="unknown class name 'egyptain cat'; did you mean 'egyptian cat'"):
        scorer.energy(image, "egyptain cat")
    with pytest.raises(ValueError, match="unknown ImageNet classifier 'resnet50'"):
        imagenet_scorer("resnet50")
