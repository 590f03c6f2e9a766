"""The ``consensus`` command line: one subcommand per experiment.

Exit status: 0 success; 1 the goal or answer was not reached, where a subcommand reports that (robot);
2 bad input (a flag, a file, a missing model or package, an --out that cannot be written); 3 a model or scorer
failed while running, or a run's file could not be written (a full disk); 130 stopped by Ctrl-C and 143 by
SIGTERM (128 + the signal's number, as shells report it), the run's manifest then saying "interrupted".
Every expected error is one line on stderr; ``--debug`` shows the traceback instead."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from consensus.core.engine import GeneratorError
from consensus.core.ensemble import (
    COMBINATIONS,
    Ensemble,
    check_combination,
    NonFiniteEnergyError,
    NonFiniteGradientError,
    ScorerError,
)
from consensus.core.files import WriteFailed, writing
from consensus.core.scorer import Scorer, scorer_from_spec

# subcommand -> (module with add_parser/run, the pip extra its models and simulators need)
EXPERIMENTS = {
    "math": ("consensus.tasks.math.cli", "math"),
    "robot": ("consensus.tasks.robot.cli", "robot"),
    "image": ("consensus.tasks.image.cli", "image"),
    "vqa": ("consensus.tasks.vqa.cli", "vqa"),
    "report": ("consensus.report.cli", "report"),
    "serve": ("consensus.tasks.math.serve", "serve"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every subcommand's help: the description as written, and each option's default once (none for an
    option whose default is nothing, or whose help already says its default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, [], False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def add_scorer_option(parser: argparse.ArgumentParser) -> None:
    """``--scorer module:Class[:weight]``, repeatable: the user's own experts join the task's ensemble."""
    parser.add_argument("--scorer", action="append", default=[], metavar="MODULE:CLASS[:WEIGHT]",
                        help="add your own scorer (a consensus.Scorer subclass that builds with no arguments) to "
                             "the ensemble, with a weight (default 1); repeatable")


def add_ensemble_options(parser: argparse.ArgumentParser, normalization: str = "none") -> None:
    """How the task's ensemble combines its scorers' energies (``consensus.core.ensemble``): every task CLI takes
    these, each with its task's default normalisation."""
    parser.add_argument("--normalization", default=normalization, choices=("none", "zscore", "rank", "minmax"),
                        help="how each scorer's energies are normalised across the candidates before they combine")
    parser.add_argument("--nonfinite", default="raise", choices=("raise", "drop"),
                        help="what to do when a scorer returns NaN/inf: stop naming it, or drop that candidate")
    parser.add_argument("--combination", default="sum", choices=COMBINATIONS,
                        help="the weighted sum of the normalised energies; the worst case (each candidate's highest "
                             "normalised energy); or uncertainty (their weighted mean + --spread x their spread); the "
                             "last two need a --normalization other than none")
    parser.add_argument("--spread", type=float, default=1.0, help="λ of --combination uncertainty")
    parser.add_argument("--weights", default="equal", metavar="equal|FILE",
                        help="the task's scorers' weights: equal, or a weights file (JSON: each scorer's weight by "
                             "name and the normalisation they were fitted under, as the benchmarks write them): fitted "
                             "on labelled development problems, e.g. benchmarks/results/weights/math-chain_sum-dev-"
                             "fitted.json, or unlabelled, from how the scorers agree on development problems without "
                             "their labels, e.g. benchmarks/results/weights/math-chain_sum-unlabelled.json")


