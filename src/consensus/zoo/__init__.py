"""The model zoo: offline loaders, model builders, and the weights the project trained itself (``weights/``,
each with its card). A leaf of the package: nothing here imports the core, the scorers or the tasks."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
