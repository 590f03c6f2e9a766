"""Text generators: the protocol, the causal-LM adapter, and its token-by-token steps for token feedback."""

from consensus.generators.text.causal_lm import CausalLMGenerator
from consensus.generators.text.protocol import Completion, TextGenerator

__all__ = ["CausalLMGenerator", "Completion", "TextGenerator"]
