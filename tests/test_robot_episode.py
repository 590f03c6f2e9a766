"""One short real episode end to end (simulator, world model, trained segmenter, per-view
scorers, consensus loop), the random baseline, and the ``consensus robot`` command."""

import json

from PIL import Image

from consensus.core.ensemble import Ensemble
from consensus.core.trace import validate_record
from consensus.tasks.robot import cli
from consensus.tasks.robot.episode import ConsensusPolicy, RandomPolicy, run_episode
from consensus.tasks.robot.experiment import view_scorer
from consensus.tasks.robot.relations import parse_goal
from consensus.tasks.robot.scene import DEFAULT_CAMERAS, ObjectPose, SceneSpec
from consensus.zoo.segmenter import load_segmenter

SPEC = SceneSpec(
    ("red bowl", "blue mug", "cyan mug"), (ObjectPose(0.60, 0.15), ObjectPose(0.60, -0.10), ObjectPose(0.40, 0.0))
)
GOAL = parse_goal("red bowl to the left of blue mug")  # it starts to the right


def test_consensus_episode_reaches_a_goal_and_observes_every_step():
    ensemble = Ensemble([view_scorer(c, load_segmenter()) for c in DEFAULT_CAMERAS])
    seen = []
    result = run_episode(
        SPEC,
        GOAL,
        ConsensusPolicy(ensemble, samples=8, iterations=2),
        max_steps=3,
        seed=0,
        on_step=lambda scene, step: seen.append(step),
    )
    assert result.success and 1 <= result.steps <= 3
    assert seen == list(range(result.steps + 1)) and len(result.energies) == result.steps
    assert result.actions[-1].obj in GOAL.objects  # the move that made the relation hold


def test_random_policy_spends_its_budget_when_it_fails():
    result = run_episode(
        SPEC,
        parse_goal("red bowl on top of blue mug, cyan mug on top of red bowl"),
        RandomPolicy(),
        max_steps=2,
        seed=0,
    )
    assert not result.success and result.steps == 2 and not result.energies


def test_cli_saves_views_gif_and_trace(tmp_path, capsys):
    code = cli.main(
        [
            "--goal",
            "red bowl left of blue mug",
            "--seed",
            "3",
            "--samples",
            "6",
            "--iterations",
            "1",
            "--max-steps",
            "1",
            "--out",
            str(tmp_path),
            "--trace",
            str(tmp_path / "rounds.jsonl"),
            "--scorer",
            "tests.fixtures.my_scorer:ReachableScorer:2",
        ]
    )
    out = capsys.readouterr().out
    assert code in (0, 1) and ("succeeded" if code == 0 else "failed") in out
    for view in ("front", "left", "right"):
        assert Image.open(tmp_path / f"step_00_{view}.png").size == (cli.DISPLAY_SIZE, cli.DISPLAY_SIZE)
    assert Image.open(tmp_path / "episode.gif").n_frames > 3
    rounds = [json.loads(line) for line in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    for record in rounds:
        validate_record(record)
    assert rounds and set(rounds[0]["energies"]["per_scorer"]) == {"view:front", "view:left", "view:right",
                                                                    "ReachableScorer"}
    assert rounds[0]["item"] == "action 0" and rounds[0]["candidates"][0].startswith("put ")


def test_cli_rejects_unknown_goal_with_a_clear_message(tmp_path, capsys):
    assert cli.main(["--goal", "red bowl beside blue mug", "--out", str(tmp_path)]) == 2
    assert "no known relation in 'red bowl beside blue mug'" in capsys.readouterr().err
    assert cli.main(["--goal", "red bowl left of blue mug", "--views", "top", "--out", str(tmp_path)]) == 2
    assert "unknown views ['top']; choose among ['front', 'left', 'right']" in capsys.readouterr().err
