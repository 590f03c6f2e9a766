"""A report reads only its run: a run folder from someone else, whose run.json and trace name files by traversal,
absolute paths and symlinks out of the folder, or non-images as images, gives a page that holds none of them, and a
warning naming each field."""

import base64
import io
import json
import os

from PIL import Image

from consensus.report import write_report

SECRET = b"root:x:0:0:the reader's own secret\n"


def _png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _record(iteration: int) -> dict:
    return {"item": "q-1", "iteration": iteration, "candidates": ["a", "b"],
            "energies": {"total": [0.0, 1.0], "per_scorer": {"s": [0.0, 1.0]}}, "survivors": [0],
            "feedback": {"TopK": {}}, "best_energy": 0.0, "tokens": 1, "generator_tokens": 1, "scorer_calls": 1,
            "seconds": {"generator": 0.1}}


def _shared_run(tmp_path, **manifest):
    """A run folder someone sent, beside files of the reader's that it must never read."""
    outside = tmp_path / "home"
    outside.mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "photo.png").write_bytes(_png("red"))  # a real image, but the reader's
    (outside / "trace.jsonl").write_text(json.dumps({**_record(0), "candidates": ["the reader's trace", "x"]}) + "\n")
    run = tmp_path / "shared" / "run"
    run.mkdir(parents=True)
    (run / "trace.jsonl").write_text("".join(json.dumps(_record(i)) + "\n" for i in range(2)))
    (run / "grid.png").write_bytes(_png("blue"))
    (run / "notes.png").write_bytes(b"just text pretending to be a picture")
    os.symlink(outside / "secret.txt", run / "link.png")
    os.symlink(outside / "photo.png", run / "photo-link.png")
    (run / "run.json").write_text(json.dumps({"task": "image", "title": "shared", "trace": "trace.jsonl",
                                              "results": None, **manifest}))
    return run, outside


def _embedded(html: str, data: bytes) -> bool:
    return base64.b64encode(data).decode() in html or data.decode(errors="replace") in html


def test_images_outside_the_folder_or_not_images_are_left_out_with_a_warning(tmp_path):
    secret_path = str(tmp_path / "home" / "secret.txt")
    images = [{"path": "grid.png", "caption": "ours"}, {"path": "../../home/secret.txt"}, {"path": secret_path},
              {"path": "link.png"}, {"path": "photo-link.png"}, {"path": "notes.png"}, {"path": 7}, "grid.png"]
    run, outside = _shared_run(tmp_path, images=images)
    page, warnings = write_report(run)
    html = page.read_text()
    assert _embedded(html, _png("blue")), "the run's own image is shown"
    assert not _embedded(html, SECRET) and not _embedded(html, _png("red"))
    by_field = {w.split(":")[0]: w for w in warnings}
    for i in (1, 2, 3, 4):
        assert "outside the run folder" in by_field[f"run.json images[{i}]"]
    assert "not a PNG, JPEG, GIF or WebP image" in by_field["run.json images[5]"]
    assert "not a file name" in by_field["run.json images[6]"]


def test_a_trace_or_results_file_outside_the_folder_is_not_read(tmp_path):
    run, _ = _shared_run(tmp_path)
    manifest = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**manifest, "trace": "../../home/trace.jsonl",
                                              "results": str(tmp_path / "home" / "secret.txt")}))
    page, warnings = write_report(run)
    html = page.read_text()
    assert "the reader's trace" not in html and not _embedded(html, SECRET)
    assert any(w.startswith("run.json trace:") and "outside the run folder" in w for w in warnings)
    assert any(w.startswith("run.json results:") and "outside the run folder" in w for w in warnings)


def test_candidate_thumbnails_stay_inside_the_folder_and_their_pattern_reads_no_attributes(tmp_path):
    run, outside = _shared_run(tmp_path, candidate_images="../../home/photo.png?{iteration}{candidate}")
    (outside / "photo.png?00").write_bytes(_png("red"))
    page, warnings = write_report(run)
    assert not _embedded(page.read_text(), _png("red"))
    assert any(w.startswith("candidate_images:") and "outside the run folder" in w for w in warnings)
    run, _ = _shared_run(tmp_path / "again", candidate_images="{iteration.__class__}-{candidate}.png")
    page, warnings = write_report(run)
    assert any("may name only {iteration} and {candidate}" in w for w in warnings)
    assert "class" not in "".join(p.name for p in run.iterdir())


def test_a_benchmarks_pictures_are_its_own(tmp_path):
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "photo.png").write_bytes(_png("red"))
    results = tmp_path / "bench.json"
    results.write_text(json.dumps({"title": "a benchmark", "rows": {"a": 1}}))
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "0.png").write_bytes(_png("blue"))
    os.symlink(outside / "photo.png", tmp_path / "bench" / "1.png")
    page, warnings = write_report(results)
    html = page.read_text()
    assert _embedded(html, _png("blue")) and not _embedded(html, _png("red"))
    assert any("1.png" in w and "outside the run folder" in w for w in warnings)
