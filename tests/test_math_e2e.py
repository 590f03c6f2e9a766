"""End to end on the real offline models: Gemma 3 270M + the GSM adapter, the four scorers."""

import json
import math

import pytest

from consensus import Budget, TopK, TraceWriter, read_trace, run_consensus
from consensus.cli import main
from consensus.eval.harness import read_results
from consensus.core.trace import summarize_candidate, validate_record
from consensus.scorers.text.answers import extract_flexible
from consensus.tasks.math.data import chain_sum, gsm_symbolic
from consensus.tasks.math.experiment import build_ensemble, line_steps, solution_steps
from consensus.tasks.math.prompt import is_complete


def test_solution_level_consensus_on_a_real_problem(gemma, tmp_path):
    problem = gsm_symbolic("test", 1, seed=11)[0]
    ensemble = build_ensemble(gemma)
    with TraceWriter(tmp_path / "trace.jsonl") as trace:
        result = run_consensus(solution_steps(gemma, 4), ensemble, problem.question, feedback=TopK(1),
                               budget=Budget(iterations=1), seed=0, trace=trace)
    [line] = list(read_trace(tmp_path / "trace.jsonl"))
    assert len(line["candidates"]) == 4 and set(line["energies"]["per_scorer"]) == set(ensemble.names)
    assert summarize_candidate(result.best) in line["candidates"] and result.generator_tokens > 0
    validate_record(line)
    totals = line["energies"]["total"]
    assert totals[line["survivors"][0]] == min(totals)


def test_step_level_consensus_builds_a_solution_line_by_line(gemma):
    problem = chain_sum(1, seed=5)[0]
    proposer = line_steps(gemma, 4)
    seen = []
    result = run_consensus(proposer, build_ensemble(gemma), problem.question, feedback=TopK(2),
                           budget=Budget(iterations=6), seed=0, callback=seen.append)
    assert result.generator_tokens > 0 and result.iterations == len(seen)
    for before, after in zip(seen, seen[1:]):  # every candidate extends a survivor of the previous step
        parents = [before["proposals"].candidates[i] for i in before["survivors"]]
        assert all(any(c.startswith(p) for p in parents) for c in after["proposals"].candidates)
    if result.stop_reason == "complete":
        assert all(is_complete(s) or s in proposer.ended for s in result.survivors)


def test_adaptive_compute_draws_rounds_until_the_answers_agree(tmp_path):
    folder = tmp_path / "adaptive"
    main(["math", "--source", "chain_sum", "--size", "3", "--method", "adaptive", "--n", "8", "--out", str(folder)])
    records = read_results(folder / "results.jsonl")
    trace = list(read_trace(folder / "trace.jsonl"))
    for r in records:
        rounds = [t for t in trace if t["item"] == r["id"]]
        assert [len(t["candidates"]) for t in rounds] == [2, 4, 8][:len(rounds)]
        assert r["tokens"] == sum(t["tokens"] for t in rounds) and r["stop_reason"] in ("agreement", "complete")
        answers = [extract_flexible(c) for c in rounds[-1]["candidates"]]
        agreed = max(answers.count(a) for a in set(answers) if a is not None) >= 0.75 * len(answers)
        assert agreed == (r["stop_reason"] == "agreement") or len(rounds) == 3
        assert r["greedy"]["text"] and "correct" in r


def test_adaptive_compute_until_verified_stops_once_the_choice_has_its_computations_right(tmp_path):
    folder = tmp_path / "verified"
    main(["math", "--source", "chain_sum", "--size", "4", "--method", "adaptive", "--until", "verified", "--n", "8",
          "--baseline", "none", "--out", str(folder)])
    records = read_results(folder / "results.jsonl")
    trace = list(read_trace(folder / "trace.jsonl"))
    for r in records:
        rounds = [t for t in trace if t["item"] == r["id"]]
        assert r["stop_reason"] in ("verified", "complete")
        for t in rounds:
            total = [math.inf if e is None else e for e in t["energies"]["total"]]
            lead = min(range(len(total)), key=total.__getitem__)
            passed = t["energies"]["per_scorer"]["ArithmeticVerifier"][lead] == 0.0
            assert passed == (t is rounds[-1] and r["stop_reason"] == "verified")
    assert any(r["stop_reason"] == "verified" for r in records), "a ± b: some leader has its sum right within 8"


