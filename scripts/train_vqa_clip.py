"""Train one of the small CLIP-style models of consensus.zoo.tiny_clip on easy-VQA's training images.

Data (easy-VQA 1.0 TRAIN split only; 400 of its 4,000 images are held out for validation and
early stopping, the same 400 for every model):
  * texts "{question} {answer}" from every training annotation of an image;
  * plain captions ("a red circle", "a circle", "red shape", "the shape is red", ...) built from
    the image's shape and colour, which are read off its annotations: the (shape, colour) pairs
    that answer all of its questions right (:func:`answer_for` reproduces every easy-VQA answer).

Loss: CLIP's symmetric InfoNCE with several positives (an image in the batch may fit a text drawn
for another image: two red circles; "is there a red shape? no" fits most images), over the batch's
texts plus K = 3 hard negatives per image: the same question with wrong answers, two of the same
kind as the right one (colour for colour, shape for shape, the other of yes/no) and one of any kind
(NegCLIP, Yuksekgonul et al. 2023); a caption's negatives swap its colour or shape. A second term
is the answer choice itself, each image against its own text and that text's K negatives, which
is what the scorer is asked at test time:

    L_i→t = −log Σ_{j ∈ P(i)} softmax_j(s · cos(I_i, T_j)),   L_t→i likewise over images,
    L_choice = −log softmax_0(s · cos(I_i, [T_i, T_i^-1, ..., T_i^-K])),
    L = (mean L_i→t + mean L_t→i) / 2 + mean L_choice,  s = exp(logit_scale) ≤ 100.

Augmentation, as the video clips of the experiment are made: a random integer shift of up to
±4 px (the uncovered border filled with the image's background colour) and Gaussian pixel noise
of standard deviation 8/255. Test metrics use the same augmentation with a fixed seed.

    python scripts/train_vqa_clip.py --model vqa-clip-cnn --seed 0
    python scripts/train_vqa_clip.py --model vqa-clip-cnn --evaluate   # re-measure the saved weights

Runs on one CPU thread; writes model.safetensors, config.json, training_log.json and MODEL_CARD.md to
consensus/zoo/weights/<model>/. The card's numbers are measured on the float16 weights as stored.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from consensus.tasks.vqa.data import EASY_VQA_COLORS as COLORS
from consensus.zoo.tiny_clip import (
    MODEL_CONFIGS,
    WEIGHTS_DIR,
    TinyClip,
    build_model,
    load_tiny_clip,
    save_tiny_clip,
)

SHAPES = ("circle", "rectangle", "triangle")
PAIRS = [(s, c) for s in SHAPES for c in COLORS]  # the 24 kinds of easy-VQA image
ANSWERS = (*SHAPES, *COLORS, "yes", "no")
SHIFT, NOISE = 4, 8 / 255
VALIDATION_IMAGES, SPLIT_SEED = 400, 1234
CAPTIONS_BOTH = ("a {c} {s}", "{c} {s}", "a {c} {s} in the image", "the shape is a {c} {s}")
CAPTIONS_SHAPE = ("a {s}", "{s}", "the shape is a {s}")
CAPTIONS_COLOR = ("{c} shape", "a {c} shape", "the shape is {c}", "{c}")
DESCRIPTIONS = {
    "vqa-clip-cnn": "image: a VGG-style conv net (3 × [conv 3×3, BN, ReLU, max-pool], global mean‖max pool); "
                    "text: word-level bag of embeddings (mean pool + MLP), blind to word order.",
    "vqa-clip-gru": "image: strided conv net (5×5 then 3 × 3×3, stride 2, GroupNorm, GELU, global mean‖max pool, MLP); "
                    "text: character-level bidirectional GRU (max over time ‖ final states), so partial words "
                    "have embeddings of their own.",
    "vqa-clip-patch": "image: a tiny ViT (8×8 patches, 2 pre-norm transformer layers of width 64, [CLS] readout); "
                      "text: a one-layer word-level transformer, mean-pooled.",
}  # fmt: skip
TEXT_LIMITS = {
    "word": "every other word is `<unk>`, and so is a partial word (\"re\" on the way to \"red\").",
    "char": "it reads any text character by character, partial words included, but other words were never "
            "seen in training.",
}  # fmt: skip
# The default steps per model: at most about 4 minutes of one CPU thread, and deliberately short for
# the CNN and the ViT: the video-QA ensemble needs imperfect scorers that fail on different questions.
LONG_RUNS = {"vqa-clip-cnn": "with 500 steps this model reached 99.6% test answer accuracy",
             "vqa-clip-patch": "with 900 steps this model reached 99.2% test answer accuracy",
             "vqa-clip-gru": "its GRU makes it the slowest: about 0.7 s a step on one thread"}  # fmt: skip
DEFAULT_STEPS = {"vqa-clip-cnn": 250, "vqa-clip-gru": 320, "vqa-clip-patch": 300}


def answer_for(question: str, shape: str, color: str) -> str | None:
    """easy-VQA's answer to ``question`` about a ``color`` ``shape``; None when the question's premise fails."""
    words = question.lower().replace("?", " ").split()
    q_color = next((w for w in words if w in COLORS), None)
    q_shape = next((w for w in words if w in SHAPES), None)
    if question.startswith(("what color", "what is the color")):
        return color if q_shape in (None, shape) else None
    if question.startswith("what shape"):
        return shape
    if question.startswith("what is the"):  # "what is the blue shape?"
        return shape if q_color == color else None
    negated = "not" in words or "no" in words
    present = (q_color is None or q_color == color) and (q_shape is None or q_shape == shape)
    return "yes" if present != negated else "no"


def kind_of(answer: str) -> tuple[str, ...]:
    return SHAPES if answer in SHAPES else COLORS if answer in COLORS else ("yes", "no")


def load_split(split: str) -> tuple[torch.Tensor, list[int], dict[int, list[tuple[str, str]]]]:
    """Images ``[N, 3, 64, 64]`` uint8, their easy-VQA ids, and each id's (question, answer) list."""
    import easy_vqa

    questions, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    ids = sorted(paths)
    images = np.stack([np.asarray(Image.open(paths[i]).convert("RGB")) for i in ids])
    qa: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for q, a, i in zip(questions, answers, image_ids):
        qa[i].append((q, a))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), ids, qa


