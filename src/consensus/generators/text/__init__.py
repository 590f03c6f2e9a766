"""Text generators: the protocol, the causal-LM adapter, its kept prefixes, runs of several items in lockstep, and
its token-by-token steps for token feedback."""

from consensus.generators.text.causal_lm import CausalLMGenerator
from consensus.generators.text.lockstep import consensus_in_lockstep, in_lockstep
from consensus.generators.text.prefix_cache import PrefixCache, forget_kept_prefixes
from consensus.generators.text.protocol import Completion, TextGenerator

__all__ = ["CausalLMGenerator", "Completion", "PrefixCache", "TextGenerator", "consensus_in_lockstep",
           "forget_kept_prefixes", "in_lockstep"]
