"""End to end on the real offline models: Gemma 3 270M + the GSM adapter, the four scorers."""

import json

from consensus import Budget, TopK, TraceWriter, read_trace, run_consensus
from consensus.cli import main
from consensus.math.data import chain_sum, gsm_symbolic
from consensus.math.experiment import build_ensemble
from consensus.math.feedback import SolutionProposer, StepProposer, is_complete


def test_solution_level_consensus_on_a_real_problem(gemma, tmp_path):
    problem = gsm_symbolic("test", 1, seed=11)[0]
    ensemble = build_ensemble(gemma)
    with TraceWriter(tmp_path / "trace.jsonl") as trace:
        result = run_consensus(SolutionProposer(gemma, 4), ensemble, problem.question, select=TopK(1),
                               budget=Budget(iterations=1), seed=0, trace=trace)
    [line] = list(read_trace(tmp_path / "trace.jsonl"))
    assert len(line["candidates"]) == 4 and set(line["energies"]["per_scorer"]) == set(ensemble.names)
    assert result.best in line["candidates"] and result.generator_tokens > 0
    totals = line["energies"]["total"]
    assert totals[line["survivors"][0]] == min(totals)


def test_step_level_consensus_builds_a_solution_line_by_line(gemma):
    problem = chain_sum(1, seed=5)[0]
    proposer = StepProposer(gemma, 4)
    seen = []
    result = run_consensus(proposer, build_ensemble(gemma), problem.question, select=TopK(2),
                           budget=Budget(iterations=6), seed=0, callback=seen.append)
    assert result.generator_tokens > 0 and result.iterations == len(seen)
    for before, after in zip(seen, seen[1:]):  # every candidate extends a survivor of the previous step
        parents = [before["candidates"][i] for i in before["survivors"]]
        assert all(any(c.startswith(p) for p in parents) for c in after["candidates"])
    if result.stop_reason == "complete":
        assert all(is_complete(s) or s in proposer.ended for s in result.survivors)


def test_cli_evaluates_and_resumes(tmp_path, capsys):
    out = tmp_path / "math.jsonl"
    args = ["math", "--source", "chain_sum", "--size", "2", "--method", "greedy", "--out", str(out)]
    main(args)
    first = out.read_text().splitlines()
    assert len(first) == 2 and {"gold", "text", "correct", "correct_strict"} <= set(json.loads(first[0]))
    main(args)  # a finished run started again redoes nothing
    assert out.read_text().splitlines() == first
    printed = capsys.readouterr().out
    assert "accuracy (strict)" in printed and "accuracy (flexible)" in printed
