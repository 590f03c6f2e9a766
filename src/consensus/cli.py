"""The ``consensus`` command line: one subcommand per experiment."""

from __future__ import annotations

import argparse
import sys

from consensus.math import cli as math_cli

EXPERIMENTS = [math_cli]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="consensus", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for experiment in EXPERIMENTS:
        before = set(subparsers.choices)
        experiment.add_parser(subparsers)
        for name in set(subparsers.choices) - before:
            subparsers.choices[name].set_defaults(handler=experiment.run)
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f"consensus {args.command}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from e


if __name__ == "__main__":
    main()
