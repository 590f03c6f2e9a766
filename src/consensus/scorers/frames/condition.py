"""What the video-QA scorers condition on: the frames of one video and the question asked about it."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True, eq=False)
class VideoQuestion:
    """The condition of every video-QA scorer.

    frames: the video's frames, RGB, in time order (at least one).
    question: the question, as asked.

    Compared by identity (``eq=False``), so a scorer may keep the embeddings of the last
    condition it saw and reuse them for the next call with the same object: the decoder asks
    about the same video at every token.
    """

    frames: tuple[Image.Image, ...]
    question: str

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("the question has no frames: give a video, an image folder or at least one image")
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError("the question is empty: ask something about the video")
        if not all(isinstance(f, Image.Image) for f in self.frames):
            raise TypeError("frames must be PIL images; load a video with consensus.tasks.vqa.video.load_frames")
        object.__setattr__(self, "frames", tuple(f.convert("RGB") if f.mode != "RGB" else f for f in self.frames))
