"""Image benchmark: class-conditional Fashion-MNIST generation by gradient-based consensus.

Compares, on the same seeds, the generator alone, the generator guided by each single scorer,
and the generator guided by the ensemble of the three, for every class. Metrics come from the
evaluation-only models (trained on data no scorer saw): held-out accuracy on the asked class,
FID and KID against the 10k test images in the held-out feature space, Inception-style score.
Also measures the time of a guided denoising step relative to an unguided one, in the same run.

Resumable through the one harness (consensus.eval.harness): one JSON line per (method, batch), each
batch's images cached beside it, reused on a rerun; the report is the package's (consensus.tasks.image.report).

    python benchmarks/image_benchmark.py [--n 500] [--steps 20] [--scale 0.2]

Writes benchmarks/results/image.json, benchmarks/results/image.md and one PNG grid per method
under benchmarks/results/image/ (column = class).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import torch

from consensus.tasks.image.experiment import (
    DEFAULT_SCALE,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS,
    fashion_ensemble,
    fashion_generator,
)
from consensus.distributed.sharded import add_ray_options, connect, sharded
from consensus.eval.harness import run_resumable
from consensus.eval.metrics import paired_difference
from consensus.tasks.image.evaluate import FashionEvaluator
from consensus.tasks.image.data import FASHION_CLASSES, load_fashion_mnist
from consensus.tasks.image.grid import save_grid
from consensus.tasks.image.report import ALONE, ENSEMBLE, table
from consensus.zoo.fashion import SCORER_NAMES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks/results"
METHODS = {ALONE: [], **{f"guided by {n}": [n] for n in SCORER_NAMES}, ENSEMBLE: list(SCORER_NAMES)}


def make_solve(args, name: str, scale: float, generator=None):
    """``solve(batch indices) -> records``: each batch's images drawn and saved beside the results file."""
    generator = generator or fashion_generator("ddim")
    scorers = METHODS[name]
    ensemble = fashion_ensemble(scorers) if scorers else None
    folder = args.cache / f"scale-{scale}"

    def solve(todo):
        for b in todo:
            size = min(args.batch, args.n - b * args.batch)
            classes = [FASHION_CLASSES[(b * args.batch + i) % 10] for i in range(size)]
            start = time.perf_counter()
            # seed = batch index: every method starts from the same noise, so differences are the guidance's.
            images = generator.generate(size, ensemble, classes, num_inference_steps=args.steps, guidance_scale=scale,
                                        schedule=args.schedule, seed=args.seed + b).images  # fmt: skip
            path = folder / f"{'+'.join(scorers) or 'none'}-{b}.pt"
            torch.save((images * 255).round().byte(), path)
            yield {"method": name, "batch": b, "classes": classes, "images": path.name,
                   "seconds": round(time.perf_counter() - start, 1)}

    return solve


