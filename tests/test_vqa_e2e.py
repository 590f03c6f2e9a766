"""Video QA end to end on the real offline models: Gemma 3 270M steered by the committed image–text models."""

import pytest

from consensus.cli import main
from consensus.core.feedback import CacheShift, TokenReweight
from consensus.core.trace import read_trace, validate_record
from consensus.generators.text.steering import SteeringConfig
from consensus.tasks.vqa.answers import is_correct
from consensus.tasks.vqa.data import easy_vqa_examples
from consensus.tasks.vqa.experiment import TOP_K, VideoQA, build_ensemble, load_scorers, steering
from consensus.tasks.vqa.video import write_video


@pytest.fixture(scope="module")
def ensemble():
    return build_ensemble(load_scorers("vqa-clip-cnn,vqa-clip-gru,vqa-clip-patch"))


@pytest.fixture(scope="module")
def colour_questions():
    """Colour questions about the first test images: the LM alone cannot know these answers."""
    picked = [e for e in easy_vqa_examples("test") if e.question_type == "color"][:4]
    return [(e, e.frames(4)) for e in picked]


def test_steering_answers_what_the_lm_alone_cannot_see(base_gemma, ensemble, colour_questions):
    alone = VideoQA(base_gemma, ensemble, steering("none"))
    steered = VideoQA(base_gemma, ensemble, steering("rescore"))
    right_alone = right_steered = 0
    for example, frames in colour_questions:
        a, s = alone.answer(frames, example.question), steered.answer(frames, example.question)
        right_alone += is_correct(a.text, example.answer)
        right_steered += is_correct(s.text, example.answer)
        # The scorers agree with the steered answer at least as much as with the LM's own.
        assert sum(s.energies.values()) <= sum(a.energies.values()) + 1e-6
    assert right_steered >= 3 and right_steered > right_alone


def test_gradient_feedback_on_the_real_lm(base_gemma, ensemble, colour_questions):
    example, frames = colour_questions[0]
    # One token, the colour: with more, the base LM goes on past its answer ("red and red").
    qa = VideoQA(base_gemma, ensemble, steering("gradient", steps=2, max_new_tokens=1))
    answer = qa.answer(frames, example.question)
    assert answer.steps and len(answer.steps[0].candidates) == TOP_K
    assert is_correct(answer.text, example.answer)


def test_cli_answers_a_real_video_file(tmp_path, capsys, colour_questions):
    example = colour_questions[0][0]
    video = write_video(example.frames(8), tmp_path / "clip.mp4")
    trace = tmp_path / "tokens.jsonl"
    main(["vqa", "--video", str(video), "--question", example.question, "--feedback", "rescore",
          "--trace", str(trace), "--scorer", "tests.fixtures.my_scorer:LengthScorer:0.1"])
    out = capsys.readouterr().out
    assert f"answer: {example.answer}" in out
    for name in ("vqa-clip-cnn", "vqa-clip-gru", "vqa-clip-patch", "LengthScorer"):
        assert f"{name}: energy" in out
    tokens = list(read_trace(trace))
    for record in tokens:
        validate_record(record)
    assert tokens and tokens[0]["item"] == example.question and "TokenReweight" in tokens[0]["feedback"]


@pytest.mark.parametrize("args, message", [
    (["--video", "{tmp}/broken.mp4"], "broken.mp4"),
    (["--video", "{tmp}/empty"], "no images"),
    (["--video", "{tmp}/missing.mp4"], "does not exist"),
    (["--video", "easy-vqa/test/0", "--scorers", "vqa-clip-nope"], "vqa-clip-nope"),
])
def test_cli_bad_input_gets_a_clear_error(tmp_path, capsys, args, message):
    (tmp_path / "broken.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["vqa", "--question", "what color is the shape?", *[a.format(tmp=tmp_path) for a in args]])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_question_with_no_frames_is_refused(base_gemma, ensemble):
    from consensus.scorers.frames.condition import VideoQuestion

    with pytest.raises(ValueError, match="no frames"):
        VideoQuestion((), "what color is the shape?")
    with pytest.raises(ValueError, match="no frames"):
        VideoQA(base_gemma, ensemble).answer([], "what color is the shape?")


def test_feedback_without_scorers_is_refused(base_gemma):
    with pytest.raises(ValueError, match="needs an ensemble"):
        VideoQA(base_gemma, None, SteeringConfig([TokenReweight()]))


# The README's example, as the string vocabulary answered it before token steering took a list of forms (commit
# 50a5ece, SteeringConfig(feedback="rescore" | "gradient", top_k=64, temperature=1.0, max_new_tokens=4)): the text,
# and at each token the index of the chosen candidate among the LM's 64.
README_ANSWERS = {"rescore": ("triangle", [0, 0]), "gradient": ("a triangle", [2, 0, 0])}


@pytest.mark.parametrize("form", [TokenReweight(temperature=1.0), CacheShift(temperature=1.0)], ids=lambda f: f.name)
def test_a_list_of_forms_reproduces_the_readme_answers(base_gemma, form):
    from consensus.generators.text.steering import steer
    from consensus.scorers.frames import VideoQuestion
    from consensus.tasks.vqa.data import easy_vqa_clip
    from consensus.tasks.vqa.experiment import format_prompt

    question = VideoQuestion(tuple(easy_vqa_clip("easy-vqa/test/12")), "what shape is in the image?")
    answer = steer(base_gemma, format_prompt(question.question), build_ensemble(load_scorers("vqa-clip-cnn")),
                   question, SteeringConfig([form], top_k=64, max_new_tokens=4))
    text, chosen = README_ANSWERS["rescore" if isinstance(form, TokenReweight) else "gradient"]
    assert answer.text == text and [step.choice.chosen for step in answer.steps] == chosen
