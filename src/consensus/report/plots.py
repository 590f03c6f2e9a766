"""The report's figures, drawn by matplotlib and inlined as SVG (sharp, and small for a few lines)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


def _svg(fig) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue().decode("utf-8")
    return svg[svg.index("<svg"):]


def energy_curves(curves: dict[str, Sequence[float | None]], title: str, xlabel: str = "iteration") -> str:
    """One small panel per curve (the total, then each scorer: their scales differ), energy against iteration
    (or against whatever ``xlabel`` says the curves run over)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    names = list(curves)
    columns = min(len(names), 4)
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 1.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = np.array([np.nan if v is None else v for v in curves[name]], dtype=float)
        ax.plot(np.arange(len(values)), values, marker="o" if len(values) < 30 else None, markersize=3,
                color="black" if name == "total" else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_xlim(-0.5, max(len(values) - 0.5, 0.5))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("energy")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _svg(fig)


def agreement_heatmap(names: Sequence[str], matrix: np.ndarray, title: str) -> str:
    """The scorers' mean rank correlation, one cell per pair, written in the cells."""
    plt = _pyplot()
    size = 1.2 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(matrix[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Spearman ρ")
    ax.set_title(title, fontsize=9)
    return _svg(fig)


def forest(labels: Sequence[str], values: Sequence[float], lows: Sequence[float | None],
           highs: Sequence[float | None], xlabel: str, zero: float | None = None) -> str:
    """A forest plot: each row's estimate with its interval, the first row at the top; ``zero`` draws the
    line of no difference."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(labels)))
    y = np.arange(len(labels))[::-1]
    values_ = np.array(values, dtype=float)
    low = np.array([v if lo is None else lo for v, lo in zip(values_, lows)], dtype=float)
    high = np.array([v if hi is None else hi for v, hi in zip(values_, highs)], dtype=float)
    ax.errorbar(values_, y, xerr=[values_ - low, high - values_], fmt="o", color="black", ecolor="gray",
                capsize=3, markersize=4)
    if zero is not None:
        ax.axvline(zero, color="firebrick", linewidth=0.8, linestyle="--")
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def accuracy_against_fid(points: dict[str, Sequence[tuple[float, float, str]]], min_accuracy: float | None,
                         title: str) -> str:
    """One panel per group (a scorer set): each setting tried as a point, held-out accuracy against FID, with
    its technique's marker and colour, and the rule's accuracy line."""
    plt = _pyplot()
    techniques = sorted({technique for group in points.values() for _, _, technique in group})
    colours = {t: plt.cm.tab10(i % 10) for i, t in enumerate(techniques)}
    markers = {t: "osD^vP*Xh<>"[i % 11] for i, t in enumerate(techniques)}
    fig, axes = plt.subplots(1, len(points), figsize=(3.0 * len(points), 2.9), sharey=True, squeeze=False)
    for ax, (group, values) in zip(axes[0], points.items()):
        for accuracy_value, fid, technique in values:
            ax.scatter(fid, accuracy_value, color=colours[technique], marker=markers[technique], s=22)
        if min_accuracy is not None:
            ax.axhline(min_accuracy, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("FID (lower is better)")
    axes[0][0].set_ylabel("held-out accuracy")
    handles = [plt.Line2D([], [], color=colours[t], marker=markers[t], linestyle="", label=t) for t in techniques]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(techniques)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _svg(fig)


def accuracy_against_tokens(lines: dict[str, Sequence[tuple[float, float, float, float]]], title: str) -> str:
    """Accuracy against generator tokens per problem on a log axis: one line per method through its points
    (tokens, accuracy, low, high), with its 95% interval as a band (a method of one point: a larger marker with
    its interval as an error bar)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for i, (name, points) in enumerate(lines.items()):
        ordered = sorted(points)
        x, y, low, high = (np.array(v, dtype=float) for v in zip(*ordered))
        colour = plt.cm.tab10(i % 10) if i < 10 else plt.cm.Set2(i % 8)
        if len(ordered) == 1:
            ax.errorbar(x, y, yerr=[y - low, high - y], marker="D", markersize=5, color=colour, label=name,
                        linestyle="", elinewidth=0.8, capsize=2)
            continue
        style = "--" if name.startswith(("pass@", "adaptive")) else "-"
        ax.plot(x, y, style, marker="o", markersize=3, color=colour, label=name, linewidth=1.2)
        ax.fill_between(x, low, high, color=colour, alpha=0.07, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("generator tokens per problem (log)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=9)
    return _svg(fig)
