"""Save a batch of images in [0, 1] as one PNG grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

LABEL_WIDTH = 72  # pixels left of the grid for a row's label


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 10, pad: int = 2,
              row_labels: Sequence[str] | None = None) -> Path:
    """Tile ``images`` ``[N, C, H, W]`` in [0, 1] row by row, ``columns`` per row, and write a PNG;
    ``row_labels`` names each row at its left (a class per row, say)."""
    from PIL import Image, ImageDraw

    n, c, h, w = images.shape
    rows = -(-n // columns)
    canvas = torch.ones(c, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i, image in enumerate(images.detach().float().clamp(0, 1).cpu()):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        canvas[:, top : top + h, left : left + w] = image
    array = (canvas * 255).round().byte().permute(1, 2, 0).numpy()
    mode = "L" if c == 1 else "RGB"  # grey images stay one channel: a third of the file
    picture = Image.fromarray(array[..., 0] if c == 1 else array).convert(mode)
    if row_labels is not None:
        labelled = Image.new(mode, (picture.width + LABEL_WIDTH, picture.height), "white")
        labelled.paste(picture, (LABEL_WIDTH, 0))
        draw = ImageDraw.Draw(labelled)
        for row, label in enumerate(row_labels[:rows]):
            draw.text((2, pad + row * (h + pad) + h // 2 - 5), str(label), fill="black")
        picture = labelled
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path
