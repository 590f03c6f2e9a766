"""Image guidance variants against plain gradient guidance, untuned, on the image benchmark's seeds.

A first look for issue 16 (guidance that stays on the data manifold), not its hyper-parameter search:
every variant uses fixed, untuned settings, the same 500 samples per method (50 per class, DDIM 20
steps, seeds 0+batch) and the held-out evaluation models of ``benchmarks/image_benchmark.py``.

- gradient guidance by the ensemble, step 0.3 (the benchmark's guided row);
- the same with recurrence 1 (each step taken again from a re-noised sample);
- particles only: no gradient, each class's samples in a batch resampled among themselves by exp(−E)
  every 4 steps;
- gradient guidance and those particles together.

    python benchmarks/image_guidance_variants.py

Writes benchmarks/results/image-guidance-variants.json and .md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from consensus import Guidance, Resample
from consensus.eval.metrics import paired_difference
from consensus.tasks.image.data import FASHION_CLASSES
from consensus.tasks.image.evaluate import FashionEvaluator
from consensus.tasks.image.experiment import fashion_ensemble, fashion_generator

RESULTS = Path(__file__).resolve().parent / "results"
N, BATCH, STEPS = 500, 100, 20
VARIANTS = {
    "generator alone": {},
    "gradient guidance, step 0.3": {"feedback": [Guidance(0.3)]},
    "gradient guidance, step 0.3, recurrence 1": {"feedback": [Guidance(0.3)], "recurrence": 1},
    "particles only (resample by exp(-E) every 4 steps)": {"feedback": [Resample(temperature=1.0, every=4)]},
    "gradient guidance 0.3 + particles every 4 steps": {"feedback": [Guidance(0.3),
                                                                     Resample(temperature=1.0, every=4)]},
}


def main() -> None:
    torch.set_num_threads(1)
    generator, ensemble, evaluator = fashion_generator("ddim"), fashion_ensemble(), FashionEvaluator()
    labels = torch.arange(N) % 10
    rows, correct = {}, {}
    for name, options in VARIANTS.items():
        start, images = time.perf_counter(), []
        for b in range(N // BATCH):
            classes = [FASHION_CLASSES[(b * BATCH + i) % 10] for i in range(BATCH)]
            guided = ensemble if options else None
            result = generator.generate(BATCH, guided, classes, num_inference_steps=STEPS, seed=b, **options)
            images.append(result.images)
        images = torch.cat(images)
        rows[name] = {**evaluator.evaluate(images, labels), "seconds": time.perf_counter() - start}
        correct[name] = (evaluator.probabilities(images).argmax(1) == labels).tolist()
        print(name, {k: v for k, v in rows[name].items() if k in ("accuracy", "fid", "seconds")}, flush=True)
    base = "gradient guidance, step 0.3"
    paired = {name: paired_difference(correct[name], correct[base]) for name in VARIANTS if name != base}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "image-guidance-variants.json").write_text(json.dumps({"rows": rows, "vs_gradient": paired}, indent=1))
    lines = ["# Image guidance variants (untuned), 500 samples each on the image benchmark's seeds", "",
             "| method | held-out accuracy [95% CI] | FID ↓ | IS ↑ | accuracy vs gradient guidance (points) | s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        low, high = r["accuracy_ci95"]
        vs = "–" if name == base else f"{paired[name]['points']:+.1f} [{paired[name]['low']:+.1f}, {paired[name]['high']:+.1f}]"
        lines.append(f"| {name} | {r['accuracy']:.3f} [{low:.3f}, {high:.3f}] | {r['fid']:.1f} | "
                     f"{r['inception_score']:.2f} | {vs} | {r['seconds']:.0f} |")
    (RESULTS / "image-guidance-variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
