"""The model zoo: offline loaders, model builders, and the weights the project trained itself (``weights/``,
each with its card). It may build ready generators; it never imports the scorers or the tasks."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
