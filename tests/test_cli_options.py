"""Every task CLI takes the common options, and they reach the ensemble it builds."""

import pytest
import torch

from consensus import read_trace
from consensus.cli import build_parser, ensemble_options, main
from consensus.core.ensemble import normalize

COMMON = ["--normalization", "rank", "--nonfinite", "drop", "--combination", "uncertainty", "--spread", "0.5",
          "--scorer", "tests.fixtures.my_scorer:LengthScorer:0.5"]


@pytest.mark.parametrize("argv", [
    ["math", "--seed", "3"],
    ["image", "--class", "sneaker", "--seed", "3"],
    ["robot", "--goal", "red bowl on top of blue bowl", "--seed", "3"],
    ["vqa", "--video", "easy-vqa/test/0", "--question", "what colour is it?"],  # token steering draws nothing
], ids=lambda argv: argv[0])
def test_every_task_cli_takes_the_common_options(argv, tmp_path):
    args = build_parser().parse_args([*argv, *COMMON, "--out", str(tmp_path / "run"),
                                      "--trace", str(tmp_path / "trace.jsonl")])
    assert ensemble_options(args) == {"normalization": "rank", "nonfinite": "drop", "combination": "uncertainty",
                                      "spread": 0.5}
    assert str(args.out) == str(tmp_path / "run") and str(args.trace) == str(tmp_path / "trace.jsonl")
    assert args.scorer == ["tests.fixtures.my_scorer:LengthScorer:0.5"]
    assert getattr(args, "seed", 3) == 3


def test_a_conservative_combination_chosen_on_the_command_line_is_the_runs_total(tmp_path):
    folder = tmp_path / "worst"
    main(["math", "--source", "chain_sum", "--size", "1", "--n", "3", "--baseline", "none", "--combination", "worst",
          "--out", str(folder)])
    [record] = list(read_trace(folder / "trace.jsonl"))
    energies = record["energies"]
    z = torch.stack([normalize(torch.tensor(e, dtype=torch.float64), "zscore")
                     for e in energies["per_scorer"].values()])
    assert energies["total"] == pytest.approx(z.max(0).values.tolist())


def test_a_weights_file_reweights_the_tasks_scorers_and_a_wrong_one_is_refused(tmp_path, capsys):
    from consensus.core.weighting import write_weights

    names = ["ArithmeticVerifier", "LMLikelihood", "AnswerAgreement", "TrainedVerifier"]
    weights = tmp_path / "fitted.json"
    write_weights(weights, names, [3.0, 0.5, 0.0, 1.0], "zscore", fitted="by hand")
    folder = tmp_path / "weighted"
    main(["math", "--source", "chain_sum", "--size", "1", "--n", "3", "--baseline", "none", "--weights", str(weights),
          "--scorer", "tests.fixtures.my_scorer:LengthScorer:0.5", "--out", str(folder)])
    [record] = list(read_trace(folder / "trace.jsonl"))
    per_scorer = record["energies"]["per_scorer"]
    total = sum(w * normalize(torch.tensor(per_scorer[name], dtype=torch.float64), "zscore")
                for name, w in [*zip(names, [3.0, 0.5, 0.0, 1.0]), ("LengthScorer", 0.5)])
    assert record["energies"]["total"] == pytest.approx(total.tolist())

    write_weights(weights, names[:3], [1.0, 1.0, 1.0], "zscore")
    with pytest.raises(SystemExit) as stop:
        main(["math", "--source", "chain_sum", "--size", "1", "--weights", str(weights), "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and "no weight for ['TrainedVerifier']" in capsys.readouterr().err
    write_weights(weights, names, [1.0] * 4, "rank")
    with pytest.raises(SystemExit):
        main(["math", "--source", "chain_sum", "--size", "1", "--weights", str(weights), "--out", str(tmp_path / "y")])
    assert "pass --normalization rank" in capsys.readouterr().err
