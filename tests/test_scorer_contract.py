"""The Scorer contract, run against every scorer class in the package: real models where they ship, tiny
random CLIP configs where they do not. ``test_every_scorer_class_has_a_contract_case`` fails when a scorer
class is added to the package without a case here."""

import copy
import pickle
from dataclasses import dataclass
from functools import cache

import pytest
import torch

from consensus import Scorer
from consensus.core.scorer import NoiseLevel
from consensus.scorers.text import AnswerAgreement, ArithmeticVerifier, LMLikelihood
from consensus.scorers.text.arithmetic import check_equations
from consensus.tasks.math.prompt import format_prompt
from consensus.scorers.text.verifier import StepVerifier, TrainedVerifier

QUESTION = ("Ava has 12 apples. She buys 3 bags with 4 apples in each bag. "
            "How many apples does she have now?")
GOOD = "She buys 3 * 4 = 12 apples.\nShe now has 12 + 12 = 24 apples.\n#### 24"
BAD = "She buys 3 + 4 = 9 apples.\nShe now has 12 * 9 = 118 apples.\n#### 118"
OTHER = "She buys 3 * 4 = 12 apples.\nShe has 12 + 12 = 24.\n#### 24"


@dataclass
class Case:
    """A scorer with candidates it must rank: ``candidates[0]`` fits the condition, ``candidates[1]`` does not."""

    scorer: Scorer
    candidates: object
    condition: object
    noise_level: NoiseLevel | None = None  # for scorers that read it: the candidates as a diffusion step's x̂0

    def energy(self, candidates=None):
        return self.scorer.energy_at(self.candidates if candidates is None else candidates, self.condition,
                                     self.noise_level)


TEXT = [GOOD, BAD, OTHER, ""]
STEPS = ["She buys 3 * 4 = 12 apples.\nShe now has 12 + 12 = 24 apples.\n", "She sells 57 * 8 = 456 pears.\n",
         "She buys 3 * 4 = 12 apples.\n", ""]


@cache
def _fashion_images():
    from consensus.tasks.image.data import FASHION_CLASSES, load_fashion_mnist

    images, labels = load_fashion_mnist("test")
    trouser = FASHION_CLASSES.index("Trouser")
    first = lambda want: int(((labels == trouser) == want).nonzero()[0])
    return images[[first(True), first(False), first(False) + 1]]


@cache
def _verifier():
    return TrainedVerifier()  # loads the sentence encoder: once per session


@cache
def _colour_question():
    """The first easy-VQA test colour question as a 4-frame clip, and its answer."""
    from consensus.scorers.frames.condition import VideoQuestion
    from consensus.tasks.vqa.data import easy_vqa_examples

    example = next(e for e in easy_vqa_examples("test") if e.question_type == "color")
    return VideoQuestion(tuple(example.frames(4)), example.question), example.answer


def _vqa(name):
    from consensus.scorers.frames.text_image import TinyClipScorer

    condition, answer = _colour_question()
    wrong = "brown" if answer != "brown" else "teal"
    return Case(TinyClipScorer.load(name), [answer, wrong, "circle", ""], condition)


def _photo():
    import skimage.data
    from PIL import Image

    from consensus.scorers.frames.condition import VideoQuestion
    from consensus.scorers.frames.text_image import ClassifierTextScorer

    cat = VideoQuestion((Image.fromarray(skimage.data.chelsea()),), "what animal is this?")
    return Case(ClassifierTextScorer(), ["cat", "car", "a cat", "x"], cat)


def _fashion(name):
    from consensus.tasks.image.experiment import fashion_scorer

    return Case(fashion_scorer(name), _fashion_images(), "Trouser")


def _midway():
    """A noise level halfway through the committed generator's schedule, with a fixed noise estimate."""
    eps = torch.randn(_fashion_images().shape, generator=torch.Generator().manual_seed(0))
    return NoiseLevel(300, 0.85, eps)


