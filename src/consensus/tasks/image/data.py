"""Fashion-MNIST, read from the Debian package ``dataset-fashion-mnist`` (no download).

Images come back as float tensors ``[N, 1, 28, 28]`` in [0, 1], the range every image
scorer of this package reads. The training split is cut into three fixed thirds so that
the scorers and the evaluation models never see the same images (see the model cards).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Thirds of the 60k training images, by a fixed permutation: A and B train the guidance
# scorers, C trains the evaluation-only models, so evaluation never reuses a scorer's data.
TRAIN_PARTS = ("A", "B", "C")
_PART_SEED = 20230501


def fashion_dir() -> Path:
    return Path(os.environ.get("CONSENSUS_FASHION_MNIST_DIR", DEFAULT_DIR))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split: str = "train", part: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images [N,1,28,28] float in [0,1], labels [N] long)``.

    Args:
        split: ``train`` (60k) or ``test`` (10k).
        part: for ``train`` only, one or more of the fixed thirds ``A``, ``B``, ``C``
            (e.g. ``"AB"``); ``None`` means all of it.
    """
    if split not in _FILES:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    root = fashion_dir()
    image_file, label_file = (root / name for name in _FILES[split])
    if not image_file.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {root}; install it with `apt-get install dataset-fashion-mnist` "
            "or point CONSENSUS_FASHION_MNIST_DIR at a folder holding the four idx .gz files"
        )
    images = torch.from_numpy(_read_idx(image_file).copy()).float().div_(255).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(label_file).astype(np.int64))
    if part is not None:
        if split != "train" or not part or any(p not in TRAIN_PARTS for p in part):
            raise ValueError(f"part {part!r} is not one or more of {TRAIN_PARTS} of the train split")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(_PART_SEED))
        third = len(labels) // 3
        index = torch.cat([order[TRAIN_PARTS.index(p) * third : (TRAIN_PARTS.index(p) + 1) * third] for p in part])
        images, labels = images[index], labels[index]
    return images, labels