def validation_split(images: int) -> tuple[list[int], list[int]]:
    """Rows of the training images held out for validation (the same for every model), and the rest."""
    order = list(range(images))
    random.Random(SPLIT_SEED).shuffle(order)
    return sorted(order[:VALIDATION_IMAGES]), sorted(order[VALIDATION_IMAGES:])


def possible_pairs(qa: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (shape, colour) pairs consistent with all of an image's annotations (one for 89% of images)."""
    return [(s, c) for s, c in PAIRS if all(answer_for(q, s, c) == a for q, a in qa)]


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ±SHIFT px (background-filled) and add N(0, NOISE²) noise; uint8 in, float out."""
    n = len(images)
    x = images.float() / 255
    background = x[:, :, 0, 0]  # easy-VQA backgrounds are flat; the corner never holds the shape
    canvas = background[:, :, None, None].expand(n, 3, 64 + 2 * SHIFT, 64 + 2 * SHIFT).clone()
    offsets = torch.randint(0, 2 * SHIFT + 1, (n, 2), generator=generator)
    for k, (dy, dx) in enumerate(offsets.tolist()):
        canvas[k, :, dy : dy + 64, dx : dx + 64] = x[k]
    shifted = canvas[:, :, SHIFT : SHIFT + 64, SHIFT : SHIFT + 64]
    return (shifted + NOISE * torch.randn(shifted.shape, generator=generator)).clamp(0, 1)


class TextBank:
    """Texts with the set of image kinds each fits, as a 24-bit mask (cached per text)."""

    def __init__(self):
        self._fits: dict[str, torch.Tensor] = {}

    def qa(self, question: str, answer: str) -> str:
        text = f"{question} {answer}"
        if text not in self._fits:
            self._fits[text] = torch.tensor([answer_for(question, s, c) == answer for s, c in PAIRS])
        return text

    def caption(self, template: str, shape: str | None, color: str | None) -> str:
        text = template.format(s=shape, c=color)
        if text not in self._fits:
            self._fits[text] = torch.tensor([(shape is None or s == shape) and (color is None or c == color)
                                             for s, c in PAIRS])  # fmt: skip
        return text

    def fits(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self._fits[t] for t in texts]).float()


def draw_texts(
    qa, pairs, bank: TextBank, rng: random.Random, negatives: int = 3, caption_share: float = 0.3
) -> tuple[str, list[str]]:
    """One positive text for an image and ``negatives`` hard negatives: the same question (or caption
    template) with wrong answers, of the same kind as the right one where possible, the last of any kind."""
    shapes, colors = {s for s, _ in pairs}, {c for _, c in pairs}
    shape = next(iter(shapes)) if len(shapes) == 1 else None
    color = next(iter(colors)) if len(colors) == 1 else None
    if rng.random() < caption_share and (shape or color):
        options = ([(t, shape, color) for t in CAPTIONS_BOTH] if shape and color else []) + \
                  ([(t, shape, None) for t in CAPTIONS_SHAPE] if shape else []) + \
                  ([(t, None, color) for t in CAPTIONS_COLOR] if color else [])  # fmt: skip
        template, s, c = rng.choice(options)
        wrong = []
        for _ in range(negatives):
            if s and (c is None or rng.random() < 0.5):
                wrong.append(bank.caption(template, rng.choice([x for x in SHAPES if x != s]), c))
            else:
                wrong.append(bank.caption(template, s, rng.choice([x for x in COLORS if x != c])))
        return bank.caption(template, s, c), wrong
    question, answer = rng.choice(qa)
    same = [a for a in kind_of(answer) if a != answer]
    wrong = rng.sample(same, min(negatives - 1, len(same)))
    wrong += rng.sample([a for a in ANSWERS if a != answer and a not in wrong], negatives - len(wrong))
    return bank.qa(question, answer), [bank.qa(question, a) for a in wrong]


def multi_positive_nce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows with a positive of −log Σ_{j positive} softmax(logits)_j."""
    keep = positive.any(1)
    logits, positive = logits[keep], positive[keep]
    return (logits.logsumexp(1) - logits.masked_fill(~positive, -torch.inf).logsumexp(1)).mean()


@torch.no_grad()
def answer_accuracy(model: TinyClip, images: torch.Tensor, items: list[tuple[int, str, str]]) -> dict[str, float]:
    """Pick, for each (image index, question, gold), the answer whose "{question} {answer}" fits the image best.

    ``all``/``color``/``shape``/``yes/no``: picked among all 13 answers (what the card reports first);
    ``within_kind``: picked among the answers of the gold's kind only (3 shapes, 8 colours, yes/no), which
    is closer to the experiment, where the language model proposes answers that fit the question.
    """
    model.eval()
    image_emb = torch.cat([model.encode_image(images[k : k + 256]) for k in range(0, len(images), 256)])
    questions = sorted({q for _, q, _ in items})
    texts = [f"{q} {a}" for q in questions for a in ANSWERS]
    text_emb = torch.cat([model.encode_text(texts[k : k + 512]) for k in range(0, len(texts), 512)])
    text_emb = text_emb.view(len(questions), len(ANSWERS), -1)
    row = {q: k for k, q in enumerate(questions)}
    correct: dict[str, list[bool]] = defaultdict(list)
    for index, question, gold in items:
        scores = text_emb[row[question]] @ image_emb[index]
        pick = ANSWERS[int(scores.argmax())]
        kind = "shape" if gold in SHAPES else "color" if gold in COLORS else "yes/no"
        correct[kind].append(pick == gold)
        correct["all"].append(pick == gold)
        same_kind = [j for j, a in enumerate(ANSWERS) if a in kind_of(gold)]
        correct["within_kind"].append(ANSWERS[same_kind[int(scores[same_kind].argmax())]] == gold)
    model.train()
    return {k: float(np.mean(v)) for k, v in correct.items()} | {"n": len(items)}


@torch.no_grad()
def caption_retrieval(model: TinyClip, images: torch.Tensor, pairs: list[tuple[str, str] | None]) -> float:
    """Image→text top-1 accuracy among the 24 captions "a {colour} {shape}" (images of known kind only)."""
    model.eval()
    known = [k for k, p in enumerate(pairs) if p is not None]
    text_emb = model.encode_text([f"a {c} {s}" for s, c in PAIRS])
    image_emb = model.encode_image(images[known])
    picks = (image_emb @ text_emb.T).argmax(1)
    model.train()
    return float(np.mean([PAIRS[int(p)] == pairs[k] for p, k in zip(picks, known)]))


def qa_items(ids: list[int], qa: dict[int, list[tuple[str, str]]], rows: list[int]) -> list[tuple[int, str, str]]:
    return [(n, q, a) for n, k in enumerate(rows) for q, a in qa[ids[k]]]


def model_card(name: str, args: argparse.Namespace, record: dict, n_params: int, size: int) -> str:
    config = MODEL_CONFIGS[name]
    test, val = record["test"], record["validation"]
    return f"""# {name}

- **Role**: a CLIP-style image–text scorer for the video-QA experiment (`TinyClipScorer.load("{name}")`
  in `consensus.scorers.frames.text_image`); energy `1 − mean over frames of cos(image, "{{question}} {{answer}}")`.
- **Architecture** (`consensus.zoo.tiny_clip`, {n_params:,} parameters, {size / 1e6:.2f} MB float16):
  {DESCRIPTIONS[name]} Shared embedding of {config["dim"]} dimensions, learned temperature
  (final `exp(logit_scale)` = {record["temperature"]:.1f}). Config: image `{json.dumps(config["image"])}`,
  text `{json.dumps(config["text"])}`.
  Input: RGB `[N, 3, 64, 64]` in [0, 1]; texts lower-cased to letters, digits and '?'.
- **Training data**: easy-VQA 1.0 (PyPI `easy-vqa==1.0`, MIT) TRAIN split only: 3,600 of its 4,000
  images (400, fixed by seed {SPLIT_SEED}, held out for validation), with the texts "{{question}} {{answer}}"
  of their annotations and captions built from each image's shape and colour as read off its
  annotations ("a red circle", "a circle", "red shape", "the shape is red", ...).
- **Training**: `python scripts/train_vqa_clip.py --model {name} --seed {args.seed}`: symmetric multi-positive
  InfoNCE over batches of {record["batch"]} images and their texts, with {record["negatives"]} hard negative texts per image
  (the same question with wrong answers, two of the right answer's kind) plus the answer-choice
  cross-entropy over each image's text and its negatives; AdamW lr {record["lr"]}, weight decay 0.05,
  cosine schedule, {record["steps"]} steps; kept the validation-best checkpoint (step {record["best_step"]}).
  The step budget is deliberately short ({LONG_RUNS.get(name, "longer runs approach 100%")}): the
  video-QA ensemble wants imperfect scorers that fail on different questions.
  Augmentation: random shift up to ±{SHIFT} px filled with the background colour, Gaussian noise sd 8/255.
  {record["cpu_minutes"]:.1f} CPU minutes on one thread ({record["wall_minutes"]:.1f} min wall).
- **Validation** (the 400 held-out train images, {val["n"]} questions, augmented, seed 0):
  answer accuracy {100 * val["all"]:.1f}%.
- **Test** (easy-VQA TEST split, 1,000 images never seen in training, augmented the same way with seed 0):
  - answer accuracy when picking among the 13 answers with "{{question}} {{answer}}": **{100 * test["all"]:.1f}%**
    of {test["n"]:,} questions (colour questions {100 * test["color"]:.1f}%, shape {100 * test["shape"]:.1f}%,
    yes/no {100 * test["yes/no"]:.1f}%);
  - picking only among the answers of the right kind (3 shapes, 8 colours, yes/no), as when the
    language model proposes answers that fit the question: {100 * test["within_kind"]:.1f}%;
  - image→text retrieval, top-1 among the 24 captions "a {{colour}} {{shape}}": {100 * record["test_retrieval"]:.1f}%
    ({record["test_retrieval_n"]} test images whose kind the annotations fix).
- **Limits**: trained on flat synthetic shapes only, on easy-VQA's 107 questions, 13 answers and the
  caption templates above; {TEXT_LIMITS[config["text"]["tokenizer"]]} Not a general CLIP.
- **Storage**: float16 safetensors, loaded as float32. Released with the project (Apache-2.0).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: per model, about 4 CPU minutes")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--negatives", type=int, default=3, help="hard negative texts per image")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--max-minutes", type=float, default=8.0, help="stop early past this wall time")
    parser.add_argument("--out", type=Path, default=None, help="default: consensus/zoo/weights/<model>")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="only re-measure the saved weights, rewrite the card")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.evaluate:
        evaluate_committed(args)
        return
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    steps = args.steps or DEFAULT_STEPS[args.model]
    out = args.out or WEIGHTS_DIR / args.model
    start_wall, start_cpu = time.time(), time.process_time()

    images, ids, qa = load_split("train")
    val_rows, train_rows = validation_split(len(ids))
    pairs = {k: possible_pairs(qa[ids[k]]) for k in range(len(ids))}
    pair_masks = torch.stack([torch.tensor([p in pairs[k] for p in PAIRS]) for k in range(len(ids))]).float()
    val_images = augment(images[val_rows], torch.Generator().manual_seed(0))
    val_items = qa_items(ids, qa, val_rows)

    vocabulary = [f"{q} {a}" for k in train_rows for q, _ in qa[ids[k]] for a in ANSWERS]
    vocabulary += [t.format(s=s, c=c) for t in CAPTIONS_BOTH + CAPTIONS_SHAPE + CAPTIONS_COLOR for s, c in PAIRS]
    model = build_model(args.model, vocabulary)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "position" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "position" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0}],
                                  lr=args.lr)  # fmt: skip
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: min(1, (t + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps))
    )
    generator = torch.Generator().manual_seed(args.seed)
    bank = TextBank()
    best, best_step, best_state, history = -1.0, 0, None, []
    model.train()
    for step in range(1, steps + 1):
        batch = [train_rows[k] for k in torch.randint(len(train_rows), (args.batch,), generator=generator).tolist()]
        drawn = [draw_texts(qa[ids[k]], pairs[k], bank, rng, args.negatives) for k in batch]
        texts = [p for p, _ in drawn] + [n for _, negatives in drawn for n in negatives]
        x = augment(images[batch], generator)
        logits = model.logit_scale.exp() * model.encode_image(x) @ model.encode_text(texts).T
        positive = (pair_masks[batch] @ bank.fits(texts).T) > 0  # image i may fit text j: [B, B(1 + K)]
        contrastive = (multi_positive_nce(logits, positive) + multi_positive_nce(logits.T, positive.T)) / 2
        # The answer choice: image i against its own text and that text's K wrong answers.
        b, k = len(batch), args.negatives
        own = torch.cat([torch.arange(b)[:, None], b + torch.arange(b * k).view(b, k)], dim=1)
        choice = multi_positive_nce(logits.gather(1, own), positive.gather(1, own))
        loss = contrastive + choice
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % args.eval_every == 0 or step == steps:
            accuracy = answer_accuracy(model, val_images, val_items)["all"]
            minutes = (time.time() - start_wall) / 60
            history.append({"step": step, "loss": round(loss.item(), 4), "val_accuracy": round(accuracy, 4)})
            print(f"step {step} loss {loss.item():.3f} val answer accuracy {accuracy:.3f} ({minutes:.1f} min)",
                  flush=True)  # fmt: skip
            if accuracy > best:
                best, best_step, best_state = accuracy, step, copy.deepcopy(model.state_dict())
            if minutes > args.max_minutes:
                print(f"stopping early: past --max-minutes {args.max_minutes}", flush=True)
                break
    model.load_state_dict(best_state)
    record = {"model": args.model, "seed": args.seed, "steps": step, "best_step": best_step, "history": history,
              "cpu_minutes": (time.process_time() - start_cpu) / 60, "wall_minutes": (time.time() - start_wall) / 60,
              "batch": args.batch, "lr": args.lr, "negatives": args.negatives}  # fmt: skip
    save_tiny_clip(model, out, model=args.model, seed=args.seed, steps=step, best_step=best_step)
    stored = load_tiny_clip(out)  # measure what ships: the float16 weights
    record["validation"] = answer_accuracy(stored, val_images, val_items)
    report(stored, out, args, record)


def report(model: TinyClip, out: Path, args: argparse.Namespace, record: dict) -> None:
    """Measure on the augmented easy-VQA TEST split; write training_log.json and MODEL_CARD.md."""
    test_images, test_ids, test_qa = load_split("test")
    test_x = augment(test_images, torch.Generator().manual_seed(0))
    test_pairs = [p[0] if len(p := possible_pairs(test_qa[i])) == 1 else None for i in test_ids]
    record |= {
        "temperature": model.logit_scale.exp().item(),
        "test": answer_accuracy(model, test_x, qa_items(test_ids, test_qa, list(range(len(test_ids))))),
        "test_retrieval": caption_retrieval(model, test_x, test_pairs),
        "test_retrieval_n": sum(p is not None for p in test_pairs),
    }
    n_params = sum(p.numel() for p in model.parameters())
    size = (out / "model.safetensors").stat().st_size
    (out / "MODEL_CARD.md").write_text(model_card(args.model, args, record, n_params, size))
    (out / "training_log.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2))


def evaluate_committed(args: argparse.Namespace) -> None:
    """Re-measure saved weights (validation and test) and rewrite the card; the training record is kept."""
    out = args.out or WEIGHTS_DIR / args.model
    model = load_tiny_clip(out)
    record = json.loads((out / "training_log.json").read_text())
    images, ids, qa = load_split("train")
    val_rows, _ = validation_split(len(ids))
    val_images = augment(images[val_rows], torch.Generator().manual_seed(0))
    record["validation"] = answer_accuracy(model, val_images, qa_items(ids, qa, val_rows))
    args.seed = record["seed"]
    for key in ("batch", "lr", "negatives"):  # records written before these were kept used the defaults
        record.setdefault(key, getattr(args, key))
    report(model, out, args, record)


if __name__ == "__main__":
    main()
