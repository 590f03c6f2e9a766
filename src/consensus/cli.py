"""The ``consensus`` command line: one subcommand per experiment."""

from __future__ import annotations

import argparse
import importlib
import sys

from consensus.core.ensemble import Ensemble
from consensus.core.scorer import Scorer, scorer_from_spec

# subcommand -> (module with add_parser/run, the pip extra its models and simulators need)
EXPERIMENTS = {
    "math": ("consensus.tasks.math.cli", "math"),
    "robot": ("consensus.tasks.robot.cli", "robot"),
    "image": ("consensus.tasks.image.cli", "image"),
    "vqa": ("consensus.tasks.vqa.cli", "vqa"),
}


def add_scorer_option(parser: argparse.ArgumentParser) -> None:
    """``--scorer module:Class[:weight]``, repeatable: the user's own experts join the task's ensemble."""
    parser.add_argument("--scorer", action="append", default=[], metavar="MODULE:CLASS[:WEIGHT]",
                        help="add your own scorer (a consensus.Scorer subclass that builds with no arguments) to "
                             "the ensemble, with a weight (default 1); repeatable")


def user_scorers(specs: list[str]) -> list[tuple[Scorer, float]]:
    """The scorers and weights of ``--scorer`` specs, built before any model loads, so a bad one fails fast."""
    return [scorer_from_spec(spec) for spec in specs]


def with_user_scorers(ensemble: Ensemble | None, user: list[tuple[Scorer, float]]) -> Ensemble | None:
    """``ensemble`` extended by the user's scorers (unchanged when there are none)."""
    if not user:
        return ensemble
    if ensemble is None:
        raise ValueError("--scorer needs a method that scores candidates; this one runs the generator alone")
    return ensemble.extended([s for s, _ in user], [w for _, w in user])


def _missing(command: str, extra: str, error: ImportError, args: argparse.Namespace) -> None:
    raise ImportError(f"{error}; `consensus {command}` needs: pip install 'consensus[{extra}]'")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="consensus", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command, (module_name, extra) in EXPERIMENTS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:  # an experiment whose extra is not installed still shows what to install
            stub = subparsers.add_parser(command, help=f"(needs pip install 'consensus[{extra}]')")
            stub.set_defaults(handler=lambda args, c=command, x=extra, err=e: _missing(c, x, err, args))
            continue
        module.add_parser(subparsers)
        subparsers.choices[command].set_defaults(handler=module.run)
    args = parser.parse_args(argv)
    try:
        status = args.handler(args)
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f"consensus {args.command}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    if status:  # a handler may report failure (a robot episode that missed its goal) as an exit code
        raise SystemExit(status)


if __name__ == "__main__":
    main()
