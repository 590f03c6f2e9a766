"""Small CLIP-style image–text models that the project trains itself, since no CLIP installs offline.

Each model has an image encoder and a text encoder that map into one shared embedding space,
trained contrastively (Radford et al. 2021, eq. of Fig. 3: symmetric cross-entropy over the cosine
similarities scaled by a learned temperature ``exp(logit_scale)``). They are trained by
``scripts/train_vqa_clip.py`` on easy-VQA's training images and annotations; the weights live in
``consensus/zoo/weights/<name>/`` with a model card each.

The three architectures differ on purpose, so that they make different mistakes and an ensemble
of them has something to agree on:

- ``vqa-clip-cnn``: a VGG-style conv net; a word-level bag-of-embeddings text encoder (mean pool
  + MLP). Blind to word order, and a partial word is ``<unk>``.
- ``vqa-clip-gru``: a strided conv net with group norm; a character-level GRU, so partial words
  ("re" on the way to "red") get their own embedding.
- ``vqa-clip-patch``: a tiny ViT over 8×8 patches; a one-layer word-level transformer.

Every model reads RGB images ``[N, 3, 64, 64]`` in [0, 1] and lower-cased texts; see
:func:`normalize_text` for what a text is reduced to.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from consensus.zoo import WEIGHTS_DIR

IMAGE_SIZE = 64
PAD, UNK = 0, 1
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 ?"
_WORD = re.compile(r"[a-z0-9]+|\?")


def normalize_text(text: str) -> str:
    """Lower-case; keep letters, digits and '?'; every other run of characters becomes one space."""
    return " ".join(re.sub(r"[^a-z0-9?]+", " ", text.lower()).replace("?", " ? ").split()).replace(" ?", "?")


class WordTokenizer:
    """Words to ids over a fixed vocabulary (``<pad>`` = 0, ``<unk>`` = 1); '?' is a word of its own."""

    def __init__(self, vocab: Sequence[str], max_length: int = 16):
        self.vocab = list(vocab)
        if self.vocab[:2] != ["<pad>", "<unk>"]:
            raise ValueError("a word vocabulary starts with '<pad>', '<unk>'")
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length

    @classmethod
    def from_texts(cls, texts: Sequence[str], max_length: int = 16) -> WordTokenizer:
        words = sorted({w for t in texts for w in _WORD.findall(normalize_text(t))})
        return cls(["<pad>", "<unk>", *words], max_length)

    def __len__(self) -> int:
        return len(self.vocab)

    def units(self, text: str) -> list[str]:
        """What a text is cut into: its words."""
        return _WORD.findall(normalize_text(text))

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """``[N, L]`` ids, right-padded with 0, cut at ``max_length``; at least one id per text."""
        rows = [[self.index.get(u, UNK) for u in self.units(t)][: self.max_length] or [UNK] for t in texts]
        out = torch.zeros(len(rows), max(map(len, rows), default=1), dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out


class CharTokenizer(WordTokenizer):
    """Characters to ids (``<pad>`` = 0, ``<unk>`` = 1, then :data:`CHARS`)."""

    def __init__(self, vocab: Sequence[str] | None = None, max_length: int = 64):
        super().__init__(vocab or ["<pad>", "<unk>", *CHARS], max_length)

    def units(self, text: str) -> list[str]:
        """What a text is cut into: its characters."""
        return list(normalize_text(text))


def _standardize(x: torch.Tensor) -> torch.Tensor:
    # easy-VQA pixels sit near 1 (a light background); centring helps the first layer.
    return (x - 0.5) / 0.25


class ConvImageEncoder(nn.Module):
    """VGG-style: [conv3×3–BN–ReLU, max-pool] × len(widths), then global mean‖max pool and a linear map."""

    def __init__(self, dim: int, widths: Sequence[int] = (16, 32, 48)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(_standardize(x))
        return self.proj(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1))


class StridedConvEncoder(nn.Module):
    """Strided convolutions (5×5, then 3×3; stride 2) with GroupNorm and GELU, global mean‖max pool, a 2-layer MLP."""

    def __init__(self, dim: int, widths: Sequence[int] = (24, 48, 64, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i, width in enumerate(widths):
            kernel = 5 if i == 0 else 3
            layers += [nn.Conv2d(channels, width, kernel, stride=2, padding=kernel // 2), nn.GroupNorm(4, width),
                       nn.GELU()]  # fmt: skip
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * channels, channels), nn.GELU(), nn.Linear(channels, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(_standardize(x))
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1))


def _transformer(width: int, heads: int, depth: int) -> nn.TransformerEncoder:
    """``depth`` pre-norm transformer layers (GELU, MLP 2× wide, no dropout), batch first."""
    layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)  # fmt: skip
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class PatchImageEncoder(nn.Module):
    """A tiny ViT: non-overlapping patches, learned positions, pre-norm transformer layers, a [CLS] readout."""

    def __init__(self, dim: int, patch: int = 8, width: int = 64, depth: int = 2, heads: int = 4):
        super().__init__()
        self.embed = nn.Conv2d(3, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, 1 + (IMAGE_SIZE // patch) ** 2, width) * 0.02)
        self.blocks = _transformer(width, heads, depth)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(_standardize(x)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.position
        return self.proj(self.norm(self.blocks(tokens)[:, 0]))


class BagOfWordsEncoder(nn.Module):
    """Mean of word embeddings over the non-pad words, then an MLP (order-blind: "not a red" = "a not red")."""

    def __init__(self, vocab_size: int, dim: int, width: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=PAD)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != PAD).unsqueeze(-1).float()
        return self.mlp((self.embed(ids) * mask).sum(1) / mask.sum(1).clamp(min=1))


class CharGRUEncoder(nn.Module):
    """A bidirectional character GRU; max over time of its outputs ‖ its two final states, through a linear map.

    The max-pool lets the characters of the answer, which come last, reach the embedding directly
    rather than only through the final state; partial words ("re") get embeddings of their own.
    """

    def __init__(self, vocab_size: int, dim: int, width: int = 64, embed: int = 24):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.gru = nn.GRU(embed, width, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(4 * width, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != PAD).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.gru(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, padding_value=-torch.inf)
        return self.proj(torch.cat([outputs.amax(1), final[0], final[1]], dim=-1))


class WordTransformerEncoder(nn.Module):
    """Word embeddings + learned positions, pre-norm transformer layers, mean over the non-pad words."""

    def __init__(self, vocab_size: int, dim: int, width: int = 64, depth: int = 1, heads: int = 4,
                 max_length: int = 16):  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=PAD)
        self.position = nn.Parameter(torch.randn(1, max_length, width) * 0.02)
        self.blocks = _transformer(width, heads, depth)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == PAD
        h = self.blocks(self.embed(ids) + self.position[:, : ids.shape[1]], src_key_padding_mask=pad)
        mask = (~pad).unsqueeze(-1).float()
        return self.proj(self.norm((h * mask).sum(1) / mask.sum(1).clamp(min=1)))


IMAGE_ENCODERS = {"conv": ConvImageEncoder, "strided": StridedConvEncoder, "patch": PatchImageEncoder}
TEXT_ENCODERS = {"bow": BagOfWordsEncoder, "chargru": CharGRUEncoder, "wordtransformer": WordTransformerEncoder}

# The architectures of the committed models; ``scripts/train_vqa_clip.py --model NAME`` trains one.
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "vqa-clip-cnn": {"dim": 64, "image": {"kind": "conv", "widths": [16, 32, 48]},
                     "text": {"kind": "bow", "tokenizer": "word", "width": 64}},
    "vqa-clip-gru": {"dim": 64, "image": {"kind": "strided", "widths": [24, 48, 64, 64]},
                     "text": {"kind": "chargru", "tokenizer": "char", "width": 64}},
    "vqa-clip-patch": {"dim": 64, "image": {"kind": "patch", "patch": 8, "width": 64, "depth": 2},
                       "text": {"kind": "wordtransformer", "tokenizer": "word", "width": 64, "depth": 1}},
}  # fmt: skip


class TinyClip(nn.Module):
    """An image encoder, a text encoder with its tokenizer, and the learned temperature of CLIP's loss.

    ``similarity(images, texts) = exp(logit_scale) · cos(f(image), g(text))``; the scorers use the
    unit embeddings of :meth:`encode_image` and :meth:`encode_text` only.
    """

    def __init__(self, config: dict[str, Any], tokenizer: WordTokenizer):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        dim = config["dim"]
        image = dict(config["image"])
        self.image_encoder = IMAGE_ENCODERS[image.pop("kind")](dim, **image)
        text = {k: v for k, v in config["text"].items() if k not in ("kind", "tokenizer")}
        self.text_encoder = TEXT_ENCODERS[config["text"]["kind"]](len(tokenizer), dim, **text)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``[N, dim]`` of images ``[N, 3, 64, 64]`` in [0, 1]."""
        return nn.functional.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit embeddings ``[N, dim]`` of texts."""
        return nn.functional.normalize(self.text_encoder(self.tokenizer(texts).to(self.device)), dim=-1)


def build_model(name: str, training_texts: Sequence[str]) -> TinyClip:
    """A freshly initialised model of a committed architecture; word vocabularies come from ``training_texts``."""
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown tiny CLIP architecture {name!r}; use one of {sorted(MODEL_CONFIGS)}")
    config = json.loads(json.dumps(MODEL_CONFIGS[name]))
    kind = config["text"]["tokenizer"]
    tokenizer = CharTokenizer() if kind == "char" else WordTokenizer.from_texts(training_texts)
    return TinyClip(config, tokenizer)


def save_tiny_clip(clip: TinyClip, directory: str | Path, **metadata: Any) -> None:
    """Write ``config.json`` (architecture, vocabulary, ``metadata``) and float16 ``model.safetensors``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {**clip.config, "vocab": clip.tokenizer.vocab, "max_length": clip.tokenizer.max_length, **metadata}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # float16 on disk keeps the repository small; loading casts back to float32.
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in clip.state_dict().items()}
    save_file(state, directory / "model.safetensors")


