"""Static HTML reports: ``consensus report PATH`` turns a run folder or a benchmark's results file into one
self-contained page (``write_report``)."""

from __future__ import annotations

from pathlib import Path

from consensus.report.manifest import report_hint, write_manifest

__all__ = ["report_hint", "write_manifest", "write_report"]


def write_report(path: str | Path, out: str | Path | None = None) -> tuple[Path, list[str]]:
    """Write the report of ``path`` (a run folder, a trace file, or a benchmark's ``.json`` results) to
    ``out`` (default: ``report.html`` in the run folder, or ``<results>.html`` beside the results file).
    Returns the page's path and the warnings about lines that could not be read."""
    path = Path(path)
    if path.suffix == ".json" and path.is_file():
        from consensus.report.benchmark_page import benchmark_page

        html, warnings = benchmark_page(path)
        target = Path(out) if out else path.with_suffix(".html")
    else:
        from consensus.report.load import load_run
        from consensus.report.run_page import run_page

        run = load_run(path)
        html = run_page(run)
        warnings = run.warnings
        target = Path(out) if out else (path if path.is_dir() else path.parent) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target, warnings