def generate_method(generator, name: str, args, scale: float) -> torch.Tensor:
    """All ``args.n`` samples of one method, batch by batch, through the resumable harness.

    One JSON line per batch in ``<cache>/scale-<scale>/<scorers>.jsonl`` (the run's settings
    stored in each, a file of other settings refused); each batch's images are saved beside it as uint8
    (with ``--ray``, by the workers, so the cache must be a folder they share)."""
    scorers = METHODS[name]
    folder = args.cache / f"scale-{scale}"
    folder.mkdir(parents=True, exist_ok=True)
    batches = list(range(-(-args.n // args.batch)))
    settings = {"n": args.n, "batch": args.batch, "steps": args.steps, "scale": scale, "schedule": args.schedule,
                "seed": args.seed}
    solve, executor = None, None
    if args.ray:
        executor = sharded(functools.partial(make_solve, args, name, scale), args.workers)
    else:
        solve = make_solve(args, name, scale, generator)
    records = run_resumable(batches, lambda b: f"{name}/{b}", solve, folder / f"{'+'.join(scorers) or 'none'}.jsonl",
                            settings=settings, description=name, executor=executor)
    return torch.cat([torch.load(folder / r["images"]).float() / 255 for r in records])


def step_timing(generator, args) -> dict[str, float]:
    """Median seconds per denoising step (batch of ``args.timing_batch``), interleaving the methods to share drift."""
    methods = {ALONE: [], f"guided by one scorer ({SCORER_NAMES[0]})": [SCORER_NAMES[0]], ENSEMBLE: list(SCORER_NAMES)}
    ensembles = {name: fashion_ensemble(s) if s else None for name, s in methods.items()}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(args.timing_repeats + 1):
        for name, ensemble in ensembles.items():
            result = generator.generate(
                args.timing_batch, ensemble, "Sneaker", num_inference_steps=6, guidance_scale=args.scale, seed=repeat
            )
            if repeat:  # the first round warms up
                seconds[name] += result.step_seconds
    return {name: statistics.median(s) for name, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=500, help="samples per method (a multiple of 10 keeps classes balanced)"
    )
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE)
    parser.add_argument("--schedule", default=DEFAULT_SCHEDULE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", type=float, nargs="*", default=[0.1, 0.2], help="further guidance steps to compare")
    parser.add_argument("--timing-batch", type=int, default=50)
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/consensus/image-benchmark")
    add_ray_options(parser, "batches")
    args = parser.parse_args()
    if args.ray:
        connect(args.ray, num_cpus=args.workers)
    torch.set_num_threads(1)
    start = time.perf_counter()
    settings = {k: v for k, v in vars(args).items() if k not in ("cache", "ray", "workers")}
    generator = fashion_generator("ddim")
    evaluator = FashionEvaluator()
    labels = torch.arange(args.n) % 10

    rows, correct = {}, {}
    real, real_labels = load_fashion_mnist("train", part="A")  # the floor of FID/KID at this sample size
    rows[f"real images (training part A, {args.n})"] = evaluator.evaluate(real[: args.n], real_labels[: args.n])
    grids = RESULTS / "image"
    for name, scorers in METHODS.items():
        print(f"{name}:", flush=True)
        images = generate_method(generator, name, args, args.scale)
        rows[name] = evaluator.evaluate(images, labels)
        correct[name] = evaluator.probabilities(images).argmax(1) == labels
        save_grid(images[:100], grids / f"{'-'.join(scorers) or 'none'}.png", columns=10)
        print(f"  {rows[name]}", flush=True)
    timing = step_timing(generator, args)

    singles = [rows[f"guided by {n}"] for n in SCORER_NAMES]
    best_acc, best_fid = max(r["accuracy"] for r in singles), min(r["fid"] for r in singles)
    best_name = max((f"guided by {n}" for n in SCORER_NAMES), key=lambda k: rows[k]["accuracy"])
    paired = paired_difference(correct[ENSEMBLE].tolist(), correct[best_name].tolist())
    guided = singles + [rows[ENSEMBLE]]

    sweep = {}
    for scale in args.sweep:
        for name, scorers in METHODS.items():
            if scorers:
                print(f"step {scale}, {name}:", flush=True)
                images = generate_method(generator, name, args, scale)
                sweep[f"{scale}: {name}"] = evaluator.evaluate(images, labels)
    claims = {
        "guidance (each scorer and the ensemble) beats the generator alone on held-out accuracy": all(
            r["accuracy"] > rows[ALONE]["accuracy"] for r in guided
        ),
        "guidance (each scorer and the ensemble) beats the generator alone on FID": all(
            r["fid"] < rows[ALONE]["fid"] for r in guided
        ),
        "the ensemble beats the best single scorer on held-out accuracy": rows[ENSEMBLE]["accuracy"] > best_acc,
        "the ensemble beats the best single scorer on FID": rows[ENSEMBLE]["fid"] < best_fid,
    }
    settings["seconds"] = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"settings": settings, "results": rows, "step_seconds": timing, "claims": claims,
              "ensemble_minus_best_single_accuracy": {"best_single": best_name, **paired}, "sweep": sweep}  # fmt: skip
    (RESULTS / "image.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "image.md").write_text(table(report))
    print(table(report))


if __name__ == "__main__":
    main()
