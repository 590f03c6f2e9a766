"""The OpenAI-compatible backend against a real server on loopback (llama-cpp-python's own, over the offline Gemma
GGUF), and its error paths against tiny stub servers: a 500, a server too slow, no server, a wrong model name.

llama-cpp-python's server sorts the whole 262k-token vocabulary in Python for every token it returns a
log-probability of (about 0.4 s a token on this machine), so the texts here are a few tokens long."""

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from consensus.generators.text.openai_server import OpenAIGenerator, OpenAIServerError
from consensus.generators.text.protocol import SampledText, TextGenerator

SERVER_PACKAGES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
QUESTION = "Question: What is 2 + 3?\nAnswer:"
COUNTING = "1, 2, 3, 4,"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI server over the Gemma GGUF, started on a free loopback port, killed when this
    module's tests end (idle, it still takes a third of a core, which the rest of the suite would lose)."""
    missing = [p for p in SERVER_PACKAGES if importlib.util.find_spec(p) is None]
    assert not missing, f"llama-cpp-python's server needs {', '.join(missing)}: pip install -e '.[dev]'"
    from consensus.zoo.gemma import gemma_gguf

    port, log = _free_port(), tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                                 "--logits_all", "true", "--n_threads", "2"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-cpp-python's server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    model = json.load(r)["data"][0]["id"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama-cpp-python's server did not answer in 120 s: {log.read_text()[-2000:]}")
                time.sleep(0.25)
        yield url, model
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server_lm(llama_server):
    url, model = llama_server
    lm = OpenAIGenerator(url, model, max_in_flight=4)
    yield lm
    lm.close()


@pytest.fixture(scope="module")
def seeded_draws(server_lm):
    """Two prompts, two rows each, one seeded generator per prompt."""
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    return server_lm.sample([QUESTION, COUNTING], 2, max_new_tokens=4, generator=gens)


def test_sampling_gives_n_rows_per_prompt_with_their_tokens(server_lm, seeded_draws):
    assert isinstance(server_lm, TextGenerator)
    assert server_lm.name == f"{server_lm.model} @ {server_lm.base_url}"
    assert [len(rows) for rows in seeded_draws] == [2, 2]
    for prompt, rows in zip([QUESTION, COUNTING], seeded_draws):
        for c in rows:
            assert c.text and c.ended in {"eos", "stop", "length"} and 1 <= c.tokens <= 4
            if c.ended == "length":
                assert c.tokens == 4
            assert isinstance(c.text, SampledText) and c.text.model is server_lm and c.text.context == prompt
            assert "".join(c.text.token_ids) == c.text and len(c.text.logprobs) == len(c.text.token_ids) <= c.tokens
            assert torch.isfinite(c.text.logprobs).all() and (c.text.logprobs <= 0).all()
    assert server_lm.seconds > 0


def test_a_seed_gives_the_same_texts_and_each_prompt_its_own_generators_draws(server_lm, seeded_draws):
    """The counting prompt alone, with the generator it had, draws what it drew beside the question."""
    [again] = server_lm.sample([COUNTING], 2, max_new_tokens=4, generator=torch.Generator().manual_seed(1))
    assert [c.text for c in again] == [c.text for c in seeded_draws[1]]


def test_stop_strings_cut_the_text_and_the_stop_is_kept_apart(server_lm):
    """Greedy counting reads " 5, 6, 7": the stop " 7" spans two tokens (" ", "7"), the server strips it."""
    [[c]] = server_lm.sample([COUNTING], 1, max_new_tokens=8, temperature=0.0, stop=["\n", " 7"])
    assert c.ended == "stop" and c.text == " 5, 6," and c.with_stop == " 5, 6, 7" and c.tokens == 8
    assert isinstance(c.with_stop, SampledText) and len(c.with_stop.logprobs) == len(c.text.logprobs) + 2


