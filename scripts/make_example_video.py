"""Write ``examples/clip.mp4``, the README's video-QA example: a few seconds of real video made with PyAV.

The frames are an easy-VQA *training* image (never a test one, so the example is not an evaluation item)
made into a clip the same way as the offline benchmark's clips (``consensus.tasks.vqa.data.clip_from_image``:
small shifts and sensor-like noise), 32 frames at 8 fps. Deterministic: the same file every run.

    python scripts/make_example_video.py            # prints the image's own questions and answers
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from consensus.tasks.vqa.data import _easy_vqa_image_paths, clip_from_image, easy_vqa_examples
from consensus.tasks.vqa.video import write_video

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=int, default=7, help="easy-VQA training image id")
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "clip.mp4")
    args = parser.parse_args()
    with Image.open(_easy_vqa_image_paths("train")[args.image]) as image:
        frames = clip_from_image(image.convert("RGB"), count=32, seed=args.image)
    write_video(frames, args.out, fps=8)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, 32 frames at 8 fps)")
    for example in easy_vqa_examples("train"):
        if example.video == f"easy-vqa/train/{args.image}":
            print(f"  {example.question} -> {example.answer}")


if __name__ == "__main__":
    main()
