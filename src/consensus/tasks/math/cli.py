"""``consensus math``: evaluate a consensus method on math word problems, resumably."""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import replace
from pathlib import Path

import consensus
from consensus.cli import (HelpFormatter, add_ensemble_options, add_scorer_option, ensemble_options, fresh_run_dir,
                           lock_run_folder, run_manifest, user_scorers, with_user_scorers, with_weights)
from consensus.core.trace import TraceWriter, drop_items
from consensus.distributed.sharded import add_ray_options
from consensus.eval.metrics import accuracy, majority, paired_difference
from consensus.generators.text.causal_lm import resolve_dtype
from consensus.generators.text.prefix_cache import forget_kept_prefixes
from consensus.report.manifest import MANIFEST, report_hint
from consensus.scorers.text.answers import extract_flexible, extract_strict, is_correct
from consensus.tasks.math.data import EXEMPLAR_SEED, FEW_SHOT_FAMILIES, few_shot_exemplars, gsm_symbolic, load_problems
from consensus.zoo.text_generators import BACKENDS, resolve_backend

METHODS = ("greedy", "self-consistency", "solution", "step", "adaptive")
SCORED = ("solution", "step", "adaptive")  # the methods that need the scorers


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("math", help="solve math word problems with ensemble consensus",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--size", type=int, default=20, help="number of problems")
    add_solver_options(p)
    p.add_argument("--baseline", choices=("greedy", "none"), default="greedy",
                   help="with --method solution, step or adaptive, also decode greedily on the same problems (the "
                        "generator alone) and report both side by side")
    p.add_argument("--batch", type=int, default=1,
                   help="problems solved together, their generator calls merged into one batch (every method; "
                        "solution and step level run them in lockstep, one generator call and one call per scorer "
                        "a step): faster; each draws from its own seed, so a float32 torch model draws what it "
                        "draws alone, but a bfloat16 one or llama.cpp (the offline default) rounds a batch by its "
                        "shape, and its records then depend on which problems share a batch")
    p.add_argument("--out", default=None, help="the run folder: results.jsonl (one JSON line per problem; a run "
                                               "started again resumes it), trace.jsonl and run.json (default: the "
                                               "first of runs/math, runs/math-2, ... that is empty or holds a run of "
                                               "these settings)")
    p.add_argument("--trace", default=None, help="the consensus trace (JSON lines; default: trace.jsonl in --out)")
    add_ray_options(p, "problems")


def add_solver_options(p: argparse.ArgumentParser) -> None:
    """What ``make_solve`` builds from: the problems' family, the method and its budget, the generator and the
    scorers (``consensus math`` and ``consensus serve`` share them)."""
    p.add_argument("--source", default="gsm_symbolic",
                   help="gsm_symbolic (held-out templates), gsm_symbolic_train_templates (new problems of the "
                        "generator's training templates), chain_sum (a ± b), leg_counting (animals' legs), "
                        "simple_geometry (a polygon's missing angle), or a GSM8K .jsonl file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=METHODS, default="solution",
                   help="greedy decoding; majority vote over N; ensemble consensus over N full solutions; "
                        "step-level ensemble consensus; or adaptive compute: full solutions drawn in rounds of 2, 4, "
                        "8, ... up to N, stopped as --until says, the ensemble choosing among them")
    p.add_argument("--until", choices=("agree", "verified"), default="agree",
                   help="when --method adaptive stops drawing: once 75%% of the solutions give one answer (agree), or "
                        "once the ensemble's choice has every computation right by the arithmetic verifier "
                        "(verified)")
    p.add_argument("--n", type=int, default=8, help="proposals per problem (per step for --method step; at most, for "
                                                    "--method adaptive)")
    p.add_argument("--beam", type=int, default=2, help="partial solutions kept per step (--method step)")
    add_ensemble_options(p, normalization="zscore")
    p.add_argument("--lm-verifier", action="store_true",
                   help="a fifth expert: the LM verifier, the offline math generator with a LoRA and a value head "
                        "trained on its own samples (it reads hidden states: the torch or llama.cpp backend)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="what runs the generator: torch (transformers; bfloat16 where the CPU computes it natively, "
                        "float32 otherwise), llama.cpp (a GGUF) or openai (an OpenAI-compatible server at --base-url); "
                        "auto: llama.cpp for the offline Gemma where llama-cpp-python is installed and for a .gguf "
                        "--model, torch otherwise")
    p.add_argument("--base-url", default=None, help="the OpenAI-compatible server of --backend openai, e.g. "
                                                    "http://127.0.0.1:8000/v1 (its key from $OPENAI_API_KEY)")
    p.add_argument("--model", default=None, help="a transformers causal LM name or path, a GGUF file, or the model a "
                                                  "server names (default: offline Gemma + the project's GSM adapter; "
                                                  "base Gemma few-shot for chain_sum, leg_counting and "
                                                  "simple_geometry)")
    p.add_argument("--adapter", default=None, help="a PEFT LoRA adapter directory for --model (or a GGUF LoRA file "
                                                   "for llama.cpp)")
    p.add_argument("--shots", type=int, default=None, help="few-shot exemplars (default: 0 with the GSM adapter, "
                                                          "4 for the few-shot families)")
    add_scorer_option(p)


def run_settings(args: argparse.Namespace) -> dict:
    """What a results file must agree on to be resumed (not --size: a run may grow), with the generator's backend as
    resolved (and the torch path's dtype), so a results file never mixes backends. Options added later are recorded
    only away from their default, so the runs made before them still resume."""
    names = ("source", "seed", "method", "n", "beam", "baseline", "normalization", "nonfinite", "combination", "spread",
             "weights", "model", "adapter", "shots", "scorer", "base_url")
    backend = resolve_backend(args.backend, args.model)
    generator = {"backend": backend, **({"dtype": str(resolve_dtype("auto")).removeprefix("torch.")}
                                        if backend == "torch" else {})}
    return {"task": "math", "version": consensus.__version__, **{name: getattr(args, name) for name in names},
            **({"lm_verifier": True} if args.lm_verifier else {}),
            **({"until": args.until} if args.until != "agree" else {}), "generator": generator}


def run_folder(out: str | None, settings: dict) -> Path:
    """The run's folder: ``--out`` when given, refused if it holds results of other settings; by default the first
    of runs/math, runs/math-2, ... that is empty or holds a run of these settings (which then resumes)."""
    from consensus.eval.harness import check_settings

    if out is None:
        return fresh_run_dir(Path("runs/math"), resumes=lambda folder: _holds_run_of(folder, settings))
    folder = Path(out)
    if folder.suffix == ".jsonl" or folder.is_file():
        raise ValueError(f"--out {folder} names a file; --out is the run's folder (it holds results.jsonl, "
                         f"trace.jsonl and run.json), e.g. --out runs/math")
    lock_run_folder(folder)  # before reading what it holds: another run may be writing it
    check_settings(folder / "results.jsonl", settings)
    return folder


def _holds_run_of(folder: Path, settings: dict) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("settings") == settings
    except (OSError, json.JSONDecodeError):
        return False


def make_solve(args: argparse.Namespace, trace: TraceWriter | None = None):
    """Load the generator and the scorers once; return ``solve(problems) -> records`` (in a sharded run,
    each worker calls this once). ``solve.generator`` names the generator."""
    from consensus.tasks.math.experiment import UNTIL, Experiment, build_ensemble
    from consensus.tasks.math.generator import load_math_generator
    from consensus.zoo.text_generators import load_text_generator

    few_shot_task = args.source in FEW_SHOT_FAMILIES
    shots = args.shots if args.shots is not None else (4 if few_shot_task else 0)
    exemplars = (few_shot_exemplars(args.source, shots, seed=args.seed + EXEMPLAR_SEED) if few_shot_task
                 else gsm_symbolic("train", shots, EXEMPLAR_SEED)) if shots else []
    if args.model is None and few_shot_task:
        lm = load_text_generator(backend=args.backend)
    else:
        lm = load_math_generator(args.model, args.adapter, backend=args.backend, base_url=args.base_url)
    ensemble = None if args.method in ("greedy", "self-consistency") else build_ensemble(
        lm, exemplars, lm_verifier=args.lm_verifier, **ensemble_options(args))
    ensemble = with_user_scorers(with_weights(ensemble, args.weights), user_scorers(args.scorer))
    experiment = Experiment(lm, ensemble, exemplars=exemplars, until=UNTIL[args.until])

    def solve(batch, method: str = args.method, n: int = args.n, beam: int = args.beam, seed: int = args.seed,
              max_new_tokens: int = experiment.sampling.max_new_tokens, on_iteration=None):
        """Records of a batch of problems: their greedy solutions drawn in one generator call, their consensus runs
        in lockstep (each step's generator calls in one batch, its scorers' calls too), each problem from its own
        seeded generator (so in float32 its draws are those it gets alone), from no kept prefixes (so a resumed run
        draws what an uninterrupted one drew). The method and its budget default to the command line's (a server
        gives each batch its own); ``on_iteration(problem, record)`` sees every engine iteration as it ends."""
        run = replace(experiment, n=n, beam=beam, sampling=replace(experiment.sampling, max_new_tokens=max_new_tokens))
        with_baseline = args.baseline == "greedy" and method in SCORED
        if ensemble is None and method in SCORED:
            raise ValueError(f"--method {method} needs the scorers, which a --method {args.method} run does not load")
        if method == "greedy" or with_baseline:
            forget_kept_prefixes(lm)
            greedy = run.greedy(batch)
        if method == "greedy":
            for problem, out in zip(batch, greedy):
                yield record(problem, out["text"], out["tokens"], {})
            return
        baseline = {}
        if method == "self-consistency":  # the method's draws do not depend on whether the baseline ran
            drawn = run.samples(batch, seed)
        else:  # the problems' consensus runs in lockstep: each step's generator and scorer calls in one batch
            runs = run.in_lockstep([functools.partial(
                run.run, problem, method=method, seed=seed, trace=trace,
                callback=None if on_iteration is None else functools.partial(on_iteration, problem))
                for problem in batch])
        for i, problem in enumerate(batch):
            if with_baseline:
                alone = record(problem, greedy[i]["text"], greedy[i]["tokens"], {"seconds": greedy[i]["seconds"]})
                baseline = {"greedy": {k: alone[k] for k in ("text", "flexible", "correct", "tokens", "seconds")}}
            if method == "self-consistency":
                samples = drawn[i]["samples"]
                vote = majority([extract_flexible(s) for s in samples])
                text = next((s for s in samples if extract_flexible(s) == vote), samples[0])
                yield record(problem, text, drawn[i]["tokens"], {"samples": samples})
                continue
            result = runs[i]
            yield record(problem, result.best, result.generator_tokens,
                         {"stop_reason": result.stop_reason, "seconds": result.seconds, **baseline})

    solve.generator, solve.lm = lm.name, lm
    return solve


def record(problem, text: str, tokens: int, extra: dict) -> dict:
    """A problem's record: its solution, the answers extracted from it (strict and flexible), whether they are right."""
    strict, flexible = extract_strict(text), extract_flexible(text)
    return {"question": problem.question, "gold": problem.answer, "text": text, "tokens": tokens,
            "strict": strict, "flexible": flexible, "correct_strict": is_correct(strict, problem.answer),
            "correct": is_correct(flexible, problem.answer), **extra}


def run(args: argparse.Namespace) -> None:
    from consensus.eval.harness import read_results, run_resumable

    user = user_scorers(args.scorer)
    if user and args.method in ("greedy", "self-consistency"):
        raise ValueError(f"--scorer needs --method solution, step or adaptive; --method {args.method} scores nothing")
    ensemble_options(args)  # bad ensemble flags are refused before any model loads
    if args.until != "agree" and args.method != "adaptive":
        raise ValueError(f"--until says when --method adaptive stops drawing; --method {args.method} draws N at once")
    if args.n < 1 or args.beam < 1 or args.workers < 1 or args.batch < 1:
        raise ValueError(f"--n, --beam, --batch and --workers must be at least 1, got {args.n}, {args.beam}, "
                         f"{args.batch}, {args.workers}")
    if args.ray and args.trace:
        raise ValueError("--trace is written by one-process runs only; drop --ray or --trace")
    settings = run_settings(args)
    folder = run_folder(args.out, settings)  # before any model loads
    results_path = folder / "results.jsonl"
    trace_path = None if args.ray else Path(args.trace) if args.trace else folder / "trace.jsonl"
    manifest = run_manifest(args, folder, trace_path, task="math", settings=settings, results="results.jsonl",
                            title=f"math: {args.method} on {args.size} {args.source} problems",
                            columns=["gold", "flexible", "correct"])
    manifest()
    problems = load_problems(args.source, args.size, args.seed)
    trace = None
    if trace_path is not None:  # the partial lines of an item a killed run left behind go; its rerun writes them again
        drop_items(trace_path, {p.id for p in problems} - {r["id"] for r in read_results(results_path)})
        trace = TraceWriter(trace_path)
    if args.ray:
        from consensus.distributed.sharded import connect, sharded

        connect(args.ray, num_cpus=args.workers)
        executor = sharded(functools.partial(make_solve, args), args.workers, batch_size=args.batch)
        solve, generator = None, args.model
    else:
        solve = make_solve(args, trace)
        executor, generator = None, solve.generator

    def correct(r: dict) -> bool | dict[str, bool]:  # the progress bar's running accuracies
        return {"greedy": r["greedy"]["correct"], args.method: r["correct"]} if "greedy" in r else r["correct"]

    records = run_resumable(problems, lambda p: p.id, solve, results_path, correct=correct,
                            description=f"math/{args.method}", settings=settings, executor=executor,
                            batch_size=args.batch, fields=record_fields(args))
    if trace is not None:
        trace.close()
    summary = {"accuracy (strict)": str(accuracy([r["correct_strict"] for r in records])),
               "accuracy (flexible)": str(accuracy([r["correct"] for r in records]))}
    if "samples" in records[0]:
        summary[f"pass@{args.n}"] = str(accuracy([any(is_correct(extract_flexible(s), r["gold"]) for s in r["samples"])
                                                  for r in records]))
    summary["generator tokens per problem"] = f"{sum(r['tokens'] for r in records) / len(records):.0f}"
    backend = ", ".join(f"{k} {v}" for k, v in settings["generator"].items())
    print(f"{args.source}, {len(records)} problems, method {args.method}, "
          f"generator {generator or 'default'} ({backend})")
    if "greedy" in records[0]:
        summary.update(side_by_side(records, args.method))
    else:
        width = max(map(len, summary)) + 1
        for label, value in summary.items():
            print(f"  {label + ':':{width}} {value}")
    manifest(summary=summary, state="finished")
    if trace_path is not None and "greedy" in records[0]:
        print(worked_example(records, trace_path))
    print(f"  results: {results_path}\n{report_hint(folder)}")


def record_fields(args: argparse.Namespace) -> dict[str, type | tuple[type, ...]]:
    """The shape of a problem's record, which the summary reads: a record on disk edited into another shape is set
    aside and its problem solved again."""
    answer = (str, type(None))
    fields = {"text": str, "tokens": int, "gold": str, "strict": answer, "flexible": answer,
              "correct_strict": bool, "correct": bool}
    if args.method == "self-consistency":
        fields["samples"] = list
    elif args.baseline == "greedy" and args.method in SCORED:
        fields["greedy"] = dict
    return fields


def side_by_side(records: list[dict], method: str) -> dict[str, str]:
    """Print the generator alone (greedy) and the consensus on the same problems; return the lines for run.json."""
    alone, chosen = [r["greedy"] for r in records], records
    rows = {
        "accuracy (flexible)": (accuracy([r["correct"] for r in alone]), accuracy([r["correct"] for r in chosen])),
        "generator tokens per problem": (f"{sum(r['tokens'] for r in alone) / len(alone):.0f}",
                                         f"{sum(r['tokens'] for r in chosen) / len(chosen):.0f}"),
        "seconds per problem": (f"{sum(r['seconds'] for r in alone) / len(alone):.2f}",
                                f"{sum(r['seconds']['total'] for r in chosen) / len(chosen):.2f}"),
    }
    columns = ("generator alone (greedy)", f"consensus ({method} level)")
    print(f"  {'':30}{columns[0]:28}{columns[1]}")
    for label, (a, b) in rows.items():
        print(f"  {label:30}{str(a):28}{b}")
    gain = paired_difference([r["correct"] for r in chosen], [r["correct"] for r in alone])
    claim = (f"{gain['points']:+.1f} points [{gain['low']:+.1f}, {gain['high']:+.1f}] (95% paired bootstrap), "
             f"{gain['wins']} problems won, {gain['losses']} lost")
    print(f"  consensus - generator alone: {claim}")
    return {**{f"{label}, {column}": str(value) for label, pair in rows.items() for column, value in zip(columns, pair)},
            "consensus - generator alone": claim}


def worked_example(records: list[dict], trace_path: Path, width: int = 44) -> str:
    """One problem, as the ensemble saw it: preferably one the consensus got right and greedy decoding wrong; its
    question, the greedy answer, and the candidates of the iteration where they differed most (the latest such),
    each distinct one once with each scorer's energy."""
    from consensus.core.trace import read_trace

    pick = next((r for r in records if r["correct"] and not r["greedy"]["correct"]),
                next((r for r in records if r["flexible"] != r["greedy"]["flexible"]), records[0]))
    iterations = [t for t in read_trace(trace_path) if t.get("item") == pick["id"] and t.get("energies")]
    if not iterations:
        return ""
    last = max(iterations, key=lambda t: (len(set(t["candidates"])), t["iteration"]))
    names, totals = list(last["energies"]["per_scorer"]), last["energies"]["total"]
    best = min(last["survivors"], key=lambda i: float("inf") if totals[i] is None else totals[i])
    mark = lambda ok: "right" if ok else "wrong"  # noqa: E731
    lines = [f"worked example ({pick['id']}): {pick['question']}",
             f"  generator alone: answer {pick['greedy']['flexible']} ({mark(pick['greedy']['correct'])}); "
             f"consensus: answer {pick['flexible']} ({mark(pick['correct'])}); gold {pick['gold']}",
             f"  candidates at iteration {last['iteration']}, energy per scorer (lower is better), -> the chosen one:",
             "     " + f"{'candidate':{width}}" + "".join(f"{name[:12]:>13}" for name in names) + f"{'total':>9}"]
    order = sorted(range(len(totals)), key=lambda i: (i != best, totals[i] is None, totals[i] or 0.0))
    copies = {text: last["candidates"].count(text) for text in last["candidates"]}
    shown = set()
    for i in order:
        if last["candidates"][i] in shown:
            continue
        shown.add(last["candidates"][i])
        text = last["candidates"][i].strip().replace("\n", " | ")
        times = copies[last["candidates"][i]]
        text = (f"{times}x " if times > 1 else "") + text
        text = text if len(text) <= width else text[:width - 1] + "…"
        energies = "".join(f"{_energy(last['energies']['per_scorer'][name][i]):>13}" for name in names)
        lines.append(f"  {'->' if i == best else '  '} {text:{width}}{energies}{_energy(totals[i]):>9}")
    return "\n".join(lines)


def _energy(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
