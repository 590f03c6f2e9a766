"""Reports without a browser: the readers forgive a bad line and name it, the agreement measure is Spearman's ρ,
and every committed benchmark result has its report beside it."""

import json
from pathlib import Path

import numpy as np
import pytest

from consensus.cli import main
from consensus.report import write_manifest, write_report
from consensus.report.benchmark_page import read_benchmark
from consensus.report.load import load_run
from consensus.report.run_page import agreement, chosen_energies

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _record(iteration, energies, survivors, item="q-1"):
    names = list(energies)
    n = len(energies[names[0]])
    total = [sum(energies[k][i] for k in names) for i in range(n)]
    return {"item": item, "iteration": iteration, "candidates": [f"c{i}" for i in range(n)],
            "energies": {"total": total, "per_scorer": energies}, "survivors": survivors, "feedback": {"TopK": {}},
            "best_energy": min(total[i] for i in survivors), "tokens": 3, "generator_tokens": 3 * (iteration + 1),
            "scorer_calls": iteration + 1, "seconds": {"generator": 0.1}}


def test_agreement_is_the_mean_spearman_rho_over_iterations():
    a = [0.1, 0.5, 0.2, 0.9]
    records = [_record(0, {"a": a, "same": [10 * x for x in a], "reversed": [-x for x in a], "flat": [1.0] * 4}, [0]),
               _record(1, {"a": a, "same": [x + 3 for x in a], "reversed": [1 - x for x in a], "flat": [2.0] * 4}, [0])]
    names, rho = agreement(records)
    assert names == ["a", "same", "reversed", "flat"]
    assert rho[0, 1] == pytest.approx(1.0) and rho[0, 2] == pytest.approx(-1.0) and rho[1, 0] == rho[0, 1]
    assert np.isnan(rho[0, 3])  # a scorer that gives every candidate one value ranks nothing


def test_the_chosen_energies_follow_the_lowest_total_survivor():
    records = [_record(0, {"a": [3.0, 1.0, 2.0], "b": [0.0, 0.5, 5.0]}, [1, 2]),
               _record(1, {"a": [1.0, 0.2, 0.1], "b": [0.1, 0.1, 0.1]}, [2])]
    assert chosen_energies(records) == {"total": [1.5, 0.2], "a": [1.0, 0.1], "b": [0.5, 0.1]}


def test_a_truncated_or_malformed_trace_gives_a_report_of_what_is_readable_and_names_each_bad_line(tmp_path):
    lines = [_record(i, {"a": [1.0 - i, 2.0], "b": [0.5, 0.1 * i]}, [0]) for i in range(4)]
    del lines[1]["tokens"]
    text = "".join(json.dumps(r) + "\n" for r in lines) + "not json at all\n" + json.dumps(lines[0])[:25]
    (tmp_path / "trace.jsonl").write_text(text)
    write_manifest(tmp_path, task="math", title="a damaged run")
    run = load_run(tmp_path)
    assert [r["iteration"] for r in run.trace] == [0, 2, 3]
    assert run.warnings == ["trace.jsonl line 2: trace record lacks ['tokens']; skipped",
                            "trace.jsonl line 5: not JSON (Expecting value); skipped",
                            "trace.jsonl line 6: half-written last line (the run was stopped mid-write); skipped"]
    page, warnings = write_report(tmp_path)
    html = page.read_text()
    assert warnings == run.warnings and 'id="warnings"' in html and "line 2: trace record lacks" in html
    assert html.count("<svg") >= 2  # the energy curves and the agreement map of the three readable lines


def test_the_report_command_names_what_it_cannot_read(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "does not exist; give a run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "empty")])
    assert exit_info.value.code == 2 and "is it a run folder?" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "bad.json")])
    assert exit_info.value.code == 2 and "is not JSON" in capsys.readouterr().err


@pytest.mark.parametrize("results", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_every_committed_benchmark_result_has_its_report_beside_it(results, tmp_path):
    assert results.with_suffix(".html").exists(), f"run: consensus report {results.relative_to(RESULTS.parents[1])}"
    page, warnings = write_report(results, tmp_path / "page.html")
    assert not warnings and "<svg" in page.read_text() or read_benchmark(json.loads(results.read_text())) is None


def test_the_known_benchmark_shapes_give_methods_with_intervals():
    for name in ("math-chain_sum", "vqa-easy", "image", "robot", "image-guidance-search"):
        bench = read_benchmark(json.loads((RESULTS / f"{name}.json").read_text()))
        assert bench is not None and len(bench.methods) >= 3, name
        assert all(m.low <= m.value <= m.high for m in bench.methods if m.low is not None), name
        assert bench.claims, name


def test_accuracy_against_fid_draws_one_panel_per_scorer_set():
    from consensus.report.plots import accuracy_against_fid

    svg = accuracy_against_fid({"cnn": [(0.8, 150.0, "gradient"), (0.95, 60.0, "particles")],
                                "ensemble": [(0.9, 120.0, "gradient")]}, 0.9, "every setting")
    assert svg.startswith("<svg") and svg.count(">cnn<") == 1 and svg.count(">ensemble<") == 1
    assert ">particles<" in svg and ">held-out accuracy<" in svg


def test_accuracy_against_tokens_draws_a_line_per_method_and_one_per_adaptive_rule():
    from consensus.report.benchmark_page import curve_lines
    from consensus.report.plots import accuracy_against_tokens

    def point(tokens, accuracy):
        return {"tokens": tokens, "accuracy": accuracy, "low": accuracy - 5, "high": accuracy + 5, "problems": 10}

    curves = {"maj@N": {"1": point(90, 13), "4": point(360, 15), "16": point(1440, 16)},
              "adaptive ensemble, votes ≥ 50%": {"0": point(200, 18)},
              "adaptive ensemble, votes ≥ 90%": {"0": point(700, 21)},
              "adaptive ensemble, verified": {"0": point(400, 20)}}
    lines = curve_lines(curves)
    assert lines["maj@N"] == [(90, 13, 8, 18), (360, 15, 10, 20), (1440, 16, 11, 21)]
    assert lines["adaptive ensemble, votes (over the share)"] == [(200, 18, 13, 23), (700, 21, 16, 26)]
    assert lines["adaptive ensemble, verified"] == [(400, 20, 15, 25)], "a rule without a share: one point"
    svg = accuracy_against_tokens(lines, "curves")
    assert svg.startswith("<svg") and ">maj@N<" in svg and "log" in svg and ">adaptive ensemble, verified<" in svg
    bench = read_benchmark({"curves": curves, "claims": {}})
    assert [m.name for m in bench.methods] == ["maj@N (N=16)", "adaptive ensemble, votes ≥ 50%",
                                               "adaptive ensemble, votes ≥ 90%", "adaptive ensemble, verified"]
