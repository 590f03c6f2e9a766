"""Frames of a video, an image folder or a list of images, sampled uniformly in time.

Every source is sampled the same way (``sample_indices``): ``count`` frames, one from the
middle of each of ``count`` equal stretches of the video, so the sample covers the whole
video without landing on its first and last frames, which are often fades to black. A
source with fewer frames than ``count`` gives all of them. Videos are decoded with PyAV
(FFmpeg) in one pass that keeps only the sampled frames, so a long video costs decoding
time but not memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg")
_FORMATS = ("a video file FFmpeg can decode (.mp4, .webm, .mkv, .avi, ...), a folder of images "
            f"({', '.join(IMAGE_EXTS)}), or a list of images")

Frame = str | Path | Image.Image | np.ndarray  # one frame of a frame list


class FrameError(ValueError):
    """A video or image source that gives no usable frames."""


def sample_indices(total: int, count: int) -> list[int]:
    """The indices of ``count`` frames spread uniformly over ``total``: the middle of each of
    ``count`` equal stretches (all frames when there are no more than ``count``)."""
    if count < 1:
        raise FrameError(f"count={count}: ask for at least one frame")
    if total <= count:
        return list(range(total))
    return [int((i + 0.5) * total / count) for i in range(count)]


def load_frames(source: str | Path | Sequence[Frame], count: int = 8) -> list[Image.Image]:
    """``count`` RGB frames sampled uniformly from ``source``: a video file, a single image, a
    folder of images (in name order), or a list of image paths, PIL images or HxWx3 uint8 arrays."""
    if count < 1:
        raise FrameError(f"count={count}: ask for at least one frame")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FrameError(f"{path} does not exist; give {_FORMATS}")
        if path.is_dir():
            return _load_folder(path, count)
        if path.suffix.lower() in IMAGE_EXTS and path.suffix.lower() != ".gif":  # a GIF may be animated
            return [_open_image(path)]
        return _load_video(path, count)
    if isinstance(source, (list, tuple)):
        if not source:
            raise FrameError(f"the frame list is empty; give {_FORMATS}")
        return [_to_image(source[i]) for i in sample_indices(len(source), count)]
    raise FrameError(f"cannot read frames from a {type(source).__name__}; give {_FORMATS}")


def _load_folder(folder: Path, count: int) -> list[Image.Image]:
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise FrameError(f"{folder} holds no images ({', '.join(IMAGE_EXTS)}); give {_FORMATS}")
    return [_open_image(paths[i]) for i in sample_indices(len(paths), count)]


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as e:
        raise FrameError(f"{path} is not a readable image ({e}); give {_FORMATS}") from e


def _to_image(frame: Frame) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame.convert("RGB") if frame.mode != "RGB" else frame
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise FrameError(f"an array frame must be HxWx3 uint8, got shape {frame.shape} and dtype {frame.dtype}")
        return Image.fromarray(frame, "RGB")
    if isinstance(frame, (str, Path)):
        path = Path(frame)
        if not path.is_file():
            raise FrameError(f"frame {path} does not exist")
        return _open_image(path)
    raise FrameError(f"a frame must be an image path, a PIL image or an HxWx3 uint8 array, not {type(frame).__name__}")


def _load_video(path: Path, count: int) -> list[Image.Image]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FrameError(f"{path} has no video stream; give {_FORMATS}")
            # The header's frame count is missing in some containers (webm) and only roughly right
            # in others; counting packets needs no decoding, and a count the decoder contradicts is
            # replaced by the decoded one and the sample redrawn.
            total = container.streams.video[0].frames or _count_packets(container)
        frames, decoded = _decode_at(path, sample_indices(total, count))
        if decoded != total and decoded:
            frames, decoded = _decode_at(path, sample_indices(decoded, count))
    except av.FFmpegError as e:
        raise FrameError(f"{path} could not be decoded as a video ({e}); give {_FORMATS}") from e
    if not frames:
        raise FrameError(f"{path} has a video stream but no frames could be decoded; give {_FORMATS}")
    return frames


def _count_packets(container) -> int:
    return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def _decode_at(path: Path, indices: list[int]) -> tuple[list[Image.Image], int]:
    """The frames at ``indices`` (sorted) and how many frames the video really has."""
    import av

    wanted, frames, decoded = set(indices), [], 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if decoded in wanted:
                frames.append(frame.to_image())
            decoded += 1
    return frames, decoded


def write_video(frames: Sequence[Frame], path: str | Path, fps: int = 4) -> Path:
    """Write ``frames`` (all of one size) as an H.264 mp4 (MPEG-4 part 2 where PyAV lacks
    libx264); odd sizes are padded by one edge row or column, as yuv420p needs even sizes.
    A .mkv or .mov name gives that container instead, with the same stream."""
    import av

    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".mkv", ".mov"):
        raise FrameError(f"{path.name}: write_video writes H.264 or MPEG-4 video; name the file .mp4 (or .mkv, .mov)")
    images = [np.asarray(_to_image(f)) for f in frames]
    if not images:
        raise FrameError("no frames to write")
    if len({a.shape for a in images}) > 1:
        raise FrameError(f"frames differ in size ({sorted({a.shape[:2] for a in images})}); resize them to one size")
    height, width = images[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}
        else:
            stream.bit_rate = 4_000_000
        for array in images:
            frame = av.VideoFrame.from_ndarray(np.pad(array, pad, mode="edge"), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
