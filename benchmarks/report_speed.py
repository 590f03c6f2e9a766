"""How fast a big run's report opens: the report of a 300-problem step-level math run (every step's 8
candidates with four scorers' energies), with each item filled from its template when opened (what
``consensus report`` writes) against the same page with every item rendered in place (the baseline), in
headless Chromium, interleaved.

    python benchmarks/report_speed.py [--run runs/report-speed] [--repeats 5]

Makes the run first when the folder does not hold it yet (``consensus math --source chain_sum --size 300
--method step``, resumable; about 10 minutes on 2 cores). Measured per page: seconds to write it, its size,
and in the browser (navigation and paint timing) the first contentful paint, the load event, and the time
to open one item. Writes benchmarks/results/report-speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from consensus.report.load import load_run
from consensus.report.run_page import run_page

RESULTS = Path(__file__).resolve().parent / "results"
PROBLEMS = 300

OPEN_ONE_ITEM = """
const done = arguments[arguments.length - 1];
const item = document.querySelectorAll('details.item')[150];
const start = performance.now();
item.open = true;
(function wait() {
  if (!item.querySelector('table')) return requestAnimationFrame(wait);
  requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - start)));
})();
"""


def make_run(folder: Path) -> None:
    command = [sys.executable, "-m", "consensus.cli", "math", "--source", "chain_sum", "--size", str(PROBLEMS),
               "--method", "step", "--out", str(folder)]
    print("making the run:", " ".join(command[2:]))
    subprocess.run(command, check=True)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def measure(driver, page: Path) -> dict[str, float]:
    driver.get("about:blank")
    driver.get(page.as_uri())
    timing = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "const p = performance.getEntriesByName('first-contentful-paint')[0];"
        "return [p ? p.startTime : null, n.loadEventEnd];")
    return {"first_paint_s": timing[0] / 1000, "load_s": timing[1] / 1000,
            "open_item_s": driver.execute_async_script(OPEN_ONE_ITEM) / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/report-speed"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = args.run / "results.jsonl"
    if not results.exists() or len(results.read_text().splitlines()) < PROBLEMS:
        make_run(args.run)
    run = load_run(args.run)
    pages, write_seconds = {}, {}
    for name, open_items in (("on demand", False), ("all rendered in place (baseline)", True)):
        start = time.perf_counter()
        html = run_page(run, open_items=open_items)
        write_seconds[name] = time.perf_counter() - start
        pages[name] = args.run / f"report-{'demand' if not open_items else 'inline'}.html"
        pages[name].write_text(html, encoding="utf-8")
    driver = browser()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
    try:
        for _ in range(args.repeats):
            for name, page in pages.items():  # interleaved: the machine's noise hits both alike
                samples[name].append(measure(driver, page))
    finally:
        driver.quit()
    rows = {name: {"items": len({r["item"] for r in run.trace}), "trace_lines": len(run.trace),
                   "write_s": write_seconds[name], "megabytes": page.stat().st_size / 1e6,
                   **{key: statistics.median(s[key] for s in samples[name]) for key in samples[name][0]}}
            for name, page in pages.items()}
    demand, inline = rows["on demand"], rows["all rendered in place (baseline)"]
    ratios = {key: demand[key] / inline[key] for key in ("first_paint_s", "load_s")}
    out = {"repeats": args.repeats, "rows": rows, "ratio_on_demand_to_baseline": ratios}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report-speed.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [f"# Report of a {PROBLEMS}-problem run: how fast it opens", "",
             f"`python benchmarks/report_speed.py` (median of {args.repeats} interleaved loads in headless Chromium; "
             f"{demand['items']} items, {demand['trace_lines']} trace lines).", "",
             "| page | MB | write (s) | first paint (s) | load event (s) | open one item (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['megabytes']:.1f} | {r['write_s']:.1f} | {r['first_paint_s']:.2f} | "
                     f"{r['load_s']:.2f} | {r['open_item_s']:.3f} |")
    lines += ["", f"On demand / baseline: first paint {ratios['first_paint_s']:.2f}x, load {ratios['load_s']:.2f}x."]
    (RESULTS / "report-speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