def test_continuation_logprobs_carried_and_scored(server_lm):
    [[c]] = server_lm.sample([QUESTION], 1, max_new_tokens=4, temperature=0.0)
    sent = server_lm.requests
    [carried] = server_lm.continuation_logprobs([QUESTION], [c.text])
    assert server_lm.requests == sent and carried is c.text.logprobs  # no request
    [scored, empty] = server_lm.continuation_logprobs([QUESTION, QUESTION], [str(c.text), ""])
    assert server_lm.requests == sent + 1 and empty.numel() == 0
    assert scored.shape == carried.shape and torch.isfinite(scored).all()
    # Teacher forcing batches the tokens that sampling read one by one: llama.cpp rounds them a little differently.
    torch.testing.assert_close(scored, carried, atol=0.15, rtol=0)


# -- error paths, against stubs -----------------------------------------------------------------------------------


class Stub:
    """A loopback HTTP server answering with ``answer(handler) -> (status, body dict)``; records the requests."""

    def __init__(self, answer):
        self.seen: list[tuple[str, str, dict]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                stub.seen.append((self.command, self.path, dict(self.headers)))
                status, reply = answer(self)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting
                    pass
                del body

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def make(answer):
        made.append(Stub(answer))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_a_500_is_retried_then_named(stub):
    server = stub(lambda h: (500, {"error": {"message": "the GPU caught fire"}}))
    lm = OpenAIGenerator(server.url, "m", api_key="sk-test", retries=2)
    start = time.monotonic()
    with pytest.raises(OpenAIServerError) as e:
        lm.sample(["hi"], 1, max_new_tokens=2)
    assert time.monotonic() - start >= 1.5  # back-off 0.5 s, 1 s
    assert len(server.seen) == 3 and e.value.status == 500
    assert all(headers["Authorization"] == "Bearer sk-test" for _, _, headers in server.seen)
    for part in (server.url, "'m'", "HTTP 500", "the GPU caught fire"):
        assert part in str(e.value)


def test_a_server_too_slow_times_out(stub):
    server = stub(lambda h: (time.sleep(1.5), (200, {}))[1])
    lm = OpenAIGenerator(server.url, "m", timeout=0.2, retries=1)
    with pytest.raises(OpenAIServerError, match=r"did not answer within 0.2 s") as e:
        lm.continuation_logprobs(["a"], ["b"])
    assert len(server.seen) == 2 and server.url in str(e.value)


def test_no_server_names_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"  # closed: nothing listens there
    lm = OpenAIGenerator(url, "m", retries=1)
    with pytest.raises(RuntimeError, match="could not be reached") as e:
        lm.sample(["hi"], 1, max_new_tokens=2)
    assert url in str(e.value) and "is the server running" in str(e.value)


def test_a_wrong_model_name_lists_the_servers_models(stub):
    """llama-cpp-python's server serves any model name asked for, so a stub answers as vLLM does."""
    def answer(h):
        if h.command == "GET":
            return 200, {"object": "list", "data": [{"id": "gemma-3-270m"}, {"id": "qwen"}]}
        return 404, {"object": "error", "message": "The model `gemma-3-27b` does not exist.", "code": 404}

    server = stub(answer)
    lm = OpenAIGenerator(server.url, "gemma-3-27b", retries=3)
    with pytest.raises(OpenAIServerError) as e:
        lm.sample(["hi"], 1, max_new_tokens=2)
    message = str(e.value)
    assert e.value.status == 404 and [m for m, _, _ in server.seen] == ["POST", "GET"]  # not retried
    for part in ("HTTP 404", "does not exist", "model name 'gemma-3-27b' wrong", "gemma-3-270m, qwen"):
        assert part in message


def test_the_math_cli_runs_on_a_served_model_and_records_the_backend(llama_server, tmp_path, capsys):
    from consensus.cli import main

    url, model = llama_server
    main(["math", "--source", "chain_sum", "--size", "1", "--method", "greedy", "--backend", "openai",
          "--base-url", url, "--model", model, "--out", str(tmp_path / "run")])
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["settings"]["generator"] == {"backend": "openai"} and manifest["settings"]["base_url"] == url
    assert f"generator {model} @ {url} (backend openai)" in capsys.readouterr().out
