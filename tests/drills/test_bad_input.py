"""Drill: malformed input at every command line's boundary gets one clear line and exit status 2."""

import json

import pytest

from consensus.cli import main


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def test_math_input_bounds(tmp_path, capsys):
    out = str(tmp_path / "m")
    assert "--size must be between 0" in _fails(["math", "--source", "chain_sum", "--size", "-1", "--out", out], capsys)
    assert "--size must be between 0" in _fails(["math", "--size", "1000000000", "--out", out], capsys)
    assert "generated: give a size >= 1" in _fails(["math", "--source", "chain_sum", "--size", "0", "--out", out],
                                                   capsys)
    assert "--n, --beam, --batch and --workers must be at least 1" in _fails(["math", "--n", "0", "--out", out], capsys)
    assert "--scorer needs --method solution, step or adaptive" in _fails(
        ["math", "--method", "greedy", "--scorer", "tests.fixtures.my_scorer:LengthScorer", "--out", out], capsys)
    assert "--until says when --method adaptive stops drawing" in _fails(
        ["math", "--method", "solution", "--until", "verified", "--out", out], capsys)
    assert "needs them on one scale: use normalization zscore, rank or minmax" in _fails(
        ["math", "--combination", "worst", "--normalization", "none", "--size", "1", "--out", out], capsys)


def test_a_gsm8k_line_with_a_non_numeric_answer_is_named(tmp_path, capsys):
    data = tmp_path / "test.jsonl"
    data.write_text(json.dumps({"question": "Which colour?", "answer": "It is blue.\n#### blue"}) + "\n")
    err = _fails(["math", "--source", str(data), "--size", "0", "--out", str(tmp_path / "m")], capsys)
    assert f"{data}:1" in err and "'blue' is not a number" in err


def test_a_results_file_of_other_settings_is_refused_before_any_model_loads(tmp_path, capsys):
    out = tmp_path / "m"
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps({"id": "chain_sum-2x1-0-0", "text": "1 + 1 = 2\n#### 2", "settings": {
        "task": "math", "method": "solution"}}) + "\n")
    err = _fails(["math", "--source", "chain_sum", "--size", "2", "--method", "greedy", "--out", str(out)], capsys)
    assert "holds results made with other settings" in err and "method" in err and "--out" in err


def test_an_empty_question_is_refused(capsys):
    assert "--question is empty" in _fails(["vqa", "--video", "easy-vqa/test/0", "--question", "  "], capsys)


def test_robot_object_counts_and_output_paths(tmp_path, capsys):
    goal = ["robot", "--goal", "red bowl left of blue mug"]
    assert "--objects must be between 1 and 6" in _fails([*goal, "--objects", "50"], capsys)
    assert "--objects must be between 1 and 6" in _fails([*goal, "--objects", "9"], capsys)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert "is a file; give a folder" in _fails([*goal, "--out", str(a_file)], capsys)
    assert "a part of its path is a file, not a folder" in _fails([*goal, "--out", str(a_file / "run")], capsys)
    assert "is a file; give a folder" in _fails(["image", "--class", "Sneaker", "--out", str(a_file)], capsys)


def test_a_new_run_never_writes_into_an_earlier_runs_folder(tmp_path, capsys):
    argv = ["robot", "--goal", "red bowl on top of blue mug", "--policy", "random", "--max-steps", "0", "--out",
            str(tmp_path / "run")]
    for _ in range(2):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 1  # the goal is not reached in 0 steps
    out = capsys.readouterr().out
    assert f"output in {tmp_path / 'run'}\n" in out and f"output in {tmp_path / 'run-2'}\n" in out
