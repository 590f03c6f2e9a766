"""Generator adapters: one per model family."""

from consensus.generators.causal_lm import CausalLMGenerator, Completion

__all__ = ["CausalLMGenerator", "Completion"]
