import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing local file must fail fast, not wait on the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained here on a few sentences: no download needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["Question: What is 2 + 3?\nAnswer:\n2 + 3 = 5\n#### 5\n", "The answer is 12.", "hello world"] * 10
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="session")
def tiny_lm(tiny_tokenizer):
    """A randomly initialised 2-layer GPT-2, for the generic causal-LM code paths."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from consensus.generators import CausalLMGenerator

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=256, vocab_size=len(tiny_tokenizer),
                        eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=tiny_tokenizer.pad_token_id)
    # CONSENSUS_TEST_DEVICE=cuda runs the generic generator tests on a GPU when one is lent.
    model = GPT2LMHeadModel(config).to(os.environ.get("CONSENSUS_TEST_DEVICE", "cpu"))
    return CausalLMGenerator(model, tiny_tokenizer, name="tiny-gpt2")


@pytest.fixture(scope="session")
def gemma():
    """The real offline Gemma 3 270M (converted on first use) with the committed GSM adapter, on torch in the dtype
    this CPU computes natively."""
    from consensus.tasks.math.generator import load_math_generator

    return load_math_generator(backend="torch")


@pytest.fixture(scope="session")
def gemma_float32():
    """The same in float32, where two ways of computing one draw round alike, so they must draw the same."""
    from consensus.tasks.math.generator import load_math_generator

    return load_math_generator(dtype="float32", backend="torch")


@pytest.fixture(scope="session")
def llama_gemma():
    """The same GGUF with the GSM adapter converted to a GGUF LoRA, on llama.cpp (the default where it is installed)."""
    from consensus.tasks.math.generator import load_math_generator

    return load_math_generator(backend="llama.cpp")


@pytest.fixture(scope="session")
def verifier_gemma():
    """The LM the LM verifier reads: the math generator with the verifier's LoRA stacked on, on llama.cpp."""
    from consensus.tasks.math.generator import load_verifier_lm

    return load_verifier_lm(backend="llama.cpp")


@pytest.fixture(scope="session")
def base_gemma():
    """The real offline Gemma 3 270M without an adapter: the LM of the video-QA task (torch: it is steered by
    gradients)."""
    from consensus.zoo.gemma import load_gemma

    return load_gemma()


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster, started by the tests (about 5 s), shut down at the end. It declares 4 logical CPUs on
    this 2-core machine so that actors of earlier tests (a cached remote scorer) never starve later ones."""
    import ray

    tests = os.path.dirname(os.path.abspath(__file__))  # so the workers import the test modules' scorers too
    path = os.pathsep.join([tests, os.path.dirname(tests), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_math_model(tiny_tokenizer, tmp_path_factory):
    """A folder holding a tiny random GPT-2 whose 64-token context ends every continuation after about 24 tokens:
    the math command line runs end to end on it in seconds (``--model <folder> --shots 1``)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-math-lm")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64, vocab_size=len(tiny_tokenizer),
                        eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=tiny_tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gemma(tmp_path_factory, tiny_tokenizer):
    """A folder holding a randomly initialised 2-layer Gemma 3 and the tiny tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    path = tmp_path_factory.mktemp("tiny-gemma")
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
                              sliding_window=64, pad_token_id=tiny_tokenizer.pad_token_id,
                              eos_token_id=tiny_tokenizer.eos_token_id)
    Gemma3ForCausalLM(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path