def available_models() -> list[str]:
    """Names of the committed tiny CLIP models (directories ``weights/vqa-clip-*`` holding a ``config.json``)."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("vqa-clip-*/config.json"))


def load_tiny_clip(name: str | Path) -> TinyClip:
    """Load a committed model by name (``vqa-clip-cnn``, …) or from a directory; frozen, in eval mode, float32."""
    from safetensors.torch import load_file

    directory = Path(name) if Path(name).is_dir() else WEIGHTS_DIR / str(name)
    if not (directory / "config.json").exists():
        raise ValueError(
            f"unknown tiny CLIP model {str(name)!r}; available: {', '.join(available_models()) or 'none'} "
            f"(train one with: python scripts/train_vqa_clip.py --model NAME --seed 0)"
        )
    config = json.loads((directory / "config.json").read_text())
    if config["text"]["tokenizer"] == "char":
        tokenizer: WordTokenizer = CharTokenizer(config["vocab"], config["max_length"])
    else:
        tokenizer = WordTokenizer(config["vocab"], config["max_length"])
    architecture = {k: config[k] for k in ("dim", "image", "text")}
    model = TinyClip(architecture, tokenizer)
    model.load_state_dict({k: v.float() for k, v in load_file(directory / "model.safetensors").items()})
    return model.eval().requires_grad_(False)
