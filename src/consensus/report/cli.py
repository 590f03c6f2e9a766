"""``consensus report PATH``: one self-contained HTML page of a run or a benchmark, to open in any browser
(nothing is fetched when it is viewed).

    consensus report runs/math                        # a run folder (every task's CLI writes one)
    consensus report benchmarks/results/math-chain_sum.json

A line of a trace or results file that cannot be read (a run killed mid-write, a missing field) is left
out with a warning naming it, on stderr and at the top of the page.
"""

from __future__ import annotations

import argparse
import sys

from consensus.cli import HelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="write an HTML report of a run folder or a benchmark's results",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("path", help="a run folder, a trace .jsonl, or a benchmark's results .json")
    p.add_argument("--out", default=None, help="the HTML file (default: report.html in the run folder, or the "
                                               "results file's name with .html)")
    return p


def run(args: argparse.Namespace) -> int:
    from consensus.report import write_report

    target, warnings = write_report(args.path, args.out)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {target}")
    return 0
