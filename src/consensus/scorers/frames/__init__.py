"""Frame scorers: how well a text (a question and a partial answer) fits a video's frames."""

from consensus.scorers.frames.condition import VideoQuestion
from consensus.scorers.frames.text_image import ClassifierTextScorer, CLIPFrameScorer, FrameTextScorer, TinyClipScorer

__all__ = ["CLIPFrameScorer", "ClassifierTextScorer", "FrameTextScorer", "TinyClipScorer", "VideoQuestion"]
