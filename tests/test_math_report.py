from consensus.core.weighting import select_with_weights
from consensus.tasks.math.report import Fitted, markdown, summarize

FITTED_SOLUTION, FITTED_STEP = "ensemble solution level, dev-fitted weights", "ensemble step level, dev-fitted weights"

NAMES = ["ArithmeticVerifier", "LMLikelihood"]


def record(gold: str, samples: list[str], verifier: list[float], likelihood: list[float]) -> dict:
    seconds = {"generator": 1.0, "loop": 0.01, "total": 1.5, "ArithmeticVerifier": 0.1, "LMLikelihood": 0.4,
               "AnswerAgreement": 0.0}
    energies = {"ArithmeticVerifier": verifier, "LMLikelihood": likelihood}
    chosen = samples[select_with_weights(energies, NAMES, [1.0, 1.0])]  # what the equal-weight loop keeps
    return {"gold": gold, "greedy": {"text": samples[1], "tokens": 5, "seconds": 0.2}, "samples": samples,
            "sample_tokens": 5 * len(samples),
            "energies": {**energies, "ensemble": []},
            "solution_level": {"text": chosen, "seconds": seconds},
            "step_level": {"text": samples[1], "tokens": 9, "seconds": {"total": 2.0, "loop": 0.01}}}


# In both problems the verifier knows the right sample (the first) and the likelihood prefers a wrong one more
# strongly, so equal weights pick wrong and verifier-heavy weights pick right.
RECORDS = [record("3", ["#### 3", "#### 4", "#### 5"], [0.0, 1.0, 1.0], [2.0, 0.0, 0.1]),
           record("7", ["#### 7", "#### 1", "#### 2"], [0.0, 1.0, 1.0], [2.0, 0.0, 0.1])]


def test_every_method_gets_a_row_and_the_claims_are_paired():
    summary = summarize(RECORDS)
    flexible = {m: row["flexible"]["correct"] for m, row in summary["methods"].items()}
    assert flexible["best-of-3: ArithmeticVerifier"] == 2 and flexible["best-of-3: LMLikelihood"] == 0
    assert flexible["pass@3 (ceiling)"] == 2 and flexible["greedy"] == 0
    assert FITTED_SOLUTION not in flexible and summary["weights"] == {}


def test_dev_fitted_weights_choose_from_the_stored_energies():
    fitted = Fitted(NAMES, [1.9, 0.1], "zscore", dev_problems=50)
    summary = summarize(RECORDS, [fitted])
    assert summary["methods"]["ensemble, solution level"]["flexible"]["correct"] == 0
    assert summary["methods"][FITTED_SOLUTION]["flexible"]["correct"] == 2
    assert summary["methods"][FITTED_SOLUTION]["tokens_per_problem"] == 15
    assert summary["weights"] == {"dev-fitted": {"ArithmeticVerifier": 1.9, "LMLikelihood": 0.1, "dev_problems": 50}}
    table = markdown(summary, "toy")
    assert "| ensemble solution level, dev-fitted weights | 100.0" in table and "ArithmeticVerifier 1.90" in table


def test_a_step_level_run_with_the_fitted_weights_gets_its_row():
    steps = {"text": "#### 3", "tokens": 11, "seconds": {"total": 2.0, "loop": 0.01}}
    records = [{**RECORDS[0], "step_level_fitted": steps}, {**RECORDS[1], "step_level_fitted": {**steps, "text": "#### 1"}}]
    summary = summarize(records, [Fitted(NAMES, [1.9, 0.1], "zscore", dev_problems=50)])
    assert summary["methods"][FITTED_STEP]["flexible"]["correct"] == 1
    assert summary["methods"][FITTED_STEP]["tokens_per_problem"] == 11
    assert any(claim.startswith(FITTED_STEP) for claim in summary["claims (flexible extraction)"])
    assert summary["claims (flexible extraction)"][f"{FITTED_STEP} - greedy"]["points"] == 50.0


def test_each_weighting_gets_its_own_rows_and_step_level_run():
    fitted = Fitted(NAMES, [1.9, 0.1], "zscore", dev_problems=50)
    unlabelled = Fitted(NAMES, [0.2, 1.8], "zscore", dev_problems=50, kind="unlabelled")
    steps = {"text": "#### 3", "tokens": 13, "seconds": {"total": 2.0, "loop": 0.01}}
    records = [{**r, "step_level_unlabelled": steps} for r in RECORDS]
    summary = summarize(records, [fitted, unlabelled])
    correct = {m: row["flexible"]["correct"] for m, row in summary["methods"].items()}
    assert correct["ensemble solution level, dev-fitted weights"] == 2
    assert correct["ensemble solution level, unlabelled weights"] == 0
    assert correct["ensemble step level, unlabelled weights"] == 1 and FITTED_STEP not in correct
    assert summary["methods"]["ensemble step level, unlabelled weights"]["tokens_per_problem"] == 13
    assert "Unlabelled weights (from 50 development problems disjoint from these, their energies alone" in \
        markdown(summary, "toy")


def test_self_consistency_at_twice_the_samples_gets_its_row_cost_and_claim():
    more = {"samples": ["#### 3", "#### 3", "#### 9"], "tokens": 15, "seconds": 0.5}
    records = [{**RECORDS[0], "more_samples": more}, {**RECORDS[1], "more_samples": {**more, "samples": ["#### 1"] * 3}}]
    summary = summarize(records)
    row = summary["methods"]["self-consistency (maj@6)"]
    assert row["flexible"]["correct"] == 1 and row["tokens_per_problem"] == 30
    assert summary["methods"]["self-consistency (maj@3)"]["tokens_per_problem"] == 15
    assert "ensemble step level - self-consistency (maj@6)" in summary["claims (flexible extraction)"]


def test_records_without_the_step_level_run_leave_its_rows_and_claims_out():
    records = [{k: v for k, v in r.items() if k != "step_level"} for r in RECORDS]
    summary = summarize(records)
    assert "ensemble, step level" not in summary["methods"] and "ensemble, solution level" in summary["methods"]
    assert not any("step level" in claim for claim in summary["claims (flexible extraction)"])