def _fashion_noise_aware(name):
    from consensus.tasks.image.experiment import fashion_scorer

    return Case(fashion_scorer(f"noise-aware-{name}"), _fashion_images(), "Trouser", _midway())


def _smoothed_fashion():
    from consensus.scorers.image import Smoothed
    from consensus.tasks.image.experiment import fashion_scorer

    return Case(Smoothed(fashion_scorer("cnn"), strength=0.5, copies=4), _fashion_images(), "Trouser", _midway())


@cache
def _tiny_clip(folder):
    from test_image_scorers import tiny_clip, tiny_clip_tokenizer  # tests/ is on sys.path under pytest

    tokenizer = tiny_clip_tokenizer(folder)
    return tiny_clip(len(tokenizer)).eval(), tokenizer


def _clip_image(request):
    from consensus.scorers.image import CLIPScorer

    model, tokenizer = _tiny_clip(request.getfixturevalue("tmp_path_factory").mktemp("clip"))
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return Case(CLIPScorer(model, tokenizer, name="clip-tiny"), images, "a red square")


def _clip_frames(request):
    from consensus.scorers.frames import CLIPFrameScorer

    model, tokenizer = _tiny_clip(request.getfixturevalue("tmp_path_factory").mktemp("clip"))
    condition, answer = _colour_question()
    return Case(CLIPFrameScorer(model, tokenizer, name="clip-frames-tiny"), [answer, "circle", ""], condition)


@cache
def _imagenet():
    import skimage.data

    from consensus.scorers.image import imagenet_scorer

    cat, coffee = (torch.from_numpy(getattr(skimage.data, n)()).permute(2, 0, 1)[None].float() / 255
                   for n in ("chelsea", "coffee"))
    coffee = torch.nn.functional.interpolate(coffee, size=cat.shape[-2:], mode="bilinear")
    return Case(imagenet_scorer("mobilenet_v2"), torch.cat([cat, coffee]), "tabby cat")


@cache
def _view():
    """The front camera on two predicted scenes: the red bowl left of the blue mug, and right of it."""
    from consensus.tasks.robot.experiment import view_scorer
    from consensus.tasks.robot.relations import Goal, Relation
    from consensus.tasks.robot.scene import DEFAULT_CAMERAS, ObjectPose, PickPlace, SceneSpec, TabletopScene
    from consensus.tasks.robot.world_model import SimulatorWorldModel
    from consensus.zoo.segmenter import load_segmenter

    spec = SceneSpec(("red bowl", "blue mug"), (ObjectPose(0.40, 0.22, 0.3), ObjectPose(0.55, 0.0, 1.0)))
    with TabletopScene(spec, cameras=DEFAULT_CAMERAS[:1]) as scene:
        predictions = SimulatorWorldModel(scene, ["front"]).predict(
            [PickPlace("red bowl", 0.55, -0.15), PickPlace("red bowl", 0.55, 0.15)])
    goal = Goal((Relation("red bowl", "left of", "blue mug"),))
    return Case(view_scorer(DEFAULT_CAMERAS[0], load_segmenter()), predictions, goal)


@cache
def _remote_arithmetic():
    from consensus.distributed.ray_scorers import remote

    return remote(ArithmeticVerifier, num_cpus=0.5)


def _remote(request):
    request.getfixturevalue("ray_cluster")
    return Case(_remote_arithmetic(), TEXT, QUESTION)


def _reward_model(request):
    from test_reward_scorers import _config, _tokenizer  # tests/ is on sys.path under pytest
    from transformers import GPT2ForSequenceClassification

    from consensus.scorers.text.reward import RewardModelScorer

    torch.manual_seed(0)
    tokenizer = _tokenizer(request.getfixturevalue("tiny_tokenizer"))
    model = GPT2ForSequenceClassification(_config(tokenizer, num_labels=1))
    return Case(RewardModelScorer(model, tokenizer, name="RewardModel[tiny]"), TEXT, QUESTION)


