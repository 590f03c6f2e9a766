"""Generator adapters, one family per folder: text (causal LMs), diffusion (denoisers), planning (world models).

Each family has a small protocol (``protocol.py``) that its engine steps and feedback forms depend on, so a
new backend (vLLM, llama.cpp, another sampler, another simulator) implements the protocol and plugs in.
"""

from consensus.generators.text import CausalLMGenerator, Completion, TextGenerator

__all__ = ["CausalLMGenerator", "Completion", "TextGenerator"]
