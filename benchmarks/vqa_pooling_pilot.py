"""How the video-QA ensemble pools its scorers, chosen on easy-VQA *training* questions (never test).

Rescore feedback, the committed models; each pooling rule answers the same seeded, type-stratified
training questions (their clips are made as the test clips are). Compared: the log-linear pool of
``consensus.tasks.vqa.experiment.build_ensemble`` against z-scores across the candidates (one scorer), and
against the plain product of the models' distributions (three scorers). Writes
benchmarks/results/vqa-pooling-pilot.md and prints it.

    python benchmarks/vqa_pooling_pilot.py --questions 60
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from consensus import Ensemble
from consensus.eval.metrics import accuracy
from consensus.tasks.vqa.answers import is_correct
from consensus.tasks.vqa.cli import load_lm
from consensus.tasks.vqa.data import easy_vqa_examples, sample_examples
from consensus.tasks.vqa.experiment import OFFLINE_SCORERS, VideoQA, build_ensemble, load_scorers, steering


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--results", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    examples = sample_examples(easy_vqa_examples("train"), args.questions, seed=args.seed)
    lm, scorers = load_lm(None), load_scorers(",".join(OFFLINE_SCORERS))
    one = scorers[0]
    rules = {
        f"{one.name} alone: log-linear pool (weight s, no normalisation)": build_ensemble([one]),
        f"{one.name} alone: z-scores across the candidates": Ensemble([one], normalization="zscore"),
        "three models: log-linear pool (weights s_n / N)": build_ensemble(scorers),
        "three models: plain product (weights s_n)": Ensemble(scorers, weights=[s.logit_scale for s in scorers]),
    }
    config = steering("rescore")
    frames = {e.question_id: e.frames(8) for e in examples}
    lines = [f"### Pooling the video-QA scorers: {len(examples)} easy-VQA training questions, rescore feedback", "",
             "| pooling | accuracy [95% CI] |", "| --- | --- |"]
    for name, ensemble in rules.items():
        qa = VideoQA(lm, ensemble, config)
        right = [is_correct(qa.answer(frames[e.question_id], e.question).text, e.answer) for e in examples]
        a = accuracy(right)
        lines.append(f"| {name} | {100 * a.value:.1f} [{100 * a.low:.1f}, {100 * a.high:.1f}] ({a.correct}/{a.total}) |")
        print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    Path(args.results, "vqa-pooling-pilot.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
