import json

import pytest
from consensus.tasks.math.prompt import is_complete

from consensus.scorers.text.answers import extract_flexible, extract_strict, is_correct, normalize_number
from consensus.scorers.text.arithmetic import check_equations
from consensus.tasks.math.data import (
    GENERATOR_TRAINING,
    VERIFIER_TRAINING,
    DataError,
    chain_sum,
    few_shot_exemplars,
    gsm_symbolic,
    leg_counting,
    load_gsm8k_jsonl,
    load_problems,
    simple_geometry,
    template_split,
    training_template_problems,
)
from consensus.tasks.math.prompt import format_prompt


@pytest.mark.parametrize("text, strict, flexible", [
    ("48 / 2 = 24\n#### 24", "24", "24"),
    ("so she has 1,200 apples. The answer is $1,200.", "1200", "1200"),
    ("She pays 7.50 + 2.50 = 10.00", None, "10"),
    ("#### £14", "14", "14"),
    ("no number at all", None, None),
    ("The answer is -3.", "-3", "-3"),
])
def test_answer_extraction(text, strict, flexible):
    assert extract_strict(text) == strict and extract_flexible(text) == flexible


def test_numbers_match_after_normalisation():
    assert normalize_number("3456.0") == "3456" and normalize_number("0.50") == "0.5"
    assert is_correct("3456", "3456.0") and not is_correct(None, "1") and not is_correct("12", "13")


def test_gsm8k_jsonl_loader(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"question": "Q?", "answer": "2 * 3 = <<2*3=6>>6 eggs\n#### 6"}) + "\n\n")
    [p] = load_gsm8k_jsonl(path)
    assert p.answer == "6" and p.solution == "2 * 3 = 6 eggs\n#### 6" and p.id == "test-1"


def test_malformed_gsm8k_line_names_file_line_and_format(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "Q", "answer": "#### 1"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2 .*'question' and 'answer'"):
        load_gsm8k_jsonl(path)
    path.write_text(json.dumps({"question": "Q", "answer": "no final line"}) + "\n")
    with pytest.raises(DataError, match="####"):
        load_gsm8k_jsonl(path)


def test_empty_and_missing_problem_sets_are_clear_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="no problems"):
        load_gsm8k_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        load_gsm8k_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="at least one"):
        gsm_symbolic("test", 0)
    with pytest.raises(DataError, match="unknown problem source"):
        load_problems("gsm9k", 5)


def test_template_split_is_disjoint_and_covers_every_template():
    train, test = set(template_split("train")), set(template_split("test"))
    assert not train & test and len(train | test) == 85 and len(test) == 34


def test_problems_come_from_their_split_only_and_are_seeded():
    test_templates = {f"gsm_symbolic/{t}" for t in template_split("test")}
    problems = gsm_symbolic("test", 40, seed=5)
    assert {p.template for p in problems} <= test_templates
    assert problems == gsm_symbolic("test", 40, seed=5) and problems != gsm_symbolic("test", 40, seed=6)
    assert all(p.solution.strip().split("\n")[-1].startswith("####") for p in problems)
    train = gsm_symbolic("train", 40, seed=5)
    assert not {p.template for p in train} & test_templates


def test_new_problems_of_the_training_templates_leave_out_every_training_question():
    seen = {p.question for t in (GENERATOR_TRAINING, VERIFIER_TRAINING) for p in gsm_symbolic(**t)}
    train_templates = {f"gsm_symbolic/{t}" for t in template_split("train")}
    # Seed 1 is the generator's own training seed: its first 4,000 problems are all seen, so every
    # problem returned must come from further draws.
    for seed in (1, 7):
        problems = training_template_problems(50, seed)
        assert len(problems) == 50 and not {p.question for p in problems} & seen
        assert {p.template for p in problems} <= train_templates
    assert load_problems("gsm_symbolic_train_templates", 50, 7) == training_template_problems(50, 7)


def test_chain_sum_solutions_are_right():
    for p in chain_sum(20, seed=1):
        assert extract_strict(p.solution) == normalize_number(p.answer)


def test_leg_counting_solutions_are_right_and_every_computation_checks():
    problems = leg_counting(20, seed=1)
    assert problems == leg_counting(20, seed=1) and problems != leg_counting(20, seed=2)
    for p in problems:
        assert p.question.startswith("How many legs are there in total if you have ")
        assert extract_strict(p.solution) == normalize_number(p.answer)
        checks = check_equations(p.solution)
        assert len(checks) == p.question.count(",") + 2 and all(right for _, right in checks)


def test_simple_geometry_solutions_are_right_and_exemplars_show_every_polygon():
    problems = simple_geometry(20, seed=1)
    assert problems == simple_geometry(20, seed=1) and {p.template for p in problems} == {"simple_geometry/3",
                                                                                          "simple_geometry/4"}
    for p in problems:
        assert "Return only" not in p.question and extract_strict(p.solution) == normalize_number(p.answer)
        checks = check_equations(p.solution)
        assert len(checks) == 3 and all(right for _, right in checks)
    shots = few_shot_exemplars("simple_geometry", 4, seed=777)
    assert [p.template for p in shots] == ["simple_geometry/3", "simple_geometry/4"] * 2
    assert few_shot_exemplars("chain_sum", 4, seed=777) == chain_sum(4, seed=777)


def test_prompt_and_completion_rule():
    ex = chain_sum(1, seed=3)[0]
    prompt = format_prompt("What is 1 + 1?", [ex])
    assert prompt.startswith(f"Question: {ex.question}\nAnswer:\n") and prompt.endswith("Question: What is 1 + 1?\nAnswer:\n")
    assert is_complete("1 + 1 = 2\n#### 2") and not is_complete("1 + 1 = 2\n")


def test_missing_model_package_names_the_install_command():
    from consensus.zoo.cache import require

    with pytest.raises(ImportError, match="pip install some-model-package"):
        require("no_such_module_xyz", "pip install some-model-package")


@pytest.mark.parametrize("family", ["gsm_symbolic_train_templates", "chain_sum"])
def test_benchmark_problems_are_the_committed_tables_and_their_development_set_is_disjoint(family):
    from pathlib import Path

    from consensus.tasks.math.data import benchmark_problems

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    chosen = benchmark_problems(family, 200, dev=100)
    committed = [json.loads(line) for line in (results / f"math-{family}.jsonl").read_text().splitlines()]
    assert [(p.id, p.question) for p in chosen.problems] == [(r["id"], r["question"]) for r in committed]
    dev = [json.loads(line)["id"] for line in (results / f"math-{family}-dev.jsonl").read_text().splitlines()]
    assert [p.id for p in chosen.development] == dev
    asked = {p.question for p in chosen.problems} | {e.question for e in chosen.exemplars}
    assert not asked & {p.question for p in chosen.development}
