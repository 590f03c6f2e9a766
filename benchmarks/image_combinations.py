"""The ensemble's conservative combinations against the weighted sum on the image task, where the ensemble selects.

Best of 4 unguided samples per slot (the guidance search's best-of-K draws, its 500 test slots: 50 per class),
picked by the three guidance scorers combined four ways: the sum of their raw energies (the search's best-of-K), and
over z-scores across each slot's 4 draws the sum, the worst case and uncertainty (mean + λ·spread, λ = 1;
``consensus.core.ensemble.combine``). Each is measured by the held-out evaluator (accuracy, FID) and paired with the
raw sum over the same slots. Gradient guidance, the search's chosen setting, reads the ensemble's gradient of raw
energies (normalisation none), where no conservative combination is defined, so they are compared where the ensemble
chooses. One record per combination through the harness (image-combinations.jsonl); the summary to .json and .md.

    python benchmarks/image_combinations.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from consensus import Ensemble
from consensus.eval.harness import run_resumable
from consensus.eval.metrics import frechet_difference, paired_difference
from consensus.tasks.image.evaluate import FashionEvaluator
from consensus.tasks.image.experiment import fashion_ensemble, fashion_generator

sys.path.insert(0, str(Path(__file__).parent))
from image_guidance_search import BATCH, RESULTS, TEST, classes_of, picked, unguided_draws  # noqa: E402

K = 4
COMBINATIONS = {"sum of raw energies": {}, "sum of z-scores": {"normalization": "zscore"},
                "worst case": {"normalization": "zscore", "combination": "worst"},
                "uncertainty (λ = 1)": {"normalization": "zscore", "combination": "uncertainty", "spread": 1.0}}


def main() -> None:
    torch.set_num_threads(1)
    generator, evaluator = fashion_generator("ddim"), FashionEvaluator()
    labels = torch.arange(TEST) % 10
    draws = [unguided_draws(generator, K, b) for b in range(TEST // BATCH)]
    chosen: dict[str, torch.Tensor] = {}

    def solve(batch):
        for name in batch:
            ensemble: Ensemble = fashion_ensemble(**COMBINATIONS[name])
            chosen[name] = torch.cat([picked(d, classes_of(b), ensemble) for b, d in enumerate(draws)])
            row = evaluator.evaluate(chosen[name], labels)
            yield {"accuracy": row["accuracy"], "fid": row["fid"],
                   "correct": (evaluator.probabilities(chosen[name]).argmax(1) == labels).tolist()}

    records = {r["id"]: r for r in run_resumable(list(COMBINATIONS), str, solve, RESULTS / "image-combinations.jsonl",
                                                 description="combinations", settings={"k": K, "slots": TEST})}
    base = "sum of raw energies"
    for name in COMBINATIONS:  # a resumed run draws again (the same seeds) for the paired FID
        if name not in chosen:
            chosen[name] = torch.cat([picked(d, classes_of(b), fashion_ensemble(**COMBINATIONS[name]))
                                      for b, d in enumerate(draws)])
    features = {name: evaluator.features(images) for name, images in chosen.items()}
    summary = {name: {"accuracy": r["accuracy"], "fid": r["fid"],
                      **({} if name == base else {
                          "accuracy_vs_sum": paired_difference(r["correct"], records[base]["correct"]),
                          "fid_vs_sum": frechet_difference(features[name], features[base],
                                                           evaluator.reference_features)})}
               for name, r in records.items()}
    (RESULTS / "image-combinations.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [f"# Image: the ensemble's combinations, best of {K} unguided samples per slot ({TEST} slots)", "",
             "| combination | held-out accuracy | FID | accuracy − sum of raw energies (points) | FID − sum |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in summary.items():
        a, f = r.get("accuracy_vs_sum"), r.get("fid_vs_sum")
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['fid']:.1f} | " + (
            "–" if a is None else f"{a['points']:+.1f} [{a['low']:+.1f}, {a['high']:+.1f}]") + " | " + (
            "–" if f is None else f"{f['difference']:+.1f} [{f['low']:+.1f}, {f['high']:+.1f}]") + " |")
    (RESULTS / "image-combinations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
