"""``consensus vqa --video PATH --question "..."``: answer a question about a video or image folder.

The LM (Gemma 3 270M offline, or any causal LM by name) writes the answer; the scorers look at
the frames and steer it token by token. Prints the answer and each scorer's energy for it.
``--video`` takes a video file, a folder of images, an image file, or an easy-VQA id such as
``easy-vqa/test/12`` (that test image made into a clip, as in the offline benchmark). Writes a run folder,
``--out`` (or ``<out>-2``, ... when it already holds a run): the frames it read, ``trace.jsonl`` (the
candidate tokens and every scorer's energy, token by token) and ``run.json``; ``consensus report <folder>``
makes its HTML report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from consensus.cli import (
    HelpFormatter,
    add_ensemble_options,
    add_scorer_option,
    ensemble_options,
    flags_of,
    fresh_run_dir,
    run_manifest,
    user_scorers,
    with_user_scorers,
    with_weights,
)
from consensus.core.trace import TraceWriter
from consensus.report.manifest import report_hint
from consensus.tasks.vqa.experiment import (
    CACHE_SHIFT_STEPS,
    FEEDBACK,
    MAX_NEW_TOKENS,
    OFFLINE_SCORERS,
    TEMPERATURE,
    TOP_K,
    VideoQA,
    build_ensemble,
    load_scorers,
    steering,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("vqa", help="answer a question about a video: an LM steered by image-text scorers",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--video", required=True, help="video file, image folder, image, or easy-vqa/<split>/<id>")
    p.add_argument("--question", required=True)
    p.add_argument("--scorers", default=",".join(OFFLINE_SCORERS),
                   help="comma-separated: committed models, 'imagenet' (natural photos), clip:<hub name>")
    p.add_argument("--feedback", choices=FEEDBACK, default="gradient",
                   help="gradient: ZeroCap's shift of the LM's cache; rescore: the LM's and the scorers' product; none: "
                        "the LM alone")
    p.add_argument("--frames", type=int, default=8, help="frames sampled uniformly from the video")
    p.add_argument("--lm", default=None, help="a causal LM name or directory (default: Gemma 3 270M, offline)")
    p.add_argument("--top-k", type=int, default=TOP_K, help="candidate tokens scored per step")
    p.add_argument("--temperature", type=float, default=TEMPERATURE, help="τ of softmax(-E/τ)")
    p.add_argument("--steps", type=int, default=CACHE_SHIFT_STEPS, help="cache-shift gradient steps per token")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    p.add_argument("--out", type=Path, default=Path("runs/vqa"), help="output folder")
    p.add_argument("--trace", default=None, help="the consensus trace (JSON lines, one per token; default: "
                                                 "trace.jsonl in --out)")
    add_scorer_option(p)
    add_ensemble_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from consensus.tasks.vqa.data import EASY_VQA_PREFIX, easy_vqa_clip
    from consensus.tasks.vqa.video import load_frames

    user = user_scorers(args.scorer)
    if not args.question.strip():
        raise ValueError("--question is empty: ask something about the video")
    if args.frames < 1 or args.top_k < 1 or args.max_new_tokens < 1 or args.steps < 0:
        raise ValueError("--frames, --top-k and --max-new-tokens must be at least 1, and --steps at least 0")
    if args.video.startswith(EASY_VQA_PREFIX):
        frames = easy_vqa_clip(args.video, args.frames)
    else:
        frames = load_frames(args.video, args.frames)
    ensemble = build_ensemble(load_scorers(args.scorers), **ensemble_options(args))
    ensemble = with_user_scorers(with_weights(ensemble, args.weights), user)
    config = steering(args.feedback, temperature=args.temperature, steps=args.steps, top_k=args.top_k,
                      max_new_tokens=args.max_new_tokens)
    qa = VideoQA(load_lm(args.lm), ensemble, config)
    out = fresh_run_dir(args.out)
    trace_path = Path(args.trace) if args.trace else out / "trace.jsonl"
    trace_path.unlink(missing_ok=True)
    for i, frame in enumerate(frames):
        frame.save(out / f"frame_{i:02d}.png")
    manifest = run_manifest(
        args, out, trace_path, task="vqa", title=f"video QA: {args.question}", settings=flags_of(args),
        images=[{"path": f"frame_{i:02d}.png", "caption": f"frame {i + 1}"} for i in range(len(frames))])
    manifest()
    start = time.perf_counter()
    with TraceWriter(trace_path) as trace:
        answer = qa.answer(frames, args.question, trace)
    seconds = time.perf_counter() - start
    manifest(summary={"question": args.question, "answer": answer.text, "frames": len(frames),
                      "seconds": round(seconds, 1), **{f"energy, {k}": round(v, 4) for k, v in answer.energies.items()}},
             state="finished")
    print(f"question: {args.question}\nframes: {len(frames)} from {args.video}\nanswer: {answer.text}")
    for name, energy in answer.energies.items():
        print(f"  {name}: energy {energy:.4f}")
    print(f"({args.feedback} feedback, {seconds:.1f} s)\nwrote {out}\n{report_hint(out)}")
    return 0


def load_lm(name: str | None):
    """Gemma 3 270M (offline) by default, else any causal LM by hub name or directory."""
    if name is None:
        from consensus.zoo.gemma import load_gemma

        return load_gemma()
    from consensus.generators.text.causal_lm import CausalLMGenerator

    return CausalLMGenerator.from_pretrained(name)
