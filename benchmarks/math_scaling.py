"""Math accuracy against compute: every method's curve over the budget, and adaptive compute.

Per family and seed, one seeded draw of N_max solutions per problem (a resumable harness file) with the energies
of the experts that judge a solution alone, scored as it is drawn; a ``--scorer`` added later scores the cached
draws into a file of its own (nothing is sampled again). Greedy once. A solution-level method at N in 1, 2, 4, …,
N_max is computed by subsampling the draw: ``--subsets`` random subsets of N solutions per problem (at N_max the
whole draw), the method's correctness averaged over them, so a problem contributes its expected correctness at N
and a method's tokens are its subsets' own. Methods: greedy, maj@N, best-of-N by each single scorer, the ensemble
with equal weights (summed, and in the two conservative combinations: worst case and uncertainty-weighted) and
with the dev-fitted and unlabelled weights of ``weights/math-<family>-<kind>.json`` (fitted by
``math_benchmark.py --dev 100`` on development problems disjoint from these), weighted majority (each vote weighted by exp(−E) of the equal-weight
ensemble), and pass@N, the ceiling.
AnswerAgreement reads the whole candidate set, so it is scored on each subset, not cached per solution.

Adaptive compute (``consensus.core.rounds``, ``consensus.core.agreement``) replays the engine's rule on random
orders of the draw: rounds of 2, 4, …, N_max solutions (and, for the ensemble's choice, up to 16 too: the fixed
N it is held against), stopping once the answers agree (a share of the votes, or of the ensemble's weights),
choosing by majority or by the ensemble. Its curve runs over the share.

Step level (N proposed next lines a step, and either a beam of the 2 best or 2 particles resampled by exp(−E))
runs at each ``--step-n`` with its own draws, on the first ``--step-problems`` problems, at the ``--step-seeds``.
Everything goes to benchmarks/results/math-scaling/; the summary to math-scaling-<family>.json and .md, the figure
to math-scaling-<family>.svg.

    python benchmarks/math_scaling.py --family chain_sum --max-new-tokens 48 --seeds 0,1,2 --step-problems 30 --batch 2
    python benchmarks/math_scaling.py --family gsm_symbolic_train_templates --problems 100 --seeds 0,1,2 \
        --step-problems 20 --batch 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from consensus.cli import add_scorer_option, user_scorers, with_user_scorers
from consensus.core.agreement import Agreement
from consensus.core.ensemble import Ensemble, EnsembleEnergies, combine
from consensus.core.feedback import Feedback, Resample, TopK
from consensus.core.weighting import read_weights
from consensus.core.rounds import DOUBLING
from consensus.eval.harness import run_resumable
from consensus.eval.metrics import majority, mean_interval, paired_difference
from consensus.generators.text.steps import Sampling
from consensus.report.benchmark_page import curve_lines
from consensus.report.plots import accuracy_against_tokens
from consensus.scorers.text import AnswerAgreement
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.tasks.math.data import benchmark_problems
from consensus.tasks.math.experiment import UNTIL, Experiment, build_ensemble, draw_samples
from consensus.tasks.math.generator import load_math_generator
from consensus.zoo.text_generators import load_text_generator

SHARES = (0.5, 0.6, 0.75, 0.9, 1.0)  # the adaptive curve's points; 0.75 is its_hub's rule, stated before measuring
HEADLINE_SHARE = 0.75
ENSEMBLE_TARGET = 16  # adaptive ensembles are held against the ensemble at this fixed N, with rounds up to it too
# the Ensemble's conservative combinations (equal weights), λ = 1 stated before measuring
CONSERVATIVE = {"worst case": ("worst", 0.0), "uncertainty (λ = 1)": ("uncertainty", 1.0)}


def load(args: argparse.Namespace, exemplars: list) -> Experiment:
    lm = load_math_generator() if args.family.startswith("gsm_symbolic") else load_text_generator()
    return Experiment(lm, build_ensemble(lm, exemplars), n=args.n_max, exemplars=exemplars,
                      sampling=Sampling(max_new_tokens=args.max_new_tokens))


def collect(args: argparse.Namespace, problems: list, experiment: Experiment, extra: list, folder: Path) -> dict:
    """Run (or resume) every stage; returns the records by stage."""
    lm, key = experiment.lm, lambda p: p.id
    base = {"family": args.family, "max_new_tokens": args.max_new_tokens, "backend": lm.backend,
            "generator": lm.name}
    prefix = folder / args.family
    greedy = run_resumable(problems, key, lambda batch: ({"gold": p.answer, **g} for p, g in
                                                         zip(batch, experiment.greedy(batch))),
                           f"{prefix}-greedy.jsonl", batch_size=args.batch, description="greedy", settings=base)
    out: dict = {"greedy": {g["id"]: g for g in greedy}, "draws": {}, "scores": {}, "steps": {}}
    later = {scorer.name for scorer, _ in extra}
    cached = Ensemble([s for s in experiment.ensemble.scorers
                       if not isinstance(s, AnswerAgreement) and s.name not in later])
    for seed in args.seeds:
        drawing = {**base, "n_max": args.n_max, "seed": seed}
        draws = run_resumable(problems, key, drawn_and_scored(experiment, cached, args.n_max, seed),
                              f"{prefix}-s{seed}-draw.jsonl", batch_size=args.batch,
                              description=f"draw of {args.n_max}, seed {seed}",
                              settings={**drawing, "scorers": cached.names})
        by_id = {d["id"]: d for d in draws}
        out["draws"][seed] = by_id
        for scorer, _ in extra:  # a scorer the draws were not scored by: scored from them, nothing sampled again
            out["scores"][seed, scorer.name] = {s["id"]: s for s in run_resumable(
                problems, key, scores_of(Ensemble([scorer]), by_id), f"{prefix}-s{seed}-{scorer.name}.jsonl",
                batch_size=args.batch, description=f"{scorer.name}, seed {seed}",
                settings={**drawing, "scorer": scorer.name})}
        for (form, feedback), n in itertools.product(step_forms(args.beam).items(),
                                                     args.step_n if seed in args.step_seeds else ()):
            stepping = {**base, "seed": seed, "n": n, "feedback": repr(feedback), "scorers": experiment.ensemble.names}
            stepper = Experiment(lm, experiment.ensemble, n=n, exemplars=experiment.exemplars,
                                 sampling=experiment.sampling)
            out["steps"][seed, n, form] = {s["id"]: s for s in run_resumable(
                problems[:args.step_problems], key,
                lambda batch, s=seed, e=stepper, f=feedback: ({"gold": p.answer, **r}
                                                              for p, r in zip(batch, e.step_levels(batch, s, f))),
                f"{prefix}-s{seed}-step-{form.split()[0]}-n{n}{''.join(f'+{m}' for m in sorted(later))}.jsonl",
                batch_size=args.batch,
                description=f"step level ({form}) N={n}, seed {seed}", settings=stepping)}
    return out


def step_forms(beam: int) -> dict[str, Feedback]:
    """Step level's two ways to keep partial solutions: a beam of the best, or as many particles drawn by
    exp(−E) (sequential Monte Carlo)."""
    return {f"beam {beam}": TopK(beam), f"particles {beam}": Resample(k=beam)}


def drawn_and_scored(experiment: Experiment, cached: Ensemble, n: int, seed: int) -> Callable[[list], list[dict]]:
    """Per problem: n seeded solutions (each one's tokens) and the energies of each scorer that judges a solution
    alone, scored right after the draw (the likelihood then reads the log-probabilities the draw kept)."""
    def draw(batch: list) -> list[dict]:
        drawn = draw_samples(experiment.lm, batch, n, seed, experiment.sampling, experiment.exemplars)
        scored = cached.score_items([d["samples"] for d in drawn], [p.question for p in batch])
        return [{"question": p.question, "gold": p.answer, **d,
                 "energies": {k: v.tolist() for k, v in e.per_scorer.items()},
                 "score_seconds": dict(e.seconds)}
                for p, d, e in zip(batch, drawn, scored)]

    return draw


def scores_of(ensemble: Ensemble, draws: dict) -> Callable[[list], list[dict]]:
    """One scorer's raw energies of each problem's cached draw, the problems' calls in one batch."""
    [name] = ensemble.names

    def score(batch: list) -> list[dict]:
        energies = ensemble.score_items([draws[p.id]["samples"] for p in batch], [p.question for p in batch])
        return [{"energies": e.per_scorer[name].tolist(), "seconds": e.seconds[name]} for e in energies]

    return score


def subsets(n_max: int, n: int, count: int, tag: str) -> list[list[int]]:
    """``count`` random n-subsets of the draw (the whole draw once at n_max), the same for every method."""
    if n == n_max:
        return [list(range(n_max))]
    rng = random.Random(tag)
    return [rng.sample(range(n_max), n) for _ in range(count)]


class Drawn:
    """One problem's draw at one seed, with every cached scorer's energies: what each method needs."""

    def __init__(self, draw: dict, energies: dict[str, list[float]], weightings: dict[str, list[float]]):
        self.draw, self.energies, self.weightings = draw, energies, weightings
        self.answers = [extract_flexible(s) for s in draw["samples"]]
        self.right = [is_correct(a, draw["gold"]) for a in self.answers]
        self.agreement = AnswerAgreement()

    def per_scorer(self, chosen: Sequence[int]) -> dict[str, torch.Tensor]:
        texts = [self.draw["samples"][i] for i in chosen]
        out = {name: torch.tensor([e[i] for i in chosen], dtype=torch.float64) for name, e in self.energies.items()}
        return {**out, "AnswerAgreement": self.agreement.energy(texts, self.draw["question"])}

    def total(self, per_scorer: dict[str, torch.Tensor], weights: dict[str, float], combination: str = "sum",
              spread: float = 1.0) -> torch.Tensor:
        return combine([per_scorer[k] for k in weights], list(weights.values()), "zscore", combination, spread)

    def outcomes(self, chosen: list[int]) -> dict[str, float]:
        """Whether each solution-level method is right on this subset of the draw."""
        answers = [self.answers[i] for i in chosen]
        per_scorer = self.per_scorer(chosen)
        out = {"maj@N": float(is_correct(majority(answers), self.draw["gold"]))}
        for name, e in per_scorer.items():
            out[f"best-of-N: {name}"] = float(self.right[chosen[int(torch.argmin(e))]])
        for kind, weights in self.weightings.items():
            out[f"ensemble, {kind}"] = float(self.right[chosen[int(torch.argmin(self.total(per_scorer, weights)))]])
        for name, (combination, spread) in CONSERVATIVE.items():
            total = self.total(per_scorer, self.weightings["equal"], combination, spread)
            out[f"ensemble, {name}"] = float(self.right[chosen[int(torch.argmin(total))]])
        votes = Agreement(lambda a: a, weighted=True).leader(answers, self.total(per_scorer, self.weightings["equal"]))
        out["weighted majority"] = float(is_correct(votes, self.draw["gold"]))
        out["pass@N"] = float(any(self.right[i] for i in chosen))
        return out

    def adaptive(self, order: list[int], caps: Sequence[int]) -> dict[str, tuple[float, int]]:
        """Each adaptive rule replayed on this order of the draw: (right, tokens spent). Rounds of 2, 4, …, up to
        each of ``caps`` (the last is the whole draw); a rule stops at the first round whose answers agree by its
        share of the votes or of the ensemble's weight (equal or dev-fitted), or whose ensemble choice has every
        computation right (``verified``), and answers by majority (the agreement rules) or by that ensemble's
        choice. Rules capped below the whole draw are named by their cap, and only the ensemble's choice is kept
        (they are held against the ensemble at their cap). Each round is scored once, for every cap."""
        out = {}
        rounds = [order[:s] for s in DOUBLING if s <= caps[-1]]
        agreeing = {f"{'ensemble weight' if weighted else 'votes'} ≥ {share:.0%}": Agreement(
            lambda a: a, share=share, weighted=weighted) for share, weighted in itertools.product(SHARES, (False, True))}
        rules = {**agreeing, "verified": UNTIL["verified"]}
        scorers = [(pool, [self.answers[i] for i in pool], self.per_scorer(pool)) for pool in rounds]
        per_round = {kind: [(pool, answers, EnsembleEnergies(self.total(e, self.weightings[kind]), e))
                            for pool, answers, e in scorers]
                     for kind in ("equal", "dev-fitted weights") if kind in self.weightings}  # by weighting
        for cap, (kind, scored) in itertools.product(caps, per_round.items()):
            capped = "" if cap == caps[-1] else f" (up to {cap})"
            ensemble = "adaptive ensemble" + ("" if kind == "equal" else f" ({kind})") + capped
            within = [r for r in scored if len(r[0]) <= cap]
            for stop, rule in rules.items():
                pool, answers, energies = next((r for r in within if rule.settled(r[1], r[2])), within[-1])
                tokens = sum(self.draw["sample_tokens"][i] for i in pool)
                out[f"{ensemble}, {stop}"] = (float(self.right[pool[int(torch.argmin(energies.total))]]), tokens)
                if kind == "equal" and not capped and stop in agreeing:
                    out[f"adaptive maj, {stop}"] = (float(is_correct(majority(answers), self.draw["gold"])), tokens)
        return out


def weightings_of(family: str, results: Path, ensemble: Ensemble, experts: list[str]) -> dict[str, dict[str, float]]:
    """The ensemble's own weights ("equal": 1 for the task's ``experts``, a ``--scorer``'s as given), and the
    dev-fitted and unlabelled weights of the experts that ``math_benchmark.py --dev`` wrote for this family."""
    out = {"equal": dict(zip(ensemble.names, ensemble.weights))}
    for kind in ("dev-fitted", "unlabelled"):
        path = results / "weights" / f"math-{family}-{kind}.json"
        if path.exists():
            out[f"{kind} weights"] = dict(zip(experts, read_weights(path, experts, ensemble.normalization)))
    return out


def analyse(args: argparse.Namespace, problems: list, stages: dict, weightings: dict) -> dict:
    """Per method and N: the accuracy (averaged over subsets and seeds, per problem, then over problems, with its
    bootstrap interval), the spread across seeds, and the generator tokens per problem."""
    ids = [p.id for p in problems]
    sizes = [n for n in (1, *DOUBLING) if n <= args.n_max]
    # method -> N -> {"right" | "tokens": {problem index: {seed index: value}}}; step level holds fewer problems
    per_method: dict[str, dict[int, dict[str, dict[int, dict[int, float]]]]] = {}

    def add(method: str, n: int, seed_index: int, index: int, right: float, tokens: float) -> None:
        cell = per_method.setdefault(method, {}).setdefault(n, {"right": {}, "tokens": {}})
        cell["right"].setdefault(index, {})[seed_index] = right
        cell["tokens"].setdefault(index, {})[seed_index] = tokens

    for s_index, seed in enumerate(args.seeds):
        for index, pid in enumerate(ids):
            draw = stages["draws"][seed][pid]
            energies = {**draw["energies"], **{name: stages["scores"][seed, name][pid]["energies"]
                                               for (s, name) in stages["scores"] if s == seed}}
            problem = Drawn(draw, energies, weightings)
            greedy = stages["greedy"][pid]
            add("greedy", 1, s_index, index, float(is_correct(extract_flexible(greedy["text"]), greedy["gold"])),
                greedy["tokens"])
            for n in sizes:
                picks = subsets(args.n_max, n, args.subsets, f"{seed}/{pid}/{n}")
                sums: dict[str, float] = {}
                for chosen in picks:
                    for method, right in problem.outcomes(chosen).items():
                        sums[method] = sums.get(method, 0.0) + right
                tokens = sum(sum(draw["sample_tokens"][i] for i in c) for c in picks) / len(picks)
                for method, total in sums.items():
                    add(method, n, s_index, index, total / len(picks), tokens)
            orders = [random.Random(f"{seed}/{pid}/order/{k}").sample(range(args.n_max), args.n_max)
                      for k in range(args.subsets)]
            caps = sorted({min(ENSEMBLE_TARGET, args.n_max), args.n_max})
            replays = [problem.adaptive(order, caps) for order in orders]
            for method in replays[0]:
                add(method, 0, s_index, index, sum(r[method][0] for r in replays) / len(replays),
                    sum(r[method][1] for r in replays) / len(replays))
            for (s, n, form), steps in stages["steps"].items():
                if s == seed and pid in steps:
                    step = steps[pid]
                    add(f"ensemble, step level ({form})", n, s_index, index,
                        float(is_correct(extract_flexible(step["text"]), step["gold"])), step["tokens"])
    return {method: {n: summarise_cell(cell, len(args.seeds)) for n, cell in by_n.items()}
            for method, by_n in per_method.items()}


def summarise_cell(cell: dict[str, dict[int, dict[int, float]]], seeds: int) -> dict:
    """A method at one N: mean accuracy with its interval (over problems, each averaged over its seeds), each
    seed's accuracy, tokens per problem."""
    problems = sorted(cell["right"])
    per_problem = [sum(cell["right"][i].values()) / len(cell["right"][i]) for i in problems]
    mean, low, high = mean_interval(per_problem, resamples=2000)
    per_seed = [[cell["right"][i][k] for i in problems if k in cell["right"][i]] for k in range(seeds)]
    tokens = sum(sum(cell["tokens"][i].values()) / len(cell["tokens"][i]) for i in problems) / len(problems)
    return {"accuracy": 100 * mean, "low": 100 * low, "high": 100 * high,
            "per_seed": [100 * sum(v) / len(v) for v in per_seed if v], "tokens": tokens, "problems": len(problems),
            "per_problem": per_problem}


def claims(curves: dict) -> dict:
    """At each N ≥ 4, the ensemble (equal and dev-fitted weights) against the best single scorer at that N and
    against maj@N; each adaptive rule at the headline share against its fixed peer (paired over problems, with its
    share of the peer's tokens): the ensemble with rounds up to 16 against that ensemble at N = 16; with rounds up to
    the whole draw, against that ensemble at N_max and (equal weights) maj@N_max; majority against maj@N_max."""
    out = {}
    singles = [m for m in curves if m.startswith("best-of-N") and m != "best-of-N: AnswerAgreement"]
    for ensemble in ("ensemble, equal", "ensemble, dev-fitted weights"):
        for n in sorted(curves.get(ensemble, {})):
            if n < 4:
                continue
            ours = curves[ensemble][n]["per_problem"]
            best = max(singles, key=lambda m: curves[m][n]["accuracy"])
            out[f"N={n}: {ensemble} - best single scorer ({best.split(': ')[1]})"] = paired_difference(
                ours, curves[best][n]["per_problem"])
            out[f"N={n}: {ensemble} - maj@{n}"] = paired_difference(ours, curves["maj@N"][n]["per_problem"])
    n_max = max(curves["maj@N"])
    for rule in [m for m in curves if m.startswith("adaptive") and m.endswith((f"≥ {HEADLINE_SHARE:.0%}", "verified"))]:
        weights = "ensemble, dev-fitted weights" if "dev-fitted" in rule else "ensemble, equal"
        if f"(up to {ENSEMBLE_TARGET})" in rule:
            targets = [(weights, ENSEMBLE_TARGET)]
        elif rule.startswith("adaptive ensemble"):  # the whole draw: against the ensemble and majority there
            targets = [(weights, n_max)] + ([("maj@N", n_max)] if "dev-fitted" not in rule else [])
        else:
            targets = [("maj@N", n_max)]
        for method, n in targets:
            if n in curves.get(method, {}):
                fixed, adaptive = curves[method][n], curves[rule][0]
                out[f"{rule} - {method} at N={n}"] = {
                    **paired_difference(adaptive["per_problem"], fixed["per_problem"]),
                    "token_share": adaptive["tokens"] / fixed["tokens"]}
    return out


def markdown(summary: dict) -> str:
    curves = summary["curves"]
    sizes = sorted({n for by_n in curves.values() for n in by_n if n > 0})
    lines = [f"### {summary['title']}", "",
             f"{summary['problems']} problems, seeds {summary['seeds']}, one draw of {summary['n_max']} solutions per "
             f"problem and seed; each N averaged over {summary['subsets']} random subsets. Accuracy (%) with its 95% "
             "bootstrap interval over problems; tokens: generator tokens per problem.", "",
             "| method | " + " | ".join(f"N={n}" for n in sizes) + " |", "| --- |" + " --- |" * len(sizes)]
    for method, by_n in curves.items():
        if 0 in by_n or method == "greedy":
            continue
        cells = [f"{by_n[n]['accuracy']:.1f} [{by_n[n]['low']:.1f}, {by_n[n]['high']:.1f}]" if n in by_n else ""
                 for n in sizes]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    tokens = curves["maj@N"]
    lines.append("| generator tokens (solution level) | " + " | ".join(
        f"{tokens[n]['tokens']:.0f}" for n in sizes) + " |")
    greedy = curves["greedy"][1]
    lines += ["", f"Greedy: {greedy['accuracy']:.1f} [{greedy['low']:.1f}, {greedy['high']:.1f}] at "
                  f"{greedy['tokens']:.0f} tokens.", "", "Adaptive compute (rounds of 2, 4, …, "
                  f"{summary['n_max']}; stop once the leading answer holds the share):", "",
              "| rule | accuracy | tokens / problem |", "| --- | --- | --- |"]
    for method, by_n in curves.items():
        if 0 in by_n:
            c = by_n[0]
            lines.append(f"| {method} | {c['accuracy']:.1f} [{c['low']:.1f}, {c['high']:.1f}] | {c['tokens']:.0f} |")
    lines += ["", "| claim | points | 95% paired bootstrap | wins / losses | token share |",
              "| --- | --- | --- | --- | --- |"]
    for name, c in summary["claims"].items():
        share = f"{100 * c['token_share']:.0f}%" if "token_share" in c else ""
        lines.append(f"| {name} | {c['points']:+.1f} | [{c['low']:+.1f}, {c['high']:+.1f}] | {c['wins']} / "
                     f"{c['losses']} | {share} |")
    lines += ["", f"Wall time: {summary['wall_seconds']}", ""]
    return "\n".join(lines)


def wall_seconds(stages: dict) -> dict[str, float]:
    """Seconds each stage took (sums of the records' own seconds)."""
    out = {"greedy": sum(g["seconds"] for g in stages["greedy"].values()),
           "draws": sum(d["seconds"] for draws in stages["draws"].values() for d in draws.values())}
    for draws in stages["draws"].values():
        for d in draws.values():
            for name, seconds in d["score_seconds"].items():
                out[name] = out.get(name, 0.0) + seconds
    for (_, name), scores in stages["scores"].items():  # the --scorer ones
        out[name] = out.get(name, 0.0) + sum(s["seconds"] for s in scores.values())
    for steps in stages["steps"].values():
        out["step level"] = out.get("step level", 0.0) + sum(s["seconds"]["total"] for s in steps.values())
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=("chain_sum", "gsm_symbolic_train_templates"), default="chain_sum")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n-max", type=int, default=32)
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--subsets", type=int, default=20, help="random subsets per N and problem (orders, for adaptive)")
    ap.add_argument("--step-n", type=lambda s: [int(v) for v in s.split(",") if v], default=[2, 4, 8, 16])
    ap.add_argument("--step-problems", type=int, default=200, help="step level on the first this many problems")
    ap.add_argument("--step-seeds", type=lambda s: [int(v) for v in s.split(",") if v], default=[0],
                    help="the seeds step level runs at (each N a draw of its own)")
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8, help="problems per batch (drawn together, in lockstep)")
    ap.add_argument("--results", default="benchmarks/results")
    add_scorer_option(ap)
    args = ap.parse_args()
    if args.n_max not in DOUBLING:
        raise SystemExit(f"--n-max must be one of the doubling rounds {DOUBLING}")
    results = Path(args.results)
    folder = results / "math-scaling"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = benchmark_problems(args.family, args.problems, seed=0)
    start = time.time()
    extra = user_scorers(args.scorer)
    experiment = load(args, chosen.exemplars)
    experts = experiment.ensemble.names
    experiment.ensemble = with_user_scorers(experiment.ensemble, extra)
    stages = collect(args, chosen.problems, experiment, extra, folder)
    weightings = weightings_of(args.family, results, experiment.ensemble, experts)
    curves = analyse(args, chosen.problems, stages, weightings)
    summary = {"title": f"Accuracy against compute: {args.family}", "family": args.family,
               "problems": len(chosen.problems), "seeds": args.seeds, "n_max": args.n_max, "subsets": args.subsets,
               "generator": experiment.lm.name, "backend": experiment.lm.backend,
               "weights": weightings, "curves": curves, "claims": claims(curves),
               "wall_seconds": wall_seconds(stages), "this_run_seconds": round(time.time() - start, 1)}
    name = f"math-scaling-{args.family}"
    (results / f"{name}.json").write_text(json.dumps(summary, indent=1))
    (results / f"{name}.svg").write_text(accuracy_against_tokens(curve_lines(curves), summary["title"]))
    table = markdown(summary)
    (results / f"{name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
