"""The image benchmark's report: held-out accuracy with Wilson intervals, FID/KID/IS, the ensemble against its best
single scorer (paired bootstrap), and the cost of guidance, as one markdown table."""

from __future__ import annotations

import platform
from typing import Any

import torch

ALONE, ENSEMBLE = "generator alone", "guided by the ensemble (cnn+mlp+resnet)"


def _interval(row: dict[str, Any]) -> str:
    low, high = row["accuracy_ci95"]
    return f"[{low:.3f}, {high:.3f}]"


def table(report: dict[str, Any]) -> str:
    rows, timing, settings = report["results"], report["step_seconds"], report["settings"]
    lines = [
        "# Image benchmark: Fashion-MNIST generation guided by an ensemble of classifiers",
        "",
        (f"{settings['n']} samples per method ({settings['n'] // 10} per class), DDIM {settings['steps']} steps (eta 0), "
         f"guidance step {settings['scale']} ({settings['schedule']} schedule, per-scorer gradient-norm balancing), seeds "
         f"{settings['seed']}+batch; the same initial noise for every method. Metrics from the evaluation-only models "
         "(trained on training part C, which no scorer saw): held-out accuracy on the asked class [95% Wilson interval], "
         "FID/KID against the 10,000 test images in the held-out feature space (raw feature units, so not comparable "
         "with Inception-based numbers), Inception-style score of the held-out classifier."),
        "",
        "| method | held-out accuracy | FID ↓ | KID ↓ | IS ↑ |",
        "| --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, r in rows.items():
        lines.append(f"| {name} | {r['accuracy']:.3f} {_interval(r)} | {r['fid']:.2f} | "
                     f"{r['kid']:.1f} ± {r['kid_std']:.1f} | {r['inception_score']:.2f} |")  # fmt: skip
    paired = report["ensemble_minus_best_single_accuracy"]
    lines += ["", (f"Ensemble minus the best single scorer ({paired['best_single']}) on held-out accuracy, paired "
                   f"over the same seeds: {paired['points']:+.1f} points [{paired['low']:+.1f}, {paired['high']:+.1f}] "
                   f"(paired bootstrap, 95%; {paired['wins']} samples right for the ensemble only, {paired['losses']} "
                   "for the single scorer only).")]  # fmt: skip
    alone = timing[ALONE]
    lines += ["", (f"## Cost of guidance (same run, median seconds per denoising step, batch {settings['timing_batch']}, "
                   f"{platform.machine()}, torch threads {torch.get_num_threads()})"), "",
              "| sampler | s / step | relative to unguided |", "| --- | --- | --- |"]  # fmt: skip
    lines += [f"| {name} | {s:.4f} | {s / alone:.2f}× |" for name, s in timing.items()]
    if report["sweep"]:
        lines += ["", "## Other guidance steps (same seeds and samples per method)", "",
                  "| step: method | held-out accuracy | FID ↓ | IS ↑ |", "| --- | --- | --- | --- |"]  # fmt: skip
        lines += [f"| {k} | {r['accuracy']:.3f} {_interval(r)} | {r['fid']:.2f} | {r['inception_score']:.2f} |"
                  for k, r in report["sweep"].items()]  # fmt: skip
    lines += ["", "## Claims", ""] + [f"- {k}: **{'yes' if v else 'no'}**" for k, v in report["claims"].items()]
    return "\n".join(lines) + "\n"