def _process_reward(request):
    from test_reward_scorers import _config, _tokenizer
    from transformers import GPT2ForTokenClassification

    from consensus.scorers.text.reward import ProcessRewardScorer

    torch.manual_seed(0)
    tokenizer = _tokenizer(request.getfixturevalue("tiny_tokenizer"))
    model = GPT2ForTokenClassification(_config(tokenizer, num_labels=2))
    return Case(ProcessRewardScorer(model, tokenizer, name="ProcessReward[tiny]"), TEXT, QUESTION)


def _judge(lm):
    from consensus.scorers.text.judge import LLMJudge

    return LLMJudge(lm, template="{condition}\n{candidate}\nRight? Answer:", name="LLMJudge[tiny]")  # 256 tokens


def _lm_verifier(lm):
    from consensus.scorers.text.lm_verifier import LMVerifier

    return LMVerifier(lm, prompt=format_prompt)  # the committed LoRA and head, on llama.cpp


def _lm_verifier_tiny(request):
    """The LM verifier's code path on the tiny random LM, with a random head written as a training run writes one."""
    from tests.test_lm_verifier import random_head

    lm = request.getfixturevalue("tiny_lm")
    folder = random_head(request.getfixturevalue("tmp_path_factory").mktemp("lm-verifier"), lm)
    from consensus.scorers.text.lm_verifier import LMVerifier

    return Case(LMVerifier(lm, weights=folder, name="LMVerifier[tiny]"), TEXT, QUESTION)


CASES = {
    "arithmetic": lambda request: Case(ArithmeticVerifier(), TEXT, QUESTION),
    "agreement": lambda request: Case(AnswerAgreement(), TEXT, QUESTION),
    "verifier": lambda request: Case(_verifier(), TEXT, QUESTION),
    # Partial solutions, its domain: a sound one against one off the question. It does not catch a wrong number
    # (it ranks BAD's "3 + 4 = 9" above GOOD's "3 * 4 = 12"; see its model card), the arithmetic verifier does.
    "step_verifier": lambda request: Case(StepVerifier(encoder=_verifier().encoder), STEPS, QUESTION),
    "likelihood": lambda request: Case(LMLikelihood(request.getfixturevalue("gemma"), prompt=format_prompt), TEXT,
                                       QUESTION),
    "likelihood_tiny": lambda request: Case(LMLikelihood(request.getfixturevalue("tiny_lm"), name="LMLikelihood[tiny]"),
                                            TEXT, QUESTION),
    "fashion_cnn": lambda request: _fashion("cnn"),
    "fashion_mlp": lambda request: _fashion("mlp"),
    "fashion_resnet": lambda request: _fashion("resnet"),
    "fashion_noise_aware_cnn": lambda request: _fashion_noise_aware("cnn"),
    "fashion_noise_aware_mlp": lambda request: _fashion_noise_aware("mlp"),
    "fashion_noise_aware_resnet": lambda request: _fashion_noise_aware("resnet"),
    "fashion_smoothed_cnn": lambda request: _smoothed_fashion(),
    "vqa_clip_cnn": lambda request: _vqa("vqa-clip-cnn"),
    "vqa_clip_gru": lambda request: _vqa("vqa-clip-gru"),
    "vqa_clip_patch": lambda request: _vqa("vqa-clip-patch"),
    "vqa_imagenet_minilm": lambda request: _photo(),
    "imagenet_mobilenet": lambda request: _imagenet(),
    "clip_image_tiny": _clip_image,
    "clip_frames_tiny": _clip_frames,
    "view_front": lambda request: _view(),
    "remote_arithmetic": _remote,
    "reward_model_tiny": _reward_model,
    "process_reward_tiny": _process_reward,
    "judge_tiny": lambda request: Case(_judge(request.getfixturevalue("tiny_lm")), TEXT, QUESTION),
    "lm_verifier_tiny": _lm_verifier_tiny,
    "lm_verifier": lambda request: Case(_lm_verifier(request.getfixturevalue("verifier_gemma")), TEXT, QUESTION),
}
# random models have no preference
RANDOM = ("likelihood_tiny", "clip_image_tiny", "clip_frames_tiny", "reward_model_tiny", "process_reward_tiny",
          "judge_tiny", "lm_verifier_tiny")


