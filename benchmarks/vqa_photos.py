"""Real photos answered through the composed scorer (an ImageNet classifier matched to text by all-MiniLM).

scikit-image ships a few natural photos; each becomes a one-frame video, and Gemma 3 270M answers
questions about it alone and steered by the composed scorer (gradient-free and gradient feedback).
Writes benchmarks/results/vqa-photos.md (the table shown in the README) and prints it.

    python benchmarks/vqa_photos.py
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from consensus.tasks.vqa.experiment import VideoQA, build_ensemble, load_scorers, steering
from consensus.zoo.gemma import load_gemma

PHOTOS = {  # skimage.data function -> questions (none has a reference: read the answers)
    "chelsea": ["what animal is this?", "what is in the picture?"],
    "coffee": ["what is in the cup?", "what is in the picture?"],
    "rocket": ["what vehicle is this?"],
    "astronaut": ["what is this person's job?"],
}


def main() -> None:
    import skimage.data

    lm, ensemble = load_gemma(), build_ensemble(load_scorers("imagenet"))
    answerers = {
        "lm alone": VideoQA(lm, ensemble, steering("none")),
        "rescore": VideoQA(lm, ensemble, steering("rescore")),
        "gradient": VideoQA(lm, ensemble, steering("gradient")),
    }
    lines = ["| photo | question | " + " | ".join(answerers) + " |", "| --- | --- |" + " --- |" * len(answerers)]
    for photo, questions in PHOTOS.items():
        frames = [Image.fromarray(getattr(skimage.data, photo)()).convert("RGB")]
        for question in questions:
            cells = []
            for qa in answerers.values():
                start = time.perf_counter()
                answer = qa.answer(frames, question)
                energy = next(iter(answer.energies.values()))
                cells.append(f"{answer.text} ({energy:.3f}, {time.perf_counter() - start:.1f} s)")
            lines.append(f"| `skimage.data.{photo}()` | {question} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n\nIn brackets: the composed scorer's energy for the answer (lower = closer), seconds.\n"
    Path("benchmarks/results/vqa-photos.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
