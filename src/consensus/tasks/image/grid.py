"""Save a batch of images in [0, 1] as one PNG grid."""

from __future__ import annotations

from pathlib import Path

import torch


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 10, pad: int = 2) -> Path:
    """Tile ``images`` ``[N, C, H, W]`` in [0, 1] row by row, ``columns`` per row, and write a PNG."""
    from PIL import Image

    n, c, h, w = images.shape
    rows = -(-n // columns)
    canvas = torch.ones(c, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i, image in enumerate(images.detach().float().clamp(0, 1).cpu()):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        canvas[:, top : top + h, left : left + w] = image
    array = (canvas * 255).round().byte().permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if c == 1 else array).save(path)
    return path