def test_cli_evaluates_resumes_takes_a_users_scorer_and_writes_the_trace(tmp_path, capsys):
    folder, trace = tmp_path / "math", tmp_path / "trace.jsonl"
    out = folder / "results.jsonl"
    args = ["math", "--source", "chain_sum", "--size", "2", "--method", "solution", "--n", "2", "--out", str(folder),
            "--trace", str(trace), "--scorer", "tests.fixtures.my_scorer:LengthScorer:0.5"]
    main(args)
    first = out.read_text().splitlines()
    assert len(first) == 2 and {"gold", "text", "correct", "correct_strict"} <= set(json.loads(first[0]))
    lines = list(read_trace(trace))
    for line in lines:
        validate_record(line)
    assert [line["item"] for line in lines] == ["chain_sum-2x1-0-0", "chain_sum-2x1-0-1"]
    assert "LengthScorer" in lines[0]["energies"]["per_scorer"]
    main(args)  # a finished run started again redoes nothing
    assert out.read_text().splitlines() == first
    printed = capsys.readouterr().out
    assert "accuracy (flexible)" in printed and "consensus - generator alone" in printed and "worked example" in printed


@pytest.mark.parametrize("spec, message", [
    ("tests.fixtures.nope:LengthScorer", "cannot import module 'tests.fixtures.nope'"),
    ("tests.fixtures.my_scorer:Missing", "has no 'Missing'"),
    ("tests.fixtures.my_scorer:NotAScorer", "not a consensus.Scorer subclass"),
    ("tests.fixtures.my_scorer:LengthScorer:heavy", "the weight 'heavy' is not a number"),
    ("tests.fixtures.my_scorer:LengthScorer:-1", "finite number >= 0"),
    ("LengthScorer", "write module:Class or module:Class:weight"),
])
def test_cli_refuses_a_bad_scorer_with_a_clear_error(tmp_path, capsys, spec, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["math", "--source", "chain_sum", "--size", "1", "--out", str(tmp_path / "m"), "--scorer", spec])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_default_run_folder_resumes_its_own_settings_and_never_mixes_others(tiny_math_model, tmp_path, monkeypatch,
                                                                              capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["math", "--source", "chain_sum", "--size", "2", "--model", str(tiny_math_model), "--shots", "1"]
    main([*argv, "--method", "greedy"])
    main([*argv, "--method", "self-consistency", "--n", "2"])
    main([*argv, "--method", "greedy", "--size", "3"])  # resumes the first run's folder, one more problem
    assert [len((tmp_path / f).joinpath("results.jsonl").read_text().splitlines()) for f in ("runs/math",
                                                                                              "runs/math-2")] == [3, 2]
    manifest = json.loads((tmp_path / "runs/math/run.json").read_text())
    assert manifest["command"].endswith("--method greedy --size 3") and manifest["summary"]["accuracy (flexible)"]
    assert "report: consensus report runs/math\n" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["greedy", "self-consistency"])
def test_problems_drawn_in_one_batch_get_the_records_they_get_alone(method, tiny_math_model, tmp_path):
    argv = ["math", "--source", "chain_sum", "--size", "5", "--method", method, "--n", "3", "--model",
            str(tiny_math_model), "--shots", "1"]
    main([*argv, "--batch", "1", "--out", str(tmp_path / "alone")])
    main([*argv, "--batch", "3", "--out", str(tmp_path / "batched")])
    records = [[{k: v for k, v in r.items() if k not in ("seconds", "settings")}
                for r in read_results(tmp_path / run / "results.jsonl")] for run in ("alone", "batched")]
    assert records[0] == records[1]


def test_batched_experiment_records_every_method_and_a_batch_depends_on_nothing_before_it(gemma):
    from consensus.generators.text.steps import Sampling
    from consensus.tasks.math.experiment import Experiment

    experiment = Experiment(gemma, build_ensemble(gemma), n=2, beam=1, sampling=Sampling(max_new_tokens=24), max_steps=2)
    problems = chain_sum(2, seed=3)
    records = experiment.solve_batch(problems, seed=0)
    assert [r["question"] for r in records] == [p.question for p in problems]
    for r in records:
        assert len(r["samples"]) == 2 and set(r["energies"]) == {*experiment.ensemble.names, "ensemble"}
        assert r["solution_level"]["text"] in r["samples"] and r["step_level"]["tokens"] > 0
        assert r["solution_level"]["seconds"]["generator"] > 0  # each problem is charged its share of the batch
    [alone] = experiment.solve_batch(problems[:1], seed=0)
    experiment.solve_batch(problems[1:], seed=0)
    [again] = experiment.solve_batch(problems[:1], seed=0)  # as a resumed run would: no kept prefixes carried over
    assert (alone["samples"], alone["step_level"]["text"]) == (again["samples"], again["step_level"]["text"])
    # The sentence encoder's kernels round by batch shape on some CPUs (AVX2 EPYC: 1.4725305 against 1.4725301)
    for name, energies in alone["energies"].items():
        assert energies == pytest.approx(again["energies"][name], rel=1e-5, abs=1e-5), name
    more = experiment.samples(problems, seed=1)
    assert [len(m["samples"]) for m in more] == [2, 2] and all(m["tokens"] > 0 for m in more)
