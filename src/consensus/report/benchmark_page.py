"""The report of a benchmark's results file (``benchmarks/results/*.json``): every method's accuracy with
its 95% interval as a forest plot, the paired claims with theirs, tokens and seconds, the grids the
benchmark drew, and, when the per-item records sit beside it, every item on demand.

Each benchmark writes its own JSON shape; ``read_benchmark`` knows them (math, video QA, image, robot)
and reports any other results file as its nested tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.report import plots
from consensus.report.confined import image_inside
from consensus.report.html import data_uri, esc, item_block, key_values, number, page, short, table, warnings_block
from consensus.report.load import Run, read_jsonl
from consensus.report.run_page import candidate_table


@dataclass
class Method:
    name: str
    value: float
    low: float | None
    high: float | None
    extras: dict[str, Any] = field(default_factory=dict)  # n, tokens, seconds, FID, ...


@dataclass
class Claim:
    name: str
    points: float
    low: float | None
    high: float | None
    wins: int | None = None
    losses: int | None = None


@dataclass
class Benchmark:
    metric: str
    methods: list[Method]
    claims: list[Claim]
    settings: dict[str, Any]
    verdicts: dict[str, Any] = field(default_factory=dict)  # claims stated as true/false


def _claims(block: dict[str, Any]) -> list[Claim]:
    return [Claim(name, c["points"], c.get("low"), c.get("high"), c.get("wins"), c.get("losses"))
            for name, c in block.items() if isinstance(c, dict) and "points" in c]


def _scalars(data: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in skip and not isinstance(v, (dict, list))}


def read_benchmark(data: dict[str, Any]) -> Benchmark | None:
    """The methods and claims of a known results shape, or None."""
    methods = data.get("methods")
    if isinstance(methods, dict) and methods and all("flexible" in m for m in methods.values()):  # math
        rows = [Method(name, m["flexible"]["correct"] / m["flexible"]["total"], m["flexible"]["low"],
                       m["flexible"]["high"], {"n": m["flexible"]["total"],
                                               "strict": m["strict"]["correct"] / m["strict"]["total"],
                                               "tokens per problem": m.get("tokens_per_problem"),
                                               "seconds per problem": m.get("seconds_per_problem")})
                for name, m in methods.items()]
        claims = next((v for k, v in data.items() if k.startswith("claims")), {})
        return Benchmark("accuracy (flexible extraction)", rows, _claims(claims), _scalars(data, set()))
    if isinstance(methods, dict) and methods and all("success_rate" in m for m in methods.values()):  # robot
        rows = [Method(name, m["success_rate"], *m["ci95"], {"episodes": m["episodes"], "mean steps": m["mean_steps"],
                                                              "seconds per episode": m["mean_seconds"]})
                for name, m in methods.items()]
        versus = data.get("ensemble_vs_best_single_view") or {}
        claims = ([Claim(f"ensemble - best single view ({versus['best_single_view']})", **versus["paired_bootstrap"])]
                  if versus else [])
        return Benchmark("success rate", rows, claims, data.get("config", {}),
                         {"sign test p": versus.get("sign_test_p")} if versus else {})
    curves = data.get("curves")
    if isinstance(curves, dict) and curves and all(isinstance(c, dict) and c for c in curves.values()):  # scaling
        rows = []
        for name, by_n in curves.items():
            n, c = max(by_n.items(), key=lambda kv: int(kv[0]))
            rows.append(Method(name if int(n) <= 1 else f"{name} (N={n})", c["accuracy"] / 100, c["low"] / 100,
                               c["high"] / 100, {"tokens per problem": c["tokens"], "problems": c["problems"]}))
        return Benchmark("accuracy at the largest budget", rows, _claims(data.get("claims", {})),
                         _scalars(data, set()))
    conditions = data.get("conditions")
    if isinstance(conditions, dict) and all("accuracy" in c for c in conditions.values()):  # video QA
        rows = [Method(name, c["accuracy"], c["low"], c["high"],
                       {"n": c["n"], "seconds per answer": c.get("seconds_per_answer"), **c.get("per_type", {})})
                for name, c in conditions.items()]
        return Benchmark("accuracy", rows, _claims(data.get("claims", {})), _scalars(data, {"claims"}))
    results = data.get("results") or data.get("rows")
    image = isinstance(results, dict) and all(isinstance(r, dict) and "accuracy_ci95" in r for r in results.values())
    if image:
        rows = [Method(name, r["accuracy"], *r["accuracy_ci95"],
                       {k: r.get(k) for k in ("n", "fid", "kid", "inception_score", "seconds_per_sample", "seconds")
                        if r.get(k) is not None})
                for name, r in results.items()]
        claims = _claims(data.get("vs_gradient", {}))
        if "ensemble_minus_best_single_accuracy" in data:
            c = data["ensemble_minus_best_single_accuracy"]
            claims.append(Claim(f"ensemble - best single scorer ({c['best_single']})", c["points"], c["low"],
                                c["high"], c.get("wins"), c.get("losses")))
        verdicts = {k: v for k, v in (data.get("claims") or {}).items() if isinstance(v, bool)}
        return Benchmark("held-out accuracy", rows, claims, data.get("settings", {}), verdicts)
    return None


def records_beside(path: Path) -> Path | None:
    """The per-item records a benchmark wrote next to its summary, if any."""
    for name in (f"{path.stem}.jsonl", f"{path.stem}_episodes.jsonl"):
        if (path.parent / name).exists():
            return path.parent / name
    return None


def benchmark_page(path: Path) -> tuple[str, list[str]]:
    """The page, and the warnings about record lines that could not be read."""
    warnings: list[str] = []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e.msg} at line {e.lineno}); is it a benchmark's results file?") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}; a benchmark's results file holds an object")
    parts = [f"<h1>{esc(data.get('title') or path.stem)}</h1>",
             f'<p class="muted">benchmark results: <code>{esc(path.name)}</code></p>']
    markdown = path.with_suffix(".md")
    if markdown.exists():
        parts.append(f'<p class="muted">Written up in <code>{esc(markdown.name)}</code>.</p>')
    bench = read_benchmark(data)
    if bench is None:
        parts.append("<h2>Results</h2>" + _nested(data))
    else:
        if isinstance(data.get("curves"), dict):
            parts.append("<h2>Accuracy against generator tokens</h2>" +
                         plots.accuracy_against_tokens(curve_lines(data["curves"]), str(data.get("title", ""))))
        parts.append(_methods_section(bench))
    parts.append(_grids(path, [m.name for m in bench.methods] if bench else [], warnings))
    records_path = records_beside(path)
    blocks, templates = [], []
    if records_path is not None:
        records = read_jsonl(records_path, warnings=warnings)  # a benchmark's own lines: ids are not required
        parts.append(f"<h2>Items ({len(records)}, from <code>{esc(records_path.name)}</code>)</h2>"
                     '<p class="muted">Open an item for its record.</p>')
        run = Run(path.parent, {})
        for index, record in enumerate(records):
            line, template = item_block(index, _record_line(record), _record_details(record, run))
            blocks.append(line)
            templates.append(template)
    body = parts[0] + parts[1] + warnings_block(warnings) + "".join(parts[2:]) + "".join(blocks)
    return page(str(data.get("title") or path.stem), body, "".join(templates)), warnings


# The methods a scaling figure draws (the table has the rest): more lines than this blur into one band.
SCALING_FIGURE = ("maj@N", "best-of-N: ArithmeticVerifier", "best-of-N: TrainedVerifier", "ensemble, equal",
                  "ensemble, dev-fitted weights", "ensemble, worst case", "pass@N", "ensemble, step level",
                  "adaptive ensemble, votes", "adaptive ensemble, ensemble weight", "adaptive ensemble, verified",
                  "adaptive ensemble (up to 16), verified", "adaptive ensemble (dev-fitted weights), verified")


def curve_lines(curves: dict[str, dict[Any, dict[str, Any]]],
                shown: tuple[str, ...] = SCALING_FIGURE) -> dict[str, list[tuple[float, float, float, float]]]:
    """A scaling benchmark's curves as figure lines, (tokens, accuracy, low, high) per point, for the methods whose
    names start with one of ``shown``: each method over its budgets N, and each adaptive rule's points (keyed by
    N = 0) as one line per rule, over its stopping share where it has one ("… ≥ 75%")."""
    lines: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, by_n in curves.items():
        if not name.startswith(shown):
            continue
        adaptive = set(map(int, by_n)) == {0}
        line = name.split(" ≥ ")[0] + " (over the share)" if adaptive and " ≥ " in name else name
        lines.setdefault(line, []).extend((c["tokens"], c["accuracy"], c["low"], c["high"]) for c in by_n.values())
    return lines


def _methods_section(bench: Benchmark) -> str:
    out = [f"<h2>Methods: {esc(bench.metric)} with 95% intervals</h2>",
           plots.forest([m.name for m in bench.methods], [m.value for m in bench.methods],
                        [m.low for m in bench.methods], [m.high for m in bench.methods], bench.metric)]
    extra_names = list(dict.fromkeys(k for m in bench.methods for k in m.extras))
    rows = [[esc(m.name), f'<td class="num">{number(m.value)}</td>',
             f'<td class="num">[{number(m.low)}, {number(m.high)}]</td>',
             *[f'<td class="num">{number(m.extras.get(k))}</td>' for k in extra_names]] for m in bench.methods]
    out.append(table(["method", esc(bench.metric), "95% interval", *map(esc, extra_names)], rows))
    if bench.claims:
        out.append("<h2>Paired claims (difference in points, 95% paired interval)</h2>")
        out.append(plots.forest([c.name for c in bench.claims], [c.points for c in bench.claims],
                                [c.low for c in bench.claims], [c.high for c in bench.claims],
                                "difference (points)", zero=0.0))
        rows = [[esc(c.name), f'<td class="num">{number(c.points, 1)}</td>',
                 f'<td class="num">[{number(c.low, 1)}, {number(c.high, 1)}]</td>',
                 '<td class="ok">yes</td>' if c.low is not None and c.low > 0 else '<td class="bad">no</td>',
                 number(c.wins), number(c.losses)] for c in bench.claims]
        out.append(table(["claim", "points", "95% interval", "interval above 0", "wins", "losses"], rows))
    if bench.verdicts:
        out.append("<h3>Stated claims</h3>" + key_values(bench.verdicts))
    if bench.settings:
        out.append("<h2>Settings</h2>" + key_values(bench.settings))
    return "".join(out)


def _grids(path: Path, methods: list[str], warnings: list[str]) -> str:
    """The pictures in the folder named like the results file; one named by a number is that method's."""
    folder = path.with_suffix("")
    found = sorted(folder.glob("*.png")) if folder.is_dir() else []
    pictures = [p for p in (image_inside(folder, q.name, f"{folder.name}/", warnings) for q in found) if p is not None]
    captions = [methods[int(p.stem)] if p.stem.isdigit() and int(p.stem) < len(methods) else p.stem for p in pictures]
    figures = [f'<figure><img class="picture" alt="{esc(caption)}" src="{data_uri(p, max_side=360)}">'
               f"<figcaption>{esc(caption)}</figcaption></figure>" for p, caption in zip(pictures, captions)]
    return f'<h2>Samples (thumbnails)</h2><div class="figures">{"".join(figures)}</div>' if figures else ""


