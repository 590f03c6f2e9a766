"""Video-QA examples: easy-VQA as an offline stand-in, and ActivityNet-QA in its published format.

easy-VQA (the ``easy-vqa`` package, MIT licence) is synthetic: 64x64 images of one shape
(circle, rectangle or triangle) in one of eight colours on a light background, with
template questions about the shape, its colour, or yes/no. It has 4,000 train and 1,000
test images, 38,575 train and 9,673 test questions, and 13 possible answers. It ships with
the package, so it needs no download. Question types here: "yes/no" (answer yes or no),
"color" (answer a colour) and "shape" (otherwise).

Its images are stills; ``clip_from_image`` turns one into a short clip, so the video code
path runs end to end: frame k of a clip is the image shifted by a random whole number of
pixels, -4 to +4 independently in x and y, the uncovered border filled with the image's
top-left (background) colour rather than wrapped around, plus independent Gaussian noise
of standard deviation 8/255 on every pixel and channel, clipped to [0, 255]. Shifts and
noise come from one numpy generator seeded by ``seed``; an easy-VQA example seeds it with
the CRC-32 of its video id ("easy-vqa/<split>/<image id>"), so a question always sees the
same clip and the questions about one image see the same clip. The clip carries no
information the still lacks: it tests that scorers read several noisy frames, not motion.

ActivityNet-QA (Yu et al., 2019) is read from its published ``{split}_q.json`` and
``{split}_a.json`` files; its videos are not shipped and are looked for only when an
example's frames are asked for.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from consensus.tasks.vqa.video import VIDEO_EXTS, FrameError, load_frames

EASY_VQA_PREFIX = "easy-vqa/"
EASY_VQA_COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
ACTIVITYNET_TYPES = ("motion", "spatial relation", "temporal relation", "yes/no", "color", "object", "location",
                     "number", "other")
_ACTIVITYNET_EXTS = (".mp4", ".webm", ".mkv", ".avi")


class DataError(ValueError):
    """A data file or set that cannot be used as given."""


@dataclass(frozen=True)
class VQAExample:
    """question_id: unique within its set; answer: the reference answer; question_type: the
    set's category of the question; video: a video file or image folder, or an easy-VQA id
    such as "easy-vqa/test/123"."""

    question_id: str
    question: str
    answer: str
    question_type: str
    video: str

    def frames(self, count: int = 8) -> list[Image.Image]:
        """``count`` RGB frames of the example's video, sampled uniformly in time."""
        if self.video.startswith(EASY_VQA_PREFIX):
            return easy_vqa_clip(self.video, count)
        return load_frames(_find_video(Path(self.video)), count)


def easy_vqa_clip(video: str, count: int = 8) -> list[Image.Image]:
    """The clip of an easy-VQA id ("easy-vqa/<split>/<image id>"), seeded by the id (see the module docstring)."""
    split, image_id = _parse_easy_vqa_id(video)
    paths = _easy_vqa_image_paths(split)
    if image_id not in paths:
        raise FrameError(f"easy-VQA {split} has no image {image_id} (ids 0 to {len(paths) - 1})")
    with Image.open(paths[image_id]) as image:
        return clip_from_image(image.convert("RGB"), count, seed=zlib.crc32(video.encode()))


