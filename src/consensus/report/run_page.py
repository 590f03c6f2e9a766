"""The report of one run folder: what was run, the energy of the chosen candidates over iterations for
each scorer, whether the scorers agreed, what the feedback did, and every item on demand with its
candidates, each scorer's energy and rank, and the chosen ones marked."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np

from consensus.report import plots
from consensus.report.confined import candidate_pattern, image_inside
from consensus.report.html import data_uri, esc, item_block, key_values, number, page, short, table, warnings_block
from consensus.report.load import Run
from consensus.report.manifest import MANIFEST

MAX_ROWS = 12  # candidates shown per iteration (best total energies, plus every survivor)
OPEN_AT_MOST = 1  # a run of this many items shows them open; a bigger one fills each item on demand


def run_page(run: Run, open_items: bool | None = None) -> str:
    """The page; ``open_items`` renders every item's details in place (default: only for a one-item run,
    otherwise each is filled from its template when opened)."""
    m = run.manifest
    by_item: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in run.trace:
        by_item[_key(record.get("item"))].append(record)
    results = {_key(r["id"]): r for r in run.results}
    items = list(results) + [k for k in by_item if k not in results]

    images = _images(run)  # before the warnings are shown: a missing image adds one
    parts = [f"<h1>{esc(m.get('title') or m.get('task', 'run'))}</h1>",
             f'<p class="muted">{esc(m.get("task", ""))} · <code>{esc(m.get("command", ""))}</code></p>',
             warnings_block(run.warnings)]
    facts = [f"<div><h3>Summary</h3>{key_values(m['summary'])}</div>" if m.get("summary") else "",
             f"<div><h3>Settings</h3>{key_values(m['settings'])}</div>" if m.get("settings") else ""]
    parts.append(f'<div class="figures">{"".join(facts)}</div>')
    parts.append(images)
    if run.trace:
        parts.append(_curves_section(by_item))
        parts.append(_agreement_section(run.trace))
        parts.append(_feedback_section(run.trace))
    parts.append(f"<h2>Items ({len(items)})</h2>")
    open_items = len(items) <= OPEN_AT_MOST if open_items is None else open_items
    if not open_items:
        parts.append('<p class="muted">Open an item for its record, and every iteration\'s candidates with each '
                     "scorer's energy and rank (1 = lowest energy); chosen candidates are green.</p>")
    blocks, templates = [], []
    for index, key in enumerate(items):
        line, template = item_block(index, _item_line(key, results.get(key), by_item.get(key, []), m),
                                    _item_details(run, results.get(key), by_item.get(key, [])),
                                    open_now=open_items)
        blocks.append(line)
        templates.append(template)
    parts.append("".join(blocks))
    return page(m.get("title") or "consensus run", "".join(parts), "".join(templates))


def _key(item: Any) -> str:
    return json.dumps(item) if not isinstance(item, str) else item


def _images(run: Run) -> str:
    figures = []
    images = run.manifest.get("images") or []
    for i, image in enumerate(images if isinstance(images, list) else []):
        image = image if isinstance(image, dict) else {"path": image}
        path = image_inside(run.folder, image.get("path"), f"{MANIFEST} images[{i}]", run.warnings)
        if path is None:
            continue
        figures.append(f'<figure><img class="picture" alt="{esc(image.get("caption", ""))}" '
                       f'src="{data_uri(path, max_side=480)}"><figcaption>{esc(image.get("caption", ""))}'
                       f"</figcaption></figure>")
    return f'<h2>Images</h2><div class="figures">{"".join(figures)}</div>' if figures else ""


def chosen_energies(records: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per scored iteration, the total and each scorer's energy of the survivor with the lowest total energy; None
    where a scorer did not score that iteration (a trace holding runs of different ensembles)."""
    chosen = []
    for record in records:
        energies = record.get("energies")
        if not energies or not record["survivors"]:
            continue
        totals = energies["total"]
        best = min(record["survivors"], key=lambda i: float("inf") if totals[i] is None else totals[i])
        chosen.append({"total": totals[best], **{name: values[best] for name, values in energies["per_scorer"].items()}})
    names = list(dict.fromkeys(name for energies in chosen for name in energies))
    return {name: [energies.get(name) for energies in chosen] for name in names}