@pytest.fixture(params=CASES)
def case(request) -> Case:
    return CASES[request.param](request)


@pytest.fixture(params=[k for k in CASES if k not in RANDOM])
def preferring_case(request) -> Case:
    return CASES[request.param](request)


@pytest.fixture(params=[k for k in CASES if k.startswith("fashion_") or k in ("imagenet_mobilenet", "clip_image_tiny")])
def differentiable_case(request) -> Case:
    return CASES[request.param](request)


def _scorer_classes() -> set[type]:
    """Every concrete Scorer subclass defined in the package."""
    import importlib
    import inspect
    import pkgutil

    import consensus

    found = set()
    for info in pkgutil.walk_packages(consensus.__path__, "consensus."):
        module = importlib.import_module(info.name)
        found |= {c for _, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__ and issubclass(c, Scorer) and not inspect.isabstract(c)}
    return found


def test_every_scorer_class_has_a_contract_case(request):
    covered = {type(CASES[key](request).scorer) for key in CASES}
    missing = sorted(c.__qualname__ for c in _scorer_classes() - covered)
    assert not missing, f"scorer classes without a contract case: {missing}; add one to CASES"


def test_declares_modality_and_differentiability(case):
    scorer = case.scorer
    assert isinstance(scorer, Scorer)
    assert isinstance(type(scorer).modality, str) and isinstance(type(scorer).differentiable, bool)
    assert isinstance(type(scorer).reads_noise_level, bool)
    assert isinstance(scorer.name, str) and scorer.name


def test_returns_one_finite_energy_per_candidate_and_never_mutates(case):
    before = copy.deepcopy(case.candidates)
    energies = case.energy()
    n = len(case.candidates)
    assert isinstance(energies, torch.Tensor) and energies.shape == (n,) and energies.dtype.is_floating_point
    assert torch.isfinite(energies).all()
    same = (torch.equal(before, case.candidates) if isinstance(before, torch.Tensor)
            else pickle.dumps(before) == pickle.dumps(case.candidates))  # deep: predictions hold arrays
    assert same
    assert torch.allclose(energies, case.energy())  # deterministic


def test_scores_in_two_halves_as_in_one_call(case):
    call = case.scorer.submit(case.candidates, case.condition, case.noise_level)
    assert torch.allclose(case.scorer.collect(call, timeout=60), case.energy())


def test_scores_several_items_in_one_call_as_each_alone(case):
    alone = case.energy()
    together = case.scorer.energy_items([case.candidates, case.candidates], [case.condition, case.condition],
                                        [case.noise_level, case.noise_level])
    assert len(together) == 2
    for energies in together:  # a bfloat16 LM pads a larger batch otherwise: close, not equal
        assert energies.shape == alone.shape and torch.allclose(energies, alone, rtol=1e-3, atol=1e-3)


def test_prefers_the_candidate_that_fits(preferring_case):
    case = preferring_case
    energies = case.energy()
    assert energies[0] < energies[1]


def test_differentiable_scorers_give_a_gradient(differentiable_case):
    case = differentiable_case
    assert type(case.scorer).differentiable
    x = case.candidates.clone().requires_grad_(True)
    case.energy(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_arithmetic_verifier_counts_wrong_computations():
    assert check_equations(BAD) == [("3 + 4 = 9", False), ("12 * 9 = 118", False)]
    assert ArithmeticVerifier().energy([GOOD, BAD, "no computation", "2 + 2 = 4, 2 * 3 = 7"], "").tolist() == \
        [0.0, 1.0, 0.5, 0.5]


def test_agreement_counts_other_candidates_with_the_same_answer():
    energies = AnswerAgreement().energy([GOOD, OTHER, BAD, "partial line\n"], "")
    assert energies.tolist() == pytest.approx([-1 / 3, -1 / 3, 0.0, 0.0])


def test_missing_verifier_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_math_verifier.py"):
        TrainedVerifier(tmp_path)
