"""``consensus image``: class-conditional generation on the embedded Fashion-MNIST default.

    consensus image --class Sneaker --num-images 16 --out runs/sneakers
    consensus image --prompt "a photo of an ankle boot" --scorers cnn resnet
    consensus image --class Bag --scorer-inputs clean --resample-every 0 --scale 0.3   # the paper's plain guidance

By default the noise-aware scorers guide with a small step and the samples are particles, resampled by
exp(−E/τ) every few steps of a stochastic DDIM: the settings the validation search chose
(benchmarks/image_guidance_search.py).

Writes a run folder, ``--out`` (or ``<out>-2``, ``<out>-3``, ... when it already holds a run): ``grid.png`` (the
samples), ``trajectory.png`` (the first sample's predicted clean image x̂0 at every step), ``xhat0/`` (every
sample's x̂0 per step, small), ``trace.jsonl`` (every scorer's energy per denoising step) and ``run.json``;
``consensus report <folder>`` makes its HTML report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from consensus.cli import (
    HelpFormatter,
    add_ensemble_options,
    add_scorer_option,
    ensemble_options,
    flags_of,
    fresh_run_dir,
    run_manifest,
    user_scorers,
    with_weights,
)
from consensus.core.feedback import Guidance, Resample
from consensus.core.feedback.guidance import SCHEDULES
from consensus.core.trace import TraceWriter
from consensus.report.manifest import report_hint
from consensus.scorers.image.classifier import ClassIndex
from consensus.tasks.image.data import FASHION_CLASSES
from consensus.tasks.image.experiment import (
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS,
    ON_MANIFOLD_ETA,
    ON_MANIFOLD_RESAMPLE_EVERY,
    ON_MANIFOLD_SCALE,
    ON_MANIFOLD_SCALE_WITHOUT_PARTICLES,
    ON_MANIFOLD_TEMPERATURE,
    class_from_prompt,
    fashion_ensemble,
    fashion_generator,
)  # fmt: skip
from consensus.tasks.image.grid import save_grid
from consensus.zoo.fashion import SCORER_NAMES

THUMBNAILS = 16  # samples whose x̂0 is saved at every step for the report


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "image", help="generate images of a class with a diffusion model guided by an ensemble of scorers",
        description=__doc__, formatter_class=HelpFormatter,
    )  # fmt: skip
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--class", dest="class_name", help=f"the class to draw: {', '.join(FASHION_CLASSES)}")
    what.add_argument("--prompt", help="a text naming one class, e.g. 'a photo of a sneaker'")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--scorers", nargs="*", default=list(SCORER_NAMES), choices=SCORER_NAMES,
                        help="guidance scorers (none: the generator alone)")  # fmt: skip
    parser.add_argument("--scorer-inputs", default="noise-aware", choices=("noise-aware", "clean"),
                        help="noise-aware: the scorers' versions that read the noisy sample and its noise level "
                             "(classifier guidance); clean: the classifiers of clean images, reading x̂0")
    parser.add_argument("--smoothing", type=float, default=None, metavar="STRENGTH",
                        help="read each scorer on noisy copies of x̂0, spread STRENGTH · √(1−ᾱ) (TFG's smoothing)")
    parser.add_argument("--smoothing-copies", type=int, default=4, help="noisy copies per sample with --smoothing")
    parser.add_argument("--resample-every", type=int, default=ON_MANIFOLD_RESAMPLE_EVERY, metavar="STEPS",
                        help="particles: resample the samples by exp(−E/τ) every STEPS denoising steps (0: none)")
    parser.add_argument("--temperature", type=float, default=ON_MANIFOLD_TEMPERATURE, help="τ of --resample-every")
    parser.add_argument("--scale", type=float, default=None,
                        help=f"guidance step in x0 (RMS pixels per step); default {ON_MANIFOLD_SCALE} with particles, "
                             f"{ON_MANIFOLD_SCALE_WITHOUT_PARTICLES} without")
    parser.add_argument("--schedule", default=DEFAULT_SCHEDULE, choices=sorted(SCHEDULES))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps")
    parser.add_argument("--recurrence", type=int, default=0,
                        help="take each guided step again this many times from a re-noised sample")
    parser.add_argument("--sampler", default="ddim", choices=("ddim", "ddpm"))
    parser.add_argument("--eta", type=float, default=None,
                        help=f"DDIM eta (0: deterministic); default {ON_MANIFOLD_ETA} with particles, so the copies a "
                             "resampling makes go their own ways, else 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/image"), help="output folder")
    parser.add_argument("--trace", type=Path, default=None, help="the consensus trace (default: trace.jsonl in --out)")
    add_scorer_option(parser)
    add_ensemble_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    class_name = (
        class_from_prompt(args.prompt)
        if args.prompt
        else FASHION_CLASSES[ClassIndex(FASHION_CLASSES).index(args.class_name)]
    )
    if args.num_images < 1 or args.steps < 1 or args.recurrence < 0 or args.resample_every < 0:
        raise ValueError("--num-images and --steps must be at least 1, and --recurrence and --resample-every at least 0")
    generator = fashion_generator(args.sampler)
    user = user_scorers(args.scorer)
    ensemble = None
    if args.scorers or user:
        ensemble = with_weights(fashion_ensemble(
            args.scorers, noise_aware=args.scorer_inputs == "noise-aware", smoothing=args.smoothing,
            copies=args.smoothing_copies, extra=user, **ensemble_options(args)), args.weights, len(args.scorers))
    particles = ensemble is not None and args.resample_every > 0
    scale = args.scale if args.scale is not None else (
        ON_MANIFOLD_SCALE if particles else ON_MANIFOLD_SCALE_WITHOUT_PARTICLES)
    eta = args.eta
    if eta is None and particles and args.sampler == "ddim":  # DDPM draws fresh noise at every step already
        eta = ON_MANIFOLD_ETA
    feedback = [Guidance(scale, args.schedule)] if ensemble is not None else []
    if particles:
        feedback.append(Resample(temperature=args.temperature, every=args.resample_every))
    out = fresh_run_dir(args.out)
    trace_path = args.trace or out / "trace.jsonl"
    trace_path.unlink(missing_ok=True)
    manifest = run_manifest(
        args, out, trace_path, task="image", title=f"image: {args.num_images} images of {class_name}",
        settings={**flags_of(args), "class": class_name},
        images=[{"path": "grid.png", "caption": f"{args.num_images} samples of {class_name}"},
                {"path": "trajectory.png", "caption": "the first sample's x̂0 at each denoising step, left to right"}],
        candidate_images="xhat0/{iteration:02d}-{candidate:02d}.png",
    )  # fmt: skip
    manifest()
    trajectory: list[torch.Tensor] = []

    def keep_xhat0(info: dict) -> None:
        """Save the predicted clean images of this step (the report's thumbnails) and the first one's trajectory."""
        images = info["proposals"].candidates
        with torch.no_grad():
            images = images.detach() if ensemble is not None else generator.decode(images)  # alone: model-space x̂0
        trajectory.append(images[0])
        for i, image in enumerate(images[:THUMBNAILS]):
            save_grid(image[None], out / "xhat0" / f"{info['iteration']:02d}-{i:02d}.png", columns=1, pad=0)

    start = time.perf_counter()
    with TraceWriter(trace_path) as trace:
        result = generator.generate(
            args.num_images, ensemble, class_name, num_inference_steps=args.steps, eta=eta, seed=args.seed,
            trace=trace, item=class_name, recurrence=args.recurrence, callback=keep_xhat0, feedback=feedback,
        )  # fmt: skip
    grid = save_grid(result.images, out / "grid.png", columns=min(8, args.num_images))
    save_grid(torch.stack(trajectory), out / "trajectory.png", columns=len(trajectory))
    summary = {"images": args.num_images, "class": class_name, "seconds": round(time.perf_counter() - start, 1)}
    if ensemble is not None:
        with torch.no_grad():
            final = ensemble(result.images, class_name)
        summary.update({f"final mean energy, {k}": round(float(v.mean()), 4) for k, v in final.per_scorer.items()})
    manifest(summary=summary, state="finished")
    print("; ".join(f"{k} {v}" for k, v in summary.items()))
    print(f"wrote {grid}, {out / 'trajectory.png'} and {trace_path}\n{report_hint(out)}")
    return 0

