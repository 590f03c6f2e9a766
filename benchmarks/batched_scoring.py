"""The math ensemble scoring several problems' candidates in one call per scorer, against one call per problem.

Runs in lockstep hand their scorers' calls to ``Ensemble.score_items``: each scorer reads every problem's
candidates at once (the verifier's sentence encoder in one batch, the likelihood's fresh forward passes in full
batches). This times it on real samples: N = 8 solutions for each of P gsm_symbolic problems from the offline
generator (with the GSM adapter), scored by the math ensemble (arithmetic, likelihood, agreement, verifier) one
problem at a time and all problems in one ``score_items`` call, interleaved (the order alternating), after a warm-up
of each. Twice: as sampled (the likelihood reads the log-probabilities the generator carried) and as plain strings
(the likelihood runs its own forward pass, as for another model's candidates). It checks that each problem gets
the energies it gets alone.

    python benchmarks/batched_scoring.py [--problems 8] [--repeats 5]

Writes benchmarks/results/batched-scoring.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from consensus.generators.text.steps import Sampling
from consensus.scorers.text.verifier import TrainedVerifier
from consensus.tasks.math.data import load_problems
from consensus.tasks.math.experiment import build_ensemble
from consensus.tasks.math.generator import load_math_generator
from consensus.tasks.math.prompt import STOP, format_prompt

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lm = load_math_generator()
    ensemble = build_ensemble(lm)
    problems = load_problems("gsm_symbolic", args.problems, args.seed)
    questions = [p.question for p in problems]
    s = Sampling()
    drawn = lm.sample([format_prompt(q, []) for q in questions], args.n, max_new_tokens=s.max_new_tokens,
                      temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, stop=STOP,
                      generator=torch.Generator().manual_seed(args.seed))
    kinds = {"sampled": [[c.text for c in cs] for cs in drawn],
             "plain strings": [[str(c.text) for c in cs] for cs in drawn]}
    verifier = next(scorer for scorer in ensemble.scorers if isinstance(scorer, TrainedVerifier))

    def forget_embeddings():
        """The encoder keeps its last call's embeddings (for a second verifier on the same candidates): each timed
        call starts without them, as a new step's candidates do."""
        verifier.encoder._last = {}

    rows = {}
    for kind, candidate_sets in kinds.items():
        def one_by_one():
            forget_embeddings()
            return [ensemble(c, q) for c, q in zip(candidate_sets, questions)]

        def together():
            forget_embeddings()
            return ensemble.score_items(candidate_sets, questions)

        ways = {"one call per problem": one_by_one, "one call for all": together}
        outputs = {name: way() for name, way in ways.items()}  # warm-up, and the energies compared
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        per_scorer: dict[str, dict[str, float]] = {name: {} for name in ways}
        for repeat in range(args.repeats):
            for name in list(ways)[::1 if repeat % 2 == 0 else -1]:
                start = time.perf_counter()
                out = ways[name]()
                seconds[name].append(time.perf_counter() - start)
                for energies in out:
                    for scorer, sec in energies.seconds.items():
                        per_scorer[name][scorer] = per_scorer[name].get(scorer, 0.0) + sec / args.repeats
        alone, merged = outputs["one call per problem"], outputs["one call for all"]
        gap = max(float((a.total - b.total).abs().max()) for a, b in zip(alone, merged))
        same_choice = sum(int(a.total.argmin()) == int(b.total.argmin()) for a, b in zip(alone, merged))
        medians = {name: statistics.median(v) for name, v in seconds.items()}
        rows[kind] = {"seconds": medians, "ratio": medians["one call for all"] / medians["one call per problem"],
                      "per_scorer": per_scorer, "largest_total_difference": gap,
                      "same_choice": f"{same_choice}/{len(problems)}"}
        print(kind, rows[kind], flush=True)
    out = {"problems": args.problems, "n": args.n, "repeats": args.repeats, "threads": torch.get_num_threads(),
           "rows": rows}
    (RESULTS / "batched-scoring.json").write_text(json.dumps(out, indent=1) + "\n")
    scorers = list(rows["sampled"]["per_scorer"]["one call per problem"])
    lines = ["# Math ensemble: several problems' candidates in one call per scorer", "",
             f"`python benchmarks/batched_scoring.py` ({args.problems} gsm_symbolic problems × {args.n} samples, "
             f"{args.repeats} interleaved repeats, median seconds for all problems; {out['threads']} threads).", "",
             "| candidates | one call per problem, s | one call for all, s | ratio | "
             + " | ".join(f"{s}, per problem → for all" for s in scorers)
             + " | largest difference of a total | same choice |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in scorers) + " | ---: | ---: |"]
    for kind, r in rows.items():
        cells = [f"{r['per_scorer']['one call per problem'][s]:.3f} → {r['per_scorer']['one call for all'][s]:.3f}"
                 for s in scorers]
        per_problem, for_all = r["seconds"]["one call per problem"], r["seconds"]["one call for all"]
        lines.append(f"| {kind} | {per_problem:.3f} | {for_all:.3f} | {r['ratio']:.2f} | " + " | ".join(cells)
                     + f" | {r['largest_total_difference']:.1e} | {r['same_choice']} |")
    (RESULTS / "batched-scoring.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
