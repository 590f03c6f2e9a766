"""The ``consensus`` command line: one subcommand per experiment."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with add_parser/run, the pip extra its models and simulators need)
EXPERIMENTS = {
    "math": ("consensus.math.cli", "math"),
    "robot": ("consensus.robot.cli", "robot"),
    "image": ("consensus.image.cli", "image"),
    "vqa": ("consensus.vqa.cli", "vqa"),
}


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