def _curves_section(by_item: dict[Any, list[dict[str, Any]]]) -> str:
    """The chosen candidate's energies over iterations, averaged over items (iteration k of every item); when
    every item is one iteration (best-of-N, one robot action per item), over the items in run order instead."""
    per_item = [chosen_energies(records) for records in by_item.values()]
    per_item = [curves for curves in per_item if curves]
    if not per_item:
        return "<h2>Energy</h2><p>Nothing was scored (the generator ran alone).</p>"
    if len(per_item) > 1 and all(len(curves["total"]) == 1 for curves in per_item):
        names = list(dict.fromkeys(name for curves in per_item for name in curves))
        curves = {name: [c[name][0] if name in c else None for c in per_item] for name in names}
        return ("<h2>Energy over items</h2><p>Energy of the chosen candidate of each item, in run order: the "
                "ensemble's total (after its normalisation) and each scorer's own. Lower is better.</p>"
                + plots.energy_curves(curves, "", xlabel="item"))
    by_k: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item_curves in per_item:
        for name, values in item_curves.items():
            for k, v in enumerate(values):
                if v is not None:
                    by_k[name][k].append(v)
    curves = {name: [float(np.mean(ks[k])) if ks.get(k) else None for k in range(max(ks) + 1)]
              for name, ks in by_k.items() if ks}
    if not curves:
        return "<h2>Energy</h2><p>Every energy recorded is non-finite (null in the trace): nothing to plot.</p>"
    what = "the chosen candidate" if len(per_item) == 1 else f"the chosen candidate, mean over {len(per_item)} items"
    return (f"<h2>Energy over iterations</h2><p>Energy of {what}: the ensemble's total (after its normalisation) "
            f"and each scorer's own. Lower is better.</p>" + plots.energy_curves(curves, ""))


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their mean rank (as Spearman's ρ needs)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, inverse = np.unique(values, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def agreement(records: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    """The scorers' Spearman rank correlation over each iteration's candidates, averaged over iterations.
    An iteration counts for a pair when at least three candidates have finite energies from both and
    neither scorer gives them all one value (ρ is undefined there)."""
    names: list[str] = []
    for record in records:
        for name in (record.get("energies") or {}).get("per_scorer", {}):
            if name not in names:
                names.append(name)
    total, count = np.zeros((len(names), len(names))), np.zeros((len(names), len(names)))
    for record in records:
        per_scorer = (record.get("energies") or {}).get("per_scorer", {})
        for i, a in enumerate(names):
            for j, b in enumerate(names[i + 1:], start=i + 1):
                if a not in per_scorer or b not in per_scorer:
                    continue
                pairs = [(x, y) for x, y in zip(per_scorer[a], per_scorer[b]) if x is not None and y is not None]
                if len(pairs) < 3:
                    continue
                x, y = (_ranks(np.array(v, dtype=float)) for v in zip(*pairs))
                if x.std() == 0 or y.std() == 0:
                    continue
                rho = float(np.corrcoef(x, y)[0, 1])
                total[i, j] += rho
                count[i, j] += 1
    with np.errstate(invalid="ignore"):
        mean = total / count
    mean = np.where(np.isnan(mean), mean.T, mean)  # mirror the upper triangle
    np.fill_diagonal(mean, 1.0)
    return names, mean


def _agreement_section(records: list[dict[str, Any]]) -> str:
    names, matrix = agreement(records)
    if len(names) < 2:
        return ""
    return ("<h2>Did the scorers agree?</h2><p>Rank correlation between scorers over each iteration's candidates, "
            "averaged over iterations: near 1, two scorers are the same expert twice; near 0 or below, they look "
            "at different things, which is what an ensemble wants. Empty cells: never defined (a scorer gave "
            "every candidate one value).</p>" + plots.agreement_heatmap(names, matrix, ""))


def _feedback_section(records: list[dict[str, Any]]) -> str:
    acted: dict[str, int] = defaultdict(int)
    example: dict[str, Any] = {}
    for record in records:
        for form, did in record.get("feedback", {}).items():
            acted[form] += 1
            example.setdefault(form, did)
    if not acted:
        return ""
    rows = [[esc(form), number(acted[form]), f"<code>{esc(short(example[form], 160))}</code>"] for form in acted]
    return ("<h2>What the feedback did</h2>" + table(["form", "iterations it acted in", "first action"], rows)
            + '<p class="muted">Each item\'s iterations below show every action.</p>')


def _item_line(key: str, result: dict[str, Any] | None, records: list[dict[str, Any]], manifest: dict) -> list[str]:
    spans = [f"<b>{esc(key)}</b>"]
    if result is not None:
        for column in manifest.get("columns") or []:
            value = result.get(column)
            if isinstance(value, bool):
                spans.append(f'<span class="{"ok" if value else "bad"}">{esc(column)}: {"✓" if value else "✗"}</span>')
            elif value is not None:
                spans.append(f"{esc(column)}: {esc(short(value, 90))}")
    if records:
        spans.append(f'<span class="muted">{len(records)} iteration{"s" * (len(records) != 1)}</span>')
        best = records[-1].get("best_energy")
        if best is not None:
            spans.append(f'<span class="muted">final energy {number(best)}</span>')
    return spans


def _item_details(run: Run, result: dict[str, Any] | None, records: list[dict[str, Any]]) -> str:
    parts = []
    if result is not None:
        long = {k: v for k, v in result.items() if isinstance(v, str) and ("\n" in v or len(v) > 80)}
        scalars = {k: v for k, v in result.items() if k not in long}
        parts.append(key_values(scalars))
        parts.extend(f"<div><b>{esc(k)}</b><pre>{esc(v)}</pre></div>" for k, v in long.items())
    curves = chosen_energies(records)
    if curves and len(curves["total"]) > 1:  # as numbers: a figure per item would cost a big run minutes to draw
        rows = [[number(k), *[f'<td class="num">{number(values[k])}</td>' for values in curves.values()]]
                for k in range(len(curves["total"]))]
        parts.append("<div><b>energy of the chosen candidate per iteration</b>"
                     + table(["iteration", *map(esc, curves)], rows) + "</div>")
    pattern = candidate_pattern(run.manifest.get("candidate_images"), run.folder, run.warnings)
    for record in records:
        feedback = "; ".join(f"{form}: {short(did, 120)}" for form, did in record["feedback"].items())
        parts.append(f"<h4>iteration {record['iteration']}"
                     f'{f" · <span class=muted>{esc(feedback)}</span>" if feedback else ""}</h4>')
        parts.append(candidate_table(record, run, pattern))
    return "".join(parts)


def candidate_table(record: dict[str, Any], run: Run, pattern: str | None) -> str:
    """An iteration's candidates, best total energy first: each scorer's energy with its rank among the
    candidates, the survivors marked."""
    candidates, survivors = record["candidates"], set(record["survivors"])
    energies = record.get("energies")
    names = list(energies["per_scorer"]) if energies else []
    columns = ([("total", energies["total"])] if energies else []) + [(n, energies["per_scorer"][n]) for n in names]
    ranks = {name: _rank_of(values) for name, values in columns}
    order = list(range(len(candidates)))
    if energies:
        order.sort(key=lambda i: (energies["total"][i] is None, energies["total"][i] or 0.0))
    shown = [i for i in order[:MAX_ROWS]] + [i for i in order[MAX_ROWS:] if i in survivors]
    rows, classes = [], []
    for i in shown:
        cell = f"<pre>{esc(candidates[i])}</pre>"
        if pattern:
            name = pattern.format(iteration=record["iteration"], candidate=i)
            image = image_inside(run.folder, name, "candidate_images", [])  # a candidate without one is no news
            if image is not None:
                cell = f'<img class="thumb" alt="candidate {i}" src="{data_uri(image)}">'
        row = [number(i), cell]
        row += [f'<td class="num">{number(values[i])} <span class="rank">#{ranks[name][i]}</span></td>'
                for name, values in columns]
        row.append("✓" if i in survivors else "")
        rows.append(row)
        classes.append("chosen" if i in survivors else "")
    hidden = len(candidates) - len(shown)
    more = f'<p class="muted">… {hidden} more candidates with higher energy</p>' if hidden > 0 else ""
    return table(["#", "candidate", *[esc(n) for n, _ in columns], "kept"], rows, classes) + more


def _rank_of(values: list[float | None]) -> list[str]:
    finite = sorted((v, i) for i, v in enumerate(values) if v is not None)
    ranks = ["–"] * len(values)
    for rank, (_, i) in enumerate(finite, start=1):
        ranks[i] = str(rank)
    return ranks