def clip_from_image(image: Image.Image, count: int = 8, seed: int = 0) -> list[Image.Image]:
    """A still made into ``count`` frames: random shifts of up to 4 px and Gaussian noise of
    sd 8/255, the border filled with the top-left colour (the module docstring has the rule)."""
    if count < 1:
        raise FrameError(f"count={count}: ask for at least one frame")
    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = array.shape[:2]
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        dx, dy = (int(s) for s in rng.integers(-4, 5, size=2))
        shifted = np.empty_like(array)
        shifted[...] = array[0, 0]
        shifted[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
            array[max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
        noisy = shifted + rng.normal(0.0, 8.0, size=shifted.shape)
        frames.append(Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB"))
    return frames


def easy_vqa_examples(split: str = "test") -> list[VQAExample]:
    """Every easy-VQA question of ``split`` ("train" or "test"), in the package's order."""
    easy_vqa = _import_easy_vqa()
    if split not in ("train", "test"):
        raise DataError(f"easy-VQA has splits 'train' and 'test', not {split!r}")
    questions, answers, image_ids = (easy_vqa.get_test_questions if split == "test" else easy_vqa.get_train_questions)()
    return [VQAExample(f"{split}-{i}", question, answer, _easy_vqa_type(answer), f"{EASY_VQA_PREFIX}{split}/{image_id}")
            for i, (question, answer, image_id) in enumerate(zip(questions, answers, image_ids))]


def _easy_vqa_type(answer: str) -> str:
    if answer in ("yes", "no"):
        return "yes/no"
    return "color" if answer in EASY_VQA_COLORS else "shape"


def _import_easy_vqa():
    try:
        import easy_vqa
    except ImportError as e:
        raise DataError("easy-VQA needs its package: pip install 'consensus[vqa]' (or easy-vqa==1.0)") from e
    return easy_vqa


def _parse_easy_vqa_id(video: str) -> tuple[str, int]:
    try:
        split, image_id = video[len(EASY_VQA_PREFIX):].split("/")
        return split, int(image_id)
    except ValueError as e:
        raise DataError(f"{video!r} is not an easy-VQA id; they read 'easy-vqa/<train|test>/<image id>'") from e


@lru_cache(maxsize=2)
def _easy_vqa_image_paths(split: str) -> dict[int, str]:
    easy_vqa = _import_easy_vqa()
    if split not in ("train", "test"):
        raise DataError(f"easy-VQA has splits 'train' and 'test', not {split!r}")
    return (easy_vqa.get_test_image_paths if split == "test" else easy_vqa.get_train_image_paths)()


def sample_examples(examples: Sequence[VQAExample], n: int, seed: int = 0) -> list[VQAExample]:
    """``n`` examples drawn without replacement, each question type in proportion to its share
    (largest remainders), returned in their original order; all of them when ``n`` is larger."""
    if n < 1:
        raise DataError(f"n={n}: ask for at least one example")
    if n >= len(examples):
        return list(examples)
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_type[example.question_type].append(i)
    shares = {t: n * len(indices) / len(examples) for t, indices in by_type.items()}
    quotas = {t: int(share) for t, share in shares.items()}
    # Hand the seats left after flooring to the largest remainders; ties go by type name.
    for t in sorted(shares, key=lambda t: (quotas[t] - shares[t], t))[:n - sum(quotas.values())]:
        quotas[t] += 1
    rng = random.Random(seed)
    chosen = [i for t in sorted(by_type) for i in rng.sample(by_type[t], quotas[t])]
    return [examples[i] for i in sorted(chosen)]


def activitynet_qa(root: str | Path, split: str = "test", video_dir: str | Path | None = None) -> list[VQAExample]:
    """ActivityNet-QA's ``split``: ``{split}_q.json`` and ``{split}_a.json`` from ``root`` (the
    dataset folder of github.com/MILVLG/activitynet-qa); videos in ``video_dir`` (default
    ``root/videos``) as ``v_<video_name>.<ext>`` or ``<video_name>.<ext>``."""
    root = Path(root)
    video_dir = Path(video_dir) if video_dir is not None else root / "videos"
    questions = _read_entries(root / f"{split}_q.json", ("question", "question_id", "video_name"))
    answers = _read_entries(root / f"{split}_a.json", ("answer", "type", "question_id"))
    by_id = {str(a["question_id"]): a for a in answers}
    examples = []
    for i, q in enumerate(questions):
        qid = str(q["question_id"])
        if qid not in by_id:
            raise DataError(f"{root / f'{split}_q.json'} entry {i}: question {qid!r} has no answer in {split}_a.json")
        answer = by_id[qid]
        question_type = _activitynet_type(answer["type"], f"{root / f'{split}_a.json'}: question {qid!r}")
        question = str(q["question"]).strip()
        examples.append(VQAExample(qid, question if question.endswith("?") else question + "?", str(answer["answer"]),
                                   question_type, str(_existing_video(video_dir, str(q["video_name"])))))
    if not examples:
        raise DataError(f"{root / f'{split}_q.json'} holds no questions")
    return examples


def _activitynet_type(code: object, where: str) -> str:
    try:
        index = int(code)  # type: ignore[call-overload]
    except (ValueError, TypeError):
        index = -1
    if not 0 <= index < len(ACTIVITYNET_TYPES):
        raise DataError(f"{where} has type {code!r}; types are 0 to {len(ACTIVITYNET_TYPES) - 1} "
                        f"({', '.join(ACTIVITYNET_TYPES)})")
    return ACTIVITYNET_TYPES[index]


def _read_entries(path: Path, keys: tuple[str, ...]) -> list[dict]:
    if not path.exists():
        raise DataError(f"{path} does not exist; pass the folder holding ActivityNet-QA's {path.name} "
                        "(github.com/MILVLG/activitynet-qa, folder dataset/)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, nested deeper than the parser goes
        raise DataError(f"{path} is not valid JSON ({e or 'nested too deeply'}); it should be ActivityNet-QA's "
                        f"{path.name}") from e
    if not isinstance(entries, list):
        raise DataError(f"{path} holds a JSON {type(entries).__name__}; ActivityNet-QA's {path.name} is a list of "
                        f"objects with keys {', '.join(keys)}")
    for i, entry in enumerate(entries):
        missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise DataError(f"{path} entry {i} lacks {', '.join(repr(k) for k in missing)}; "
                            f"every entry must be an object with keys {', '.join(keys)}")
    return entries


def _video_candidates(video_dir: Path, name: str) -> list[Path]:
    return [video_dir / f"{prefix}{name}{ext}" for prefix in ("v_", "") for ext in _ACTIVITYNET_EXTS]


def _existing_video(video_dir: Path, name: str) -> Path:
    """The video file of ``name`` if there is one; else the bare ``video_dir/name``, which
    ``_find_video`` resolves again (or explains) when the frames are asked for."""
    return next((p for p in _video_candidates(video_dir, name) if _is_file(p)), video_dir / name)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name no file can have: a NUL byte, longer than the file system allows
        return False


def _find_video(path: Path) -> Path:
    if path.exists() or path.suffix.lower() in VIDEO_EXTS:
        return path  # load_frames says so if it is missing
    found = _existing_video(path.parent, path.name)
    if found != path:
        return found
    looked_for = ", ".join(p.name for p in _video_candidates(path.parent, path.name))
    raise FrameError(f"no video file for {path.name} in {path.parent} (looked for {looked_for}); "
                     "download the videos there or pass video_dir")
