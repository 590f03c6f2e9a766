"""Video-QA benchmark: the LM alone, steered by each single scorer, and by the ensemble, both feedback forms.

On a seeded, type-stratified sample of the offline easy-VQA test questions (each test image made
into an 8-frame clip; see consensus.tasks.vqa.data), Gemma 3 270M writes every answer; the committed
image–text models steer it. The gradient-free (rescore) conditions run on every question, the
gradient (cache-shift) conditions on a seeded stratified subset, for their cost. Results are
one JSON line per question in benchmarks/results/vqa-easy.jsonl (a killed run resumes where it
stopped); the summary goes to vqa-easy.json and .md and is printed.

    python benchmarks/vqa_benchmark.py --questions 300 --gradient-questions 100

With ActivityNet-QA on disk (its test_q.json, test_a.json and videos/), the paper's setting:

    python benchmarks/vqa_benchmark.py --activitynet DIR \
        --scorers clip:openai/clip-vit-base-patch32,clip:openai/clip-vit-large-patch14
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch

from consensus.distributed.sharded import add_ray_options, connect, sharded
from consensus.eval.harness import run_resumable
from consensus.tasks.vqa.answers import is_correct
from consensus.tasks.vqa.cli import load_lm
from consensus.tasks.vqa.data import activitynet_qa, easy_vqa_examples, sample_examples
from consensus.tasks.vqa.experiment import OFFLINE_SCORERS, VideoQA, build_ensemble, load_scorers, steering
from consensus.tasks.vqa.report import ENSEMBLE, condition_name, markdown, summarize

TITLES = {"easy": "easy-VQA test clips (8 frames); {lm} steered by the committed image-text models",
          "activitynet": "ActivityNet-QA {split} (8 frames); {lm} steered by {scorers}"}


def make_solve(args: argparse.Namespace, gradient_ids: set, lm=None, scorers=None):
    """``solve(examples) -> records``: every condition (LM alone; rescore and gradient feedback, by each
    scorer and by the ensemble; gradient only on ``gradient_ids``) answers each question."""
    lm = lm or load_lm(args.lm)
    scorers = scorers or load_scorers(args.scorers)
    steered_by = {s.name: build_ensemble([s]) for s in scorers} | {ENSEMBLE: build_ensemble(scorers)}
    conditions = {condition_name("none", None): VideoQA(lm, None, steering("none"))}
    for feedback in ("rescore", "gradient"):
        config = steering(feedback)
        for name, ensemble in steered_by.items():
            conditions[condition_name(feedback, name)] = VideoQA(lm, ensemble, config)

    def solve(batch):
        for example in batch:
            frames = example.frames(args.frames)
            record = {"question": example.question, "reference": example.answer, "type": example.question_type,
                      "video": example.video, "answers": {}, "correct": {}, "seconds": {}}
            for name, qa in conditions.items():
                if name.startswith("gradient") and example.question_id not in gradient_ids:
                    continue
                start = time.perf_counter()
                answer = qa.answer(frames, example.question)
                record["seconds"][name] = time.perf_counter() - start
                record["answers"][name] = answer.text
                record["correct"][name] = is_correct(answer.text, example.answer)
            yield record

    return solve


def steering_settings() -> dict:
    """The token step's settings and each feedback's forms with theirs, for the summary."""
    config = steering("gradient")
    return {"top_k": config.top_k, "max_new_tokens": config.max_new_tokens, "stop": list(config.stop),
            **{feedback: [{"form": form.name, **vars(form)} for form in steering(feedback).feedback]
               for feedback in ("rescore", "gradient")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--gradient-questions", type=int, default=100)
    ap.add_argument("--scorers", default=",".join(OFFLINE_SCORERS))
    ap.add_argument("--activitynet", default=None, help="an ActivityNet-QA folder (default: the offline easy-VQA set)")
    ap.add_argument("--split", default="test", help="the ActivityNet-QA split")
    ap.add_argument("--lm", default=None, help="a causal LM name or directory (default: Gemma 3 270M, offline)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--results", default="benchmarks/results")
    add_ray_options(ap, "questions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    dataset = "activitynet" if args.activitynet else "easy"
    pool = activitynet_qa(args.activitynet, args.split) if args.activitynet else easy_vqa_examples("test")
    examples = sample_examples(pool, args.questions, seed=args.seed)
    gradient_ids = {e.question_id for e in sample_examples(examples, args.gradient_questions, seed=args.seed + 1)}
    # What the results file must agree on to be resumed: which questions get gradient feedback depends on both counts.
    settings = {"dataset": dataset, "split": args.split, "lm": args.lm, "scorers": args.scorers, "frames": args.frames,
                "seed": args.seed, "questions": args.questions, "gradient_questions": args.gradient_questions}
    lm, scorers = load_lm(args.lm), load_scorers(args.scorers)
    solve, executor = make_solve(args, gradient_ids, lm, scorers), None
    if args.ray:  # each worker loads the LM and the scorers once
        connect(args.ray, num_cpus=args.workers)
        executor = sharded(functools.partial(make_solve, args, gradient_ids), args.workers)

    out = Path(args.results)
    start = time.time()
    records = run_resumable(examples, lambda e: e.question_id, solve, out / f"vqa-{dataset}.jsonl",
                            correct=lambda r: r["correct"][condition_name("rescore", ENSEMBLE)],
                            description="vqa (accuracy: rescore, ensemble)", executor=executor, settings=settings)
    title = TITLES[dataset].format(split=args.split, lm=args.lm or "Gemma 3 270M", scorers=args.scorers)
    summary = summarize(records)
    summary.update({"title": title, "seed": args.seed, "frames": args.frames, "generator": lm.name,
                    "scorers": [s.name for s in scorers], "steering": steering_settings(),
                    "gradient_questions": len(gradient_ids), "threads": args.threads,
                    "wall_seconds_this_run": time.time() - start})
    (out / f"vqa-{dataset}.json").write_text(json.dumps(summary, indent=1))
    table = markdown(summary, title)
    (out / f"vqa-{dataset}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
