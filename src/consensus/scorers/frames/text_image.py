"""Image–text scorers on a video's frames: how well does a (partial) answer fit what the frames show?

Every scorer here is a :class:`FrameTextScorer`. A candidate is the answer written so far (a word,
a partial word, a phrase); the text the scorer reads is ``template.format(question=..., answer=...)``,
by default ``"{question} {answer}"`` ("what color is the shape? red"). With unit image embeddings
``v_t`` of the T frames and the unit text embedding ``u_n`` of candidate n,

    E_n = 1 − (1/T) Σ_t cos(v_t, u_n) = mean_t (1 − cos(v_t, u_n))        ∈ [0, 2],

the CLIP energy of ``consensus.scorers.image.clip`` averaged over the frames (ZeroCap's image–text score,
Tewel et al. 2022, with the frames' mean as the video's score, as in the paper's video-QA).

Implementations:

- :class:`CLIPFrameScorer`: any transformers model with ``get_image_features`` and
  ``get_text_features`` (``CLIPModel`` checkpoints such as openai/clip-vit-base-patch32 and
  ViT-L/14, and what ``AutoModel`` loads for AltCLIP, Chinese-CLIP or SigLIP). For users with a hub.
  Multilingual CLIPs that pair a separate text model with a CLIP image tower (M-CLIP,
  sentence-transformers' clip-ViT-B-32-multilingual-v1) are not such a model: subclass
  :class:`FrameTextScorer` and implement its two embedding methods for them.
- :class:`TinyClipScorer`: the small CLIP-style models trained here on easy-VQA
  (``consensus.zoo.tiny_clip``), which run offline.
- :class:`ClassifierTextScorer`: for natural photos, offline: an ImageNet classifier's top classes,
  embedded by a sentence encoder, stand in for a CLIP image embedding.

The decoder asks about the same video at every token, so each scorer keeps the frame embeddings of
the last condition it saw (compared by identity, as :class:`VideoQuestion` is) and the embeddings
of the texts it has scored for that condition.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from consensus.core.scorer import Scorer
from consensus.scorers.frames.condition import VideoQuestion
from consensus.scorers.image.classifier import resize_and_crop
from consensus.scorers.image.clip import CLIP_MEAN, CLIP_STD

DEFAULT_TEMPLATE = "{question} {answer}"


def frames_to_tensor(frames: Sequence[Image.Image]) -> torch.Tensor:
    """RGB PIL frames (all of one size) → float ``[T, 3, H, W]`` in [0, 1]."""
    array = np.stack([np.asarray(f.convert("RGB"), dtype=np.float32) for f in frames])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 255


def _unit(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(x.float(), dim=-1)


class FrameTextScorer(Scorer):
    """Energy ``1 − mean over frames of cos(frame, template(question, answer))`` for text candidates.

    Subclasses give the two embeddings; this class owns the energy, the input checks and the caches.

    Args:
        template: how a candidate becomes the scored text; the fields are ``{question}`` and
            ``{answer}`` (the candidate, stripped of surrounding whitespace).
        name: a unique scorer name (it keys the trace); defaults to the class name.
        max_cached_texts: the text cache is emptied when it grows past this (and at every new condition).
    """

    modality = "text"
    differentiable = False

    def __init__(self, *, template: str = DEFAULT_TEMPLATE, name: str | None = None, max_cached_texts: int = 4096):
        try:
            template.format(question="q", answer="a")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"template {template!r} must use only the fields {{question}} and {{answer}}: {error!r}"
            ) from error
        if "{answer}" not in template:
            raise ValueError(f"template {template!r} must contain {{answer}}, or every candidate scores the same")
        self.template, self._name, self.max_cached_texts = template, name, max_cached_texts
        self._condition: VideoQuestion | None = None
        self._frames: torch.Tensor | None = None
        self._texts: dict[str, torch.Tensor] = {}

    @property
    def name(self) -> str:
        return self._name or super().name

    @property
    @abstractmethod
    def logit_scale(self) -> float:
        """How many logits one unit of cosine is worth to this model: the inverse temperature its
        contrastive training put on cosines (``exp(logit_scale)`` of a CLIP). Over a set of
        candidate texts, ``softmax(logit_scale · cos)`` is the model's own distribution, so
        ``logit_scale · E`` puts different scorers on one calibrated scale."""

    @abstractmethod
    def image_embeddings(self, frames: Sequence[Image.Image]) -> torch.Tensor:
        """Unit embeddings ``[T, D]`` of the frames."""

    @abstractmethod
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit embeddings ``[N, D]`` of the texts, in the image embeddings' space."""

    def texts(self, candidates: Sequence[str], condition: VideoQuestion) -> list[str]:
        """The texts that the candidates are scored as."""
        return [self.template.format(question=condition.question, answer=c.strip()) for c in candidates]

    def frame_embeddings(self, condition: VideoQuestion) -> torch.Tensor:
        """The frames' unit embeddings, computed once per condition object (float32, CPU)."""
        if condition is not self._condition:
            with torch.no_grad():
                frames = _unit(self.image_embeddings(condition.frames)).cpu()
            self._condition, self._frames, self._texts = condition, frames, {}
        assert self._frames is not None
        return self._frames

    def _text_embeddings(self, texts: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if missing:
            if len(self._texts) + len(missing) > self.max_cached_texts:
                self._texts, missing = {}, list(dict.fromkeys(texts))
            with torch.no_grad():
                self._texts.update(zip(missing, _unit(self.text_embeddings(missing)).cpu()))
        return torch.stack([self._texts[t] for t in texts])

    def energy(self, candidates: Sequence[str], condition: VideoQuestion) -> torch.Tensor:
        if not isinstance(condition, VideoQuestion):
            raise TypeError(
                f"{self.name} needs a consensus.scorers.frames.condition.VideoQuestion(frames, question) as the condition, "
                f"got {type(condition).__name__}"
            )
        if isinstance(candidates, str) or not all(isinstance(c, str) for c in candidates):
            raise TypeError(
                f"{self.name} scores a sequence of answer strings, e.g. ['red', 'blue']; got {candidates!r}"
            )
        if len(candidates) == 0:
            return torch.zeros(0)
        frames = self.frame_embeddings(condition)
        texts = self._text_embeddings(self.texts(candidates, condition))
        energy = 1 - (texts @ frames.T).mean(1)
        if not torch.isfinite(energy).all():
            raise FloatingPointError(f"{self.name} produced a non-finite energy for {candidates!r}")
        return energy.float()


class CLIPFrameScorer(FrameTextScorer):
    """A transformers CLIP-like model (``get_image_features`` + ``get_text_features``) on the frames.

    Frames are resized (shorter side) and centre-cropped to the model's image size, then normalised
    with ``image_mean``/``image_std``, as CLIP's image processor does.

    Args:
        model: e.g. a ``CLIPModel``; frozen and put in eval mode here.
        tokenizer: its tokenizer.
        image_mean, image_std: the per-channel normalisation (CLIP's by default).
        image_size: the input side; defaults to ``model.config.vision_config.image_size``.
        device: where the model runs; defaults to where it is.
        batch_size: texts and frames per forward pass.
        template, name, max_cached_texts: see :class:`FrameTextScorer`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        image_size: int | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        template: str = DEFAULT_TEMPLATE,
        name: str | None = None,
        max_cached_texts: int = 4096,
    ):
        super().__init__(template=template, name=name, max_cached_texts=max_cached_texts)
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise TypeError(
                f"{type(model).__name__} has no get_image_features/get_text_features; CLIPFrameScorer needs a "
                "CLIP-like model (CLIPModel, AltCLIPModel, SiglipModel, ...). For other pairings, subclass "
                "FrameTextScorer and implement image_embeddings and text_embeddings"
            )
        self.model = model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)
        self.tokenizer = tokenizer
        self.image_size = image_size or model.config.vision_config.image_size
        self.mean = torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.batch_size = batch_size
        # SigLIP was trained on texts padded to the maximum length; CLIP pools at the end-of-text token.
        self._padding = "max_length" if "siglip" in getattr(model.config, "model_type", "") else True

    @classmethod
    def from_pretrained(cls, name: str, *, device: str | torch.device = "cpu", **kwargs: Any) -> CLIPFrameScorer:
        """Load a model, its tokenizer and its image processor's normalisation by hub name or local path.

        ``kwargs`` go to the constructor (``template``, ``name``, ...); the scorer's name defaults to ``name``.
        """
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        try:
            model = AutoModel.from_pretrained(name)
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as error:
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            raise OSError(
                f"CLIP model {name!r} was not found locally or on the Hugging Face hub"
                + (" (HF_HUB_OFFLINE is set, so the hub was not asked)" if offline else " (is HF_HUB_OFFLINE set?)")
                + "; pass a hub id such as 'openai/clip-vit-base-patch32' or a saved model's folder"
            ) from error
        try:
            processor = AutoImageProcessor.from_pretrained(name)
            kwargs.setdefault("image_mean", processor.image_mean)
            kwargs.setdefault("image_std", processor.image_std)
        except (OSError, ValueError, AttributeError):
            pass  # no processor saved with the model: CLIP's normalisation
        kwargs.setdefault("name", name)
        return cls(model, tokenizer, device=device, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)  # CLIP, AltCLIP, SigLIP keep it as a log
        return float(scale.exp()) if scale is not None else 100.0  # else CLIP's own value

    def image_embeddings(self, frames: Sequence[Image.Image]) -> torch.Tensor:
        out = []
        for k in range(0, len(frames), self.batch_size):
            x = resize_and_crop(frames_to_tensor(frames[k : k + self.batch_size]), self.image_size)
            x = ((x - self.mean) / self.std).to(self.device)
            out.append(_features(self.model.get_image_features(pixel_values=x)).float().cpu())
        return torch.cat(out)

    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for k in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[k : k + self.batch_size]), padding=self._padding, truncation=True,
                                    return_tensors="pt")  # fmt: skip
            out.append(_features(self.model.get_text_features(**tokens.to(self.device))).float().cpu())
        return torch.cat(out)


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output holding the projected embeddings; 4.x returns the tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class TinyClipScorer(FrameTextScorer):
    """One of the small CLIP-style models trained on easy-VQA (``consensus.zoo.tiny_clip``), offline.

    Frames are resized and centre-cropped to 64×64. Build one with :meth:`load`.
    """

    def __init__(self, model: nn.Module, **kwargs: Any):
        super().__init__(**kwargs)
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def load(cls, name: str, **kwargs: Any) -> TinyClipScorer:
        """A committed model by name (``vqa-clip-cnn``, ``vqa-clip-gru``, ``vqa-clip-patch``) or folder.

        ``kwargs`` go to the constructor (``template``, ``max_cached_texts``); the scorer's name defaults to ``name``.
        """
        from consensus.zoo.tiny_clip import load_tiny_clip

        kwargs.setdefault("name", os.path.basename(os.path.normpath(str(name))))
        return cls(load_tiny_clip(name), **kwargs)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    def image_embeddings(self, frames: Sequence[Image.Image]) -> torch.Tensor:
        from consensus.zoo.tiny_clip import IMAGE_SIZE

        x = resize_and_crop(frames_to_tensor(frames), IMAGE_SIZE)
        return self.model.encode_image(x.to(self.model.device))

    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(list(texts))


class ClassifierTextScorer(FrameTextScorer):
    """An ImageNet classifier and a sentence encoder composed into an image–text scorer, offline.

    The classifier gives each frame class probabilities ``p``; over its ``top_k`` classes, renormalised,
    the frame's "image embedding" is the unit-length probability-weighted mean of the sentence
    embeddings ``e_c`` of the class names (all of a class's WordNet synonyms, "tabby, tabby cat"):

        v_t = normalize( Σ_{c ∈ top-k} p_c e_c / Σ_{c ∈ top-k} p_c ),

    and the energy is the base class's ``1 − mean_t cos(v_t, e(text))``. The default template is
    ``"{answer}"``: the question's words pull every candidate towards the question and away from
    the class names. Measured with MobileNetV2 on skimage's photos, the energy margin of the right
    answer over a wrong one is 1.1–2.6× larger with ``"{answer}"`` than with ``"{question} {answer}"``
    (chelsea, "what animal is this?": cat vs car 0.51 against 0.29, cat vs dog 0.35 against 0.24;
    coffee, "what is in the cup?": coffee vs rocket 0.29 against 0.11), and "a photo of a {answer}"
    is no better. It knows only what ImageNet's 1,000 classes name: on skimage's astronaut,
    MobileNetV2's top class is "bobsled".

    Args:
        classifier: ``"mobilenet_v2"`` or ``"efficientnet-lite0"``/``1``/``2`` (offline ImageNet weights),
            or a ``consensus.scorers.image.classifier.ClassifierScorer`` over any ImageNet classifier.
        encoder: ``encoder(texts) -> [N, D]`` unit embeddings; defaults to all-MiniLM-L6-v2 (offline).
        top_k: how many classes make a frame's embedding.
        template, name, max_cached_texts: see :class:`FrameTextScorer`.
    """

    def __init__(
        self,
        classifier: Any = "mobilenet_v2",
        encoder: Any = None,
        *,
        top_k: int = 5,
        template: str = "{answer}",
        name: str | None = None,
        max_cached_texts: int = 4096,
    ):
        from consensus.scorers.image.imagenet import imagenet_class_names, imagenet_scorer

        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.classifier = imagenet_scorer(classifier) if isinstance(classifier, str) else classifier
        super().__init__(template=template, name=name or f"{self.classifier.name}+minilm",
                         max_cached_texts=max_cached_texts)  # fmt: skip
        if encoder is None:
            from consensus.scorers.text.verifier import SolutionEncoder  # the offline all-MiniLM-L6-v2, unit embeddings

            encoder = SolutionEncoder()
        self.encoder, self.top_k = encoder, top_k
        names, aliases = imagenet_class_names()
        synonyms = [[n] for n in names]
        for alias, index in aliases.items():
            synonyms[index].append(alias)
        self.class_texts = [", ".join(s) for s in synonyms]
        self._class_embeddings: dict[int, torch.Tensor] = {}

    def class_embeddings(self, indices: Sequence[int]) -> torch.Tensor:
        """Sentence embeddings ``[K, D]`` of the named classes (each encoded once, on first use)."""
        missing = sorted({i for i in indices if i not in self._class_embeddings})
        if missing:
            self._class_embeddings.update(zip(missing, _unit(self.encoder([self.class_texts[i] for i in missing]))))
        return torch.stack([self._class_embeddings[i] for i in indices])

    @property
    def logit_scale(self) -> float:
        # Nothing was trained here to calibrate against. Right and wrong answers differ by about
        # 0.1-0.5 in cosine on skimage's photos (above); 20 makes that 2-10 logits, the spread a
        # CLIP's 100 x cosine gaps of 0.02-0.1 give.
        return 20.0

    def image_embeddings(self, frames: Sequence[Image.Image]) -> torch.Tensor:
        probs = self.classifier.log_probs(frames_to_tensor(frames)).exp()
        top, indices = probs.topk(self.top_k, dim=-1)
        weights = top / top.sum(-1, keepdim=True)
        embedded = self.class_embeddings(indices.flatten().tolist()).view(*indices.shape, -1)
        return _unit((weights.unsqueeze(-1) * embedded).sum(1))

    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encoder(list(texts))
