"""Math benchmark: every selection method at the same generator budget, on held-out problems.

For each problem: greedy; N samples (shared prefill) scored by every scorer, giving
self-consistency, best-of-N per single scorer, ensemble consensus at solution level and
pass@N; and ensemble consensus at step level with N proposals per step. Results are one JSON
line per problem in benchmarks/results/math-<family>.jsonl (a killed run resumes where it
stopped); the summary goes to math-<family>.json and .md and is printed.

Families: ``gsm_symbolic_train_templates`` (new problems of the templates the generator was trained
on, none a training question: the analogue of GSM8K's test split, where the paper's generator
lived), ``gsm_symbolic`` (templates it never saw), and the few-shot families on the base model.

With ``--dev N`` it also weighs the ensemble (``consensus.core.weighting``) from N development
problems disjoint from the evaluation ones (gsm_symbolic: new problems of the training templates;
chain_sum: two-digit terms, as every one-digit question is already an evaluation problem; the
word-problem families leg_counting and simple_geometry: other draws, none equal to a question
asked), sampled and scored the same way and kept in math-<family>-dev.jsonl: dev-fitted weights
from their labels, and unlabelled weights from their energies alone (each written to
weights/math-<family>-<kind>.json, the file ``consensus math --weights`` reads). It reports the ensemble with
each beside the equal-weight one: at solution level (chosen from the stored energies) and, for the
weightings of ``--step-weightings``, at step level (run again, in math-<family>-<kind>-step.jsonl).
``--more-samples`` draws N more samples per problem for self-consistency at twice the budget, the
baseline that step-level consensus should match with half the generator tokens. ``--step-verifier`` adds the
step verifier to the four experts; the files made from its scores are named math-<family>-step-verifier*.

    python benchmarks/math_benchmark.py --family gsm_symbolic_train_templates --problems 200 --dev 100 --sample-batch \
        --more-samples
    python benchmarks/math_benchmark.py --family gsm_symbolic_train_templates --problems 200 --dev 100 --sample-batch \
        --more-samples --step-verifier
    python benchmarks/math_benchmark.py --family chain_sum --problems 200 --max-new-tokens 48 --dev 100
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import time
from pathlib import Path

import torch

from consensus.core.ensemble import Ensemble
from consensus.core.weighting import DevSet, fit_unlabelled_weights, fit_weights, write_weights
from consensus.distributed.sharded import add_ray_options, connect, sharded
from consensus.eval.harness import run_resumable
from consensus.generators.text.steps import Sampling
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.tasks.math.data import benchmark_problems
from consensus.tasks.math.experiment import Experiment, build_ensemble
from consensus.tasks.math.generator import load_math_generator
from consensus.tasks.math.report import Fitted, markdown, summarize
from consensus.zoo.text_generators import load_text_generator

FAMILIES = {
    # the paper's setting: a generator fine-tuned on GSM8K's train split, tested on its test split
    "gsm_symbolic_train_templates": "gsm_symbolic, new problems of the training templates; Gemma 3 270M + GSM LoRA "
                                    "(zero-shot)",
    # harder: templates the generator never saw
    "gsm_symbolic": "gsm_symbolic held-out templates; Gemma 3 270M + GSM LoRA (zero-shot)",
    # an easier family where the base model alone has headroom (pass@N well above greedy)
    "chain_sum": "chain_sum, 2 one-digit terms; Gemma 3 270M base, 4-shot",
    # word problems, probed for the easier table: too hard for the base model (results/math-word-problem-probes.md)
    "leg_counting": "leg_counting, 2-3 kinds of animal, 1-5 of each; Gemma 3 270M base, 4-shot",
    "simple_geometry": "simple_geometry, triangles and quadrilaterals; Gemma 3 270M base, 4-shot",
}


def groups(batch: list, together: bool) -> list[list]:
    """The batch as one group of problems run together (--sample-batch), or one group per problem."""
    return [batch] if together else [[p] for p in batch]


def with_weighted_step_level(experiment: Experiment, fitted: Fitted, problems: list, records: list[dict], seed: int,
                             path: Path, settings: dict, batch_size: int, together: bool) -> list[dict]:
    """Step-level consensus again, with weights from the development problems (resumable, in its own file);
    each record gets it under ``fitted.step_key``."""
    ensemble = Ensemble(experiment.ensemble.scorers, fitted.weights, normalization=fitted.normalization)
    weighted = dataclasses.replace(experiment, ensemble=ensemble)

    def solve(batch):
        for group in groups(batch, together):
            yield from ({**s, "weights": fitted.weights} for s in weighted.step_levels(group, seed))

    steps = run_resumable(problems, lambda p: p.id, solve, path, batch_size=batch_size,
                          description=f"step level, {fitted.kind} weights", settings=settings)
    stale = [s["id"] for s in steps if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                                               for a, b in zip(s["weights"], fitted.weights))]
    if stale:
        raise SystemExit(f"{path} holds runs with other weights (e.g. {stale[0]}): the development set changed. "
                         "Delete the file and run again.")
    by_id = {s["id"]: s for s in steps}
    return [{**r, fitted.step_key: by_id[r["id"]]} for r in records]


def build_experiment(args: argparse.Namespace, exemplars: list) -> Experiment:
    """The generator (Gemma + GSM LoRA for gsm_symbolic, base Gemma few-shot otherwise) and the math experts."""
    lm = load_math_generator() if args.family.startswith("gsm_symbolic") else load_text_generator()
    return Experiment(lm, build_ensemble(lm, exemplars, step_verifier=args.step_verifier), n=args.n, beam=args.beam,
                      exemplars=exemplars,
                      sampling=Sampling(max_new_tokens=args.max_new_tokens))


def make_solve(args: argparse.Namespace, exemplars: list, experiment: Experiment | None = None):
    """``solve(problems) -> records``: greedy for the batch, then every method for each problem."""
    experiment = experiment or build_experiment(args, exemplars)

    def solve(batch):
        for group in groups(batch, args.sample_batch):
            yield from experiment.solve_batch(group, seed=args.seed, step_level=args.step_level)

    return solve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=FAMILIES, default="gsm_symbolic")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8, help="problems per batch (the results file grows by batches)")
    ap.add_argument("--sample-batch", action="store_true",
                    help="run a batch's problems together: their greedy and sampled solutions drawn in one generator "
                         "call each, their step-level runs in lockstep (faster; in bfloat16 the draws then depend on "
                         "the batch, so a results file keeps to one choice)")
    ap.add_argument("--no-step-level", dest="step_level", action="store_false",
                    help="leave out step-level consensus, the costliest method (its rows are then missing)")
    ap.add_argument("--more-samples", action="store_true",
                    help="also draw N more samples per problem (another seed), for self-consistency at twice the "
                         "budget (math-<family>-more.jsonl)")
    ap.add_argument("--step-weightings", default="dev-fitted,unlabelled",
                    help="with --dev: the weightings that also get a step-level run (comma-separated; '' for none)")
    ap.add_argument("--step-verifier", action="store_true", help="a fifth expert: the step verifier")
    ap.add_argument("--max-new-tokens", type=int, default=200, help="per solution (gold gsm solutions stay under 200)")
    ap.add_argument("--dev", type=int, default=0, help="development problems to fit the ensemble's weights on (0: none)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--results", default="benchmarks/results")
    add_ray_options(ap, "problems")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    chosen = benchmark_problems(args.family, args.problems, args.dev, args.seed)
    exemplars, problems, dev_problems = chosen.exemplars, chosen.problems, chosen.development
    # What the results files must agree on to be resumed (not --problems: a run may grow).
    # The samples depend on these; every record made from scores also on the scorers.
    experiment = build_experiment(args, exemplars)
    sampling = {"family": args.family, "n": args.n, "beam": args.beam, "seed": args.seed,
                "max_new_tokens": args.max_new_tokens, **({"sample_batch": args.batch} if args.sample_batch else {}),
                **({} if args.step_level else {"step_level": False}), "backend": experiment.lm.backend}
    settings = {**sampling, "scorers": experiment.ensemble.names}
    lm = experiment.lm
    solve, executor = make_solve(args, exemplars, experiment), None
    if args.ray:  # each worker loads the models once; batches are the one-process run's, so greedy is too
        connect(args.ray, num_cpus=args.workers)
        executor = sharded(functools.partial(make_solve, args, exemplars), args.workers, batch_size=args.batch)

    out = Path(args.results)
    name = f"math-{args.family}" + ("-step-verifier" if args.step_verifier else "")
    start = time.time()
    weightings = []
    if dev_problems:
        def score(batch):
            for group in groups(batch, args.sample_batch):
                yield from (scored for scored, _ in experiment.score_samples(group, args.seed))

        dev = run_resumable(dev_problems, lambda p: p.id, score, out / f"{name}-dev.jsonl",
                            batch_size=args.batch, description=f"{args.family} dev", settings=settings)
        names, normalization = experiment.ensemble.names, experiment.ensemble.normalization
        sets = [DevSet(r["energies"], [is_correct(extract_flexible(s), r["gold"]) for s in r["samples"]]) for r in dev]
        weightings = [Fitted(names, fit_weights(sets, names, normalization), normalization, len(dev)),
                      Fitted(names, fit_unlabelled_weights([r["energies"] for r in dev], names, normalization),
                             normalization, len(dev), kind="unlabelled")]
        for fitted in weightings:  # what `consensus math --weights FILE` reads
            write_weights(out / "weights" / f"{name}-{fitted.kind}.json", fitted.names, fitted.weights,
                          fitted.normalization, fitted=fitted.kind, family=args.family, dev_problems=fitted.dev_problems,
                          by="benchmarks/math_benchmark.py --dev")
    level = "step" if args.step_level else "solution"
    records = run_resumable(problems, lambda p: p.id, solve, out / f"{name}.jsonl",
                            batch_size=args.batch, description=f"{args.family} (accuracy: ensemble, {level} level)",
                            correct=lambda r: is_correct(extract_flexible(r[f"{level}_level"]["text"]), r["gold"]),
                            executor=executor, settings=settings)
    if args.more_samples:
        more = run_resumable(problems, lambda p: p.id, lambda batch: experiment.samples(batch, args.seed + 1),
                             out / f"math-{args.family}-more.jsonl", batch_size=args.batch,
                             description=f"{args.n} more samples", settings=sampling)
        by_id = {m["id"]: m for m in more}
        records = [{**r, "more_samples": by_id[r["id"]]} for r in records]
    for fitted in weightings:
        if args.step_level and fitted.kind in args.step_weightings.split(","):
            records = with_weighted_step_level(experiment, fitted, problems, records, args.seed,
                                               out / f"{name}-{fitted.step_key.split('_')[-1]}-step.jsonl",
                                               settings, args.batch, args.sample_batch)
    summary = summarize(records, weightings)
    summary.update({"family": FAMILIES[args.family], "n": args.n, "beam": args.beam, "seed": args.seed,
                    "max_new_tokens": args.max_new_tokens,
                    "generator": lm.name, "backend": lm.backend, "ensemble": repr(experiment.ensemble),
                    "threads": args.threads, "wall_seconds_this_run": time.time() - start})
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    table = markdown(summary, FAMILIES[args.family])
    (out / f"{name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
