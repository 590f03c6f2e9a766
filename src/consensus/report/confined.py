"""What a report may read: files inside the run's own folder, and as images only real images.

A run folder is something people share, and its ``run.json`` and trace are data written by whoever made it: a path
they name is resolved (``..``, absolute paths and symlinks included) and read only if it lies inside the folder;
an image is read only if its first bytes are an image format's and it is at most ``MAX_IMAGE_BYTES``. Anything else
is left out with a warning naming the field, and never opened, so a report never copies the reader's own files into
a page they may then publish.
"""

from __future__ import annotations

import string
from pathlib import Path

MAX_IMAGE_BYTES = 16 * 2**20
# The first bytes of the image formats a page shows (PNG, JPEG, GIF, WebP)
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def inside(folder: Path, name: object, field: str, warnings: list[str]) -> Path | None:
    """``folder / name`` when it resolves to a file inside ``folder``; else None and a warning naming ``field``."""
    if not isinstance(name, str) or not name or "\0" in name:
        warnings.append(f"{field}: {name!r} is not a file name; left out")
        return None
    path = _resolved_inside(folder, name)
    if path is None:
        warnings.append(f"{field}: {name!r} lies outside the run folder; left out, not read")
        return None
    if not path.is_file():
        warnings.append(f"{field}: {name} not found")
        return None
    return path


def image_inside(folder: Path, name: object, field: str, warnings: list[str]) -> Path | None:
    """``inside``, and the file is an image (its magic bytes) of at most ``MAX_IMAGE_BYTES``."""
    path = inside(folder, name, field, warnings)
    if path is None:
        return None
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        warnings.append(f"{field}: {name} is {size / 2**20:.0f} MiB, over the {MAX_IMAGE_BYTES // 2**20} MiB an image "
                        "may be; left out")
        return None
    with path.open("rb") as file:
        head = file.read(12)
    if not (head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")):
        warnings.append(f"{field}: {name} is not a PNG, JPEG, GIF or WebP image; left out")
        return None
    return path


def candidate_pattern(pattern: object, folder: Path, warnings: list[str]) -> str | None:
    """A manifest's ``candidate_images`` pattern when it names only ``{iteration}`` and ``{candidate}`` (with a format
    spec, as in ``{iteration:02d}``) and names files inside ``folder``; None and a warning otherwise
    (``{iteration.__class__}`` reads attributes). Each file it names is still checked as it is read."""
    if pattern is None:
        return None
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(pattern)} - {None}
        sample = pattern.format(iteration=0, candidate=0) if fields <= {"iteration", "candidate"} else None
    except (AttributeError, TypeError, ValueError):  # not a string, or a format spec an int does not take
        sample = None
    if sample is None:
        warnings.append(f"candidate_images: {pattern!r} may name only {{iteration}} and {{candidate}}; thumbnails "
                        "left out")
        return None
    if _resolved_inside(folder, sample) is None:
        warnings.append(f"candidate_images: {pattern!r} lies outside the run folder; thumbnails left out, not read")
        return None
    return pattern


def _resolved_inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` resolved (``..``, absolute paths, symlinks), when that lies inside ``folder``."""
    path = (folder / name).resolve()
    return path if path.is_relative_to(folder.resolve()) else None
