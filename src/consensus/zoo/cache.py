"""Where derived files (converted weights, unpacked data) live: outside git, rebuilt on first use."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$CONSENSUS_CACHE``, else ``~/.cache/consensus``."""
    path = Path(os.environ.get("CONSENSUS_CACHE", Path.home() / ".cache" / "consensus"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(module: str, install: str) -> None:
    """Import ``module`` or fail with the command that installs it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"the offline model needs the package {module!r}; install it with: {install}") from e