def _nested(value: Any) -> str:
    if isinstance(value, dict):
        rows = [[esc(k), _nested(v)] for k, v in value.items()]
        return table(None, rows)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "".join(_nested(v) for v in value[:50]) + (f"<p>… {len(value) - 50} more</p>" if len(value) > 50 else "")
    if isinstance(value, list):
        return esc(json.dumps(value)[:400])
    return number(value)


def _record_line(record: dict[str, Any]) -> list[str]:
    spans = [f"<b>{esc(record.get('id', '?'))}</b>"]
    for key in ("question", "goal", "gold", "answer", "method", "success"):
        value = record.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            spans.append(f"{esc(key)}: {esc(short(value, 90))}")
    return spans


def _record_details(record: dict[str, Any], run: Run) -> str:
    """A record's fields; its samples with each scorer's energy as a candidate table when it has them."""
    parts = [key_values({k: v for k, v in record.items() if not isinstance(v, (dict, list)) and k != "samples"})]
    for key, value in record.items():
        if isinstance(value, dict) and key != "energies":
            parts.append(f"<div><b>{esc(key)}</b>{_nested(value)}</div>")
    samples, energies = record.get("samples"), record.get("energies")
    if isinstance(samples, list) and isinstance(energies, dict):
        per_scorer = {k: v for k, v in energies.items() if k != "ensemble" and len(v) == len(samples)}
        total = energies.get("ensemble")
        pseudo = {"iteration": 0, "candidates": [str(s) for s in samples], "survivors": [], "feedback": {},
                  "energies": {"total": total if total and len(total) == len(samples) else [None] * len(samples),
                               "per_scorer": per_scorer}}
        parts.append("<div><b>samples, each scorer's energy and rank</b>" + candidate_table(pseudo, run, None) + "</div>")
    return "".join(parts)