def ensemble_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Ensemble`` keywords of ``add_ensemble_options``' flags (``--weights`` is applied by ``with_weights``),
    checked as the Ensemble checks them, so a CLI that calls this first refuses bad ones before any model loads."""
    options = {name: getattr(args, name) for name in ("normalization", "nonfinite", "combination", "spread")}
    check_combination(options["combination"], options["normalization"], options["spread"])
    return options


def with_weights(ensemble: Ensemble | None, weights: str, task_scorers: int | None = None) -> Ensemble | None:
    """``ensemble`` with ``--weights``: unchanged for ``equal``, else its first ``task_scorers`` scorers (all by
    default; the rest are the user's ``--scorer`` ones, weighted by their specs) reweighted by the file
    (``consensus.core.weighting.read_weights``)."""
    if weights == "equal" or ensemble is None:
        return ensemble
    from consensus.core.weighting import read_weights

    k = len(ensemble.scorers) if task_scorers is None else task_scorers
    fitted = read_weights(weights, ensemble.names[:k], ensemble.normalization)
    return ensemble.reweighted([*fitted, *ensemble.weights[k:]])


# --scorer KIND:NAME[:WEIGHT]: a hub model by name (or a local folder), as the scorer class that reads it
HUB_SCORERS = {"rm": "RewardModelScorer", "prm": "ProcessRewardScorer"}


def user_scorers(specs: list[str]) -> list[tuple[Scorer, float]]:
    """The scorers and weights of ``--scorer`` specs, built before any model loads, so a bad one fails fast:
    ``module:Class[:weight]``, the user's own class, or ``rm:NAME[:weight]`` / ``prm:NAME[:weight]``, a reward model
    or a process reward model by hub name or local folder (``consensus.scorers.text.reward``)."""
    return [hub_scorer(spec) if spec.split(":", 1)[0] in HUB_SCORERS else scorer_from_spec(spec) for spec in specs]


def hub_scorer(spec: str) -> tuple[Scorer, float]:
    """``rm:NAME[:weight]`` or ``prm:NAME[:weight]`` built with the class's defaults; a model that does not load is a
    ValueError naming the spec."""
    from consensus.scorers.text import reward

    kind, rest = spec.split(":", 1)
    name, _, last = rest.rpartition(":")
    try:
        weight = float(last)
    except ValueError:
        name, weight = rest, 1.0  # no weight (a colon may still be inside the name)
    if not name or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"--scorer {spec!r}: write {kind}:NAME or {kind}:NAME:WEIGHT with a weight >= 0, e.g. "
                         f"{kind}:org/model:0.5")
    try:
        return getattr(reward, HUB_SCORERS[kind])(name), weight
    except (FileNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"--scorer {spec!r}: {e}") from e


def with_user_scorers(ensemble: Ensemble | None, user: list[tuple[Scorer, float]]) -> Ensemble | None:
    """``ensemble`` extended by the user's scorers (unchanged when there are none)."""
    if not user:
        return ensemble
    if ensemble is None:
        raise ValueError("--scorer needs a method that scores candidates; this one runs the generator alone")
    return ensemble.extended([s for s, _ in user], [w for _, w in user])


def flags_of(args: argparse.Namespace) -> dict:
    """A run's flags as given, for its ``run.json``: every option but the dispatch entries and where output goes."""
    skip = {"command", "command_line", "handler", "func", "out", "trace", "debug", "verbose", "manifest"}
    return {name: value for name, value in vars(args).items() if name not in skip}


def run_manifest(args: argparse.Namespace, folder: Path, trace: Path | None, **fields) -> Callable[..., Path]:
    """``write_manifest`` for this run's folder (``consensus.report.manifest``), bound to the command as typed and to
    the trace's place in the folder: call it at the start, and again with ``summary=`` and ``state="finished"`` at the
    end. ``main`` calls it with ``state="interrupted"`` or ``"failed"`` when the run ends otherwise."""
    from consensus.report.manifest import write_manifest

    args.manifest = functools.partial(write_manifest, folder, command=getattr(args, "command_line", ""),
                                      trace=None if trace is None else os.path.relpath(trace, folder), **fields)
    return args.manifest


def fresh_run_dir(path: Path, flag: str = "--out", resumes: Callable[[Path], bool] = lambda folder: False) -> Path:
    """The folder a run writes to, locked for this process (``lock_run_folder``): ``path`` when it is new or empty
    (or ``resumes`` says it holds this very run), else the first such of ``path-2``, ``path-3``, ..., so a new run
    never mixes its files with an earlier run's; an empty one another run has just taken is passed over, and this
    very run running elsewhere is refused (``RunFolderBusy``)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    candidate, k = path, 1
    while True:
        if candidate.exists() and resumes(candidate):
            lock_run_folder(candidate)  # this very run, running elsewhere: refused, not started again beside it
            return candidate
        if not (candidate.exists() and any(p.name != LOCK for p in candidate.iterdir())):
            try:
                lock_run_folder(candidate)
                return candidate
            except RunFolderBusy:  # a run that has just taken it
                pass
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")


LOCK = ".consensus.lock"
_held_locks: dict[Path, Any] = {}  # open until the process ends; the OS drops a lock when its holder dies


class RunFolderBusy(ValueError):
    """Another process is running into this folder."""


def lock_run_folder(folder: Path, command: str | None = None) -> None:
    """Take an exclusive OS lock (``flock``) on the run folder for the rest of this process, writing the pid and the
    command into the lock file; a second run into the folder is refused with a ``RunFolderBusy`` naming them. A run
    killed any way releases it (the OS does), so no stale lock is ever left behind."""
    import fcntl

    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held_locks:
        return
    with writing(folder):
        handle = open(folder / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the process's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not yet said which"
        handle.close()
        raise RunFolderBusy(f"{folder} is in use by another run ({holder}); wait for it to end, or give another "
                            "--out") from None
    with writing(folder):
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {command or shlex.join(sys.argv)}\n")
        handle.flush()
    _held_locks[key] = handle


def _missing(command: str, extra: str, error: ImportError, args: argparse.Namespace) -> None:
    raise ImportError(f"{error}; `consensus {command}` needs: pip install 'consensus[{extra}]'")


def build_parser() -> argparse.ArgumentParser:
    """The ``consensus`` command line: one subcommand per task (and report, serve)."""
    parser = argparse.ArgumentParser(prog="consensus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--verbose", action="store_true", help="show the libraries' own logs, warnings and progress bars")
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["consensus", *(sys.argv[1:] if argv is None else argv)])
    if not args.verbose:
        quiet_libraries()
    try:
        with sigterm_interrupts():
            status = args.handler(args)
    except KeyboardInterrupt as e:
        _interrupted(args, e)
    except WriteFailed as e:
        _fail(args, e, BAD if e.bad_input else FAILED)
    except FAILURES as e:
        _fail(args, e, FAILED)
    except BAD_INPUT as e:
        _fail(args, e, BAD)
    except Exception as e:  # anything else is a failure while running, said in one line too
        _fail(args, e, FAILED, f"{type(e).__name__}: {e} (run with --debug for the traceback)")
    if status:  # a handler may report failure (a robot episode that missed its goal) as an exit code
        raise SystemExit(status)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where the run is, as Ctrl-C raises ``KeyboardInterrupt``: the item in flight is dropped,
    every finished one is on disk already."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a scheduler's or ``kill``'s stop) ends the run as Ctrl-C does, not silently mid-write."""
    def stop(signum, frame):
        raise Interrupted

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _interrupted(args: argparse.Namespace, error: KeyboardInterrupt) -> None:
    """Mark the run interrupted in its manifest, say in one line how to go on, exit 128 + the signal's number."""
    if args.debug:
        raise error
    number = getattr(error, "signum", signal.SIGINT)
    where = "; the run had not begun"
    if getattr(args, "manifest", None) is not None:
        with contextlib.suppress(OSError):  # a disk that is full now still lets the message through
            args.manifest(state="interrupted")
        folder = args.manifest.args[0]
        resumes = args.manifest.keywords.get("results") is not None
        where = (f"; every finished item is saved in {folder}: run the same command again to resume" if resumes
                 else f"; what it wrote so far is in {folder}")
    print(f"consensus {args.command}: interrupted by {signal.Signals(number).name}{where}", file=sys.stderr)
    raise SystemExit(128 + number) from None


def quiet_libraries() -> None:
    """Only the project's own lines and progress bars: the model libraries' loading bars, info logs and
    advisory warnings say nothing a user can act on (``--verbose`` keeps them). Set before they are imported."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


BAD, FAILED = 2, 3
# Checked first: NaN energies are a ValueError, but it is the scorer that failed, not the input.
FAILURES = (ScorerError, GeneratorError, NonFiniteEnergyError, NonFiniteGradientError, RuntimeError, MemoryError)
BAD_INPUT = (FileNotFoundError, ImportError, ValueError, TypeError, OSError)


def _fail(args: argparse.Namespace, error: BaseException, status: int, message: str | None = None) -> None:
    if getattr(args, "manifest", None) is not None:
        with contextlib.suppress(OSError):  # the error itself may be that nothing can be written there
            args.manifest(state="failed")
    if args.debug:
        raise error
    print(f"consensus {args.command}: error: {message or error}", file=sys.stderr)
    raise SystemExit(status) from error


if __name__ == "__main__":
    main()
