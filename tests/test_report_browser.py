"""Reports opened in a real browser (headless Chromium through its driver): a report of a real run of each of
the four tasks, and of a committed benchmark, renders with no console error, shows its plots, tables and
images, fills an item's details when it is opened, and is not blank. Screenshots go to build/report-screenshots."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from consensus.cli import main
from consensus.report import write_report

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "report-screenshots"

RUNS = {
    "math": ["math", "--source", "chain_sum", "--size", "2", "--method", "step", "--n", "2"],
    "image": ["image", "--class", "Sneaker", "--num-images", "4", "--steps", "4"],
    "robot": ["robot", "--goal", "red bowl on top of blue mug", "--samples", "8", "--iterations", "1", "--max-steps",
              "1"],
    "vqa": ["vqa", "--video", "easy-vqa/test/12", "--question", "what shape is in the image?", "--max-new-tokens",
            "2"],
}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("headless Chromium is missing: apt-get install chromium chromium-driver (the README's test "
                    "command does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(120)  # only a hang reaches this
    yield session
    session.quit()


def _run(task, folder):
    """The task's real CLI on the offline models, small; the robot may miss its goal in one step (status 1)."""
    try:
        main([*RUNS[task], "--out", str(folder)])
    except SystemExit as done:
        assert done.code in (0, 1), f"consensus {task} exited {done.code}"
    return folder


def _open(browser, page: Path, name: str):
    browser.get(page.as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{name}: console errors {errors}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(shot))
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005, f"{name}: the screenshot {shot} looks blank"


def _count(browser, selector):
    from selenium.webdriver.common.by import By

    return len(browser.find_elements(By.CSS_SELECTOR, selector))


def _open_first_item(browser):
    """Open the first closed item and check that its details arrived from its template."""
    from selenium.webdriver.common.by import By

    closed = browser.find_elements(By.CSS_SELECTOR, "details[data-template]")
    if not closed:  # a one-item run shows its item open
        return
    assert not closed[0].find_elements(By.CSS_SELECTOR, "table")
    from selenium.webdriver.support.ui import WebDriverWait

    closed[0].find_element(By.TAG_NAME, "summary").click()  # the toggle event fills it a moment later
    WebDriverWait(browser, 30).until(lambda _: closed[0].find_elements(By.CSS_SELECTOR, "table"),
                                     "an opened item shows its details")


@pytest.mark.parametrize("task", list(RUNS))
def test_a_run_report_renders_in_a_browser(task, browser, tmp_path):
    folder = _run(task, tmp_path / task)
    page, warnings = write_report(folder)
    assert not warnings
    _open(browser, page, f"run-{task}")
    assert _count(browser, "svg") >= 2, "the energy curves and the scorers' agreement map"
    assert _count(browser, "table") >= 2
    if task != "math":
        assert _count(browser, "img.picture") >= 1, "the run's images: a grid, the episode, the frames"
    if task == "image":
        assert _count(browser, "img.thumb") >= 4, "every candidate's x̂0 as a thumbnail"
    _open_first_item(browser)
    assert _count(browser, "tr.chosen") >= 1, "the chosen candidates are marked"


def test_a_benchmark_report_renders_in_a_browser(browser, tmp_path):
    page, warnings = write_report(ROOT / "benchmarks" / "results" / "math-chain_sum.json", tmp_path / "bench.html")
    assert not warnings
    _open(browser, page, "benchmark-math-chain_sum")
    assert _count(browser, "svg") >= 2, "the methods' and the claims' forest plots"
    assert _count(browser, "details.item") == 200
    _open_first_item(browser)


def test_a_damaged_trace_still_renders_with_its_warning(browser, tmp_path):
    folder = _run("image", tmp_path / "image")
    trace = folder / "trace.jsonl"
    lines = trace.read_text().splitlines(keepends=True)
    trace.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    page, warnings = write_report(folder)
    assert warnings == [f"trace.jsonl line {len(lines)}: half-written last line (the run was stopped mid-write); "
                        "skipped"]
    _open(browser, page, "run-image-damaged-trace")
    assert _count(browser, "#warnings") == 1 and _count(browser, "svg") >= 2
