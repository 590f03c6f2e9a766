"""``consensus serve`` on loopback, called with the official ``openai`` client: completions and chat answer with the
ensemble's pick (the one ``consensus math``'s solver makes for the same seed), streaming sends it, the API key and
every limit are enforced with OpenAI's error bodies, a client that leaves frees its place, a failing scorer is a 500.

The server runs the tiny random GPT-2 (``tiny_math_model``) with the math scorers and a test judge, so a request takes
a fraction of a second."""

import argparse
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from consensus.tasks.math import serve
from consensus.tasks.math.cli import make_solve
from consensus.tasks.math.data import Problem

KEY = "test-key-0123"
JUDGE = "tests.fixtures.my_scorer:MoodyJudge"


def serve_args(model, *flags):
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    return parser.parse_args(["serve", "--model", str(model), "--shots", "0", "--source", "chain_sum", "--n", "3",
                              "--max-tokens", "16", "--limit-n", "6", "--limit-max-tokens", "32",
                              "--limit-prompt-tokens", "40", "--scorer", JUDGE, *flags])


def http(url, body: bytes | None = None, headers=None) -> tuple[int, dict]:
    """A raw request (what the openai client will not send): its status and JSON body."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Served(serve.ServerThread):
    """The server on loopback, and an ``openai`` client of it."""

    def client(self, key=KEY, **options):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **options)


@pytest.fixture(scope="module")
def server(tiny_math_model, monkeypatch_module):
    monkeypatch_module.setenv("CONSENSUS_API_KEY", KEY)
    args = serve_args(tiny_math_model)
    served = Served(serve.app_from_args(args))
    served.args = args
    yield served
    served.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


QUESTION = "Compute 3 + 4."


@pytest.mark.parametrize("method, n", [("solution", 3), ("adaptive", 4)])
def test_a_completion_is_the_ensembles_pick_for_its_seed(server, method, n):
    response = server.client().completions.create(model=server.app.state.model, prompt=QUESTION, max_tokens=16,
                                                  extra_body={"consensus": {"method": method, "n": n, "seed": 5}})
    extension = response.model_extra["consensus"]
    assert response.object == "text_completion" and response.choices[0].finish_reason == "stop"
    assert extension["method"] == method and extension["n"] == n and extension["seed"] == 5
    assert "iterations" not in extension, "the energies come only when asked for"
    assert response.usage.completion_tokens == extension["tokens"] > 0 and response.usage.prompt_tokens > 0
    solve = make_solve(argparse.Namespace(**{**vars(server.args), "method": "solution", "baseline": "none"}))
    [alone] = solve([Problem("alone", QUESTION, "")], method=method, n=n, seed=5, max_new_tokens=16)
    assert response.choices[0].text == alone["text"] and extension["answer"] == alone["flexible"]


def test_chat_answers_the_last_user_message_and_explains_when_asked(server):
    response = server.client().chat.completions.create(
        model=server.app.state.model, max_tokens=16,
        messages=[{"role": "system", "content": "You solve sums."}, {"role": "user", "content": QUESTION}],
        extra_body={"consensus": {"method": "solution", "n": 2, "explain": True}})
    assert response.object == "chat.completion" and response.choices[0].message.role == "assistant"
    iterations = response.model_extra["consensus"]["iterations"]
    assert iterations and all(len(it["candidates"]) == len(it["energies"]["total"]) for it in iterations)
    assert {"ArithmeticVerifier", "MoodyJudge"} <= set(iterations[0]["energies"]["per_scorer"])
    assert response.choices[0].message.content.startswith(iterations[-1]["candidates"][iterations[-1]["survivors"][0]][:20])


def test_streaming_sends_the_chosen_answer(server):
    client = server.client()
    whole = client.completions.create(model=server.app.state.model, prompt=QUESTION, max_tokens=16)
    chunks = list(client.completions.create(model=server.app.state.model, prompt=QUESTION, max_tokens=16, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    chat = list(server.client().chat.completions.create(model=server.app.state.model, stream=True, max_tokens=16,
                                                        messages=[{"role": "user", "content": QUESTION}]))
    assert "".join(c.choices[0].delta.content or "" for c in chat) == whole.choices[0].text


def test_the_api_key_is_refused_unless_right(server):
    with pytest.raises(openai.AuthenticationError) as refused:
        server.client(key="wrong").completions.create(model=server.app.state.model, prompt=QUESTION)
    assert refused.value.body["code"] == "invalid_api_key"
    status, body = http(server.url + "/v1/models")  # no key at all
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert [m.id for m in server.client().models.list()] == [server.app.state.model]
    assert http(server.url + "/health")[1]["status"] == "ok"


@pytest.mark.parametrize(("request_", "param"), [
    ({"prompt": QUESTION, "n": 2}, "n"),
    ({"prompt": QUESTION, "max_tokens": 33}, "max_tokens"),
    ({"prompt": QUESTION, "max_tokens": 0}, "max_tokens"),
    ({"prompt": "Compute " + " + ".join(["1"] * 60) + "."}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": QUESTION, "consensus": {"n": 7}}, "consensus.n"),
    ({"prompt": QUESTION, "consensus": {"beam": 99}}, "consensus.beam"),
    ({"prompt": QUESTION, "consensus": {"method": "magic"}}, "consensus.method"),
    ({"prompt": QUESTION, "consensus": {"budget": 3}}, "consensus.budget"),
    ({"prompt": QUESTION, "consensus": {"explain": "yes"}}, "consensus.explain"),
])
def test_every_limit_is_a_400_naming_its_field(server, request_, param):
    extra = request_.pop("consensus", None)
    with pytest.raises(openai.BadRequestError) as refused:
        server.client().completions.create(model=server.app.state.model, **request_,
                                           **({"extra_body": {"consensus": extra}} if extra else {}))
    assert refused.value.body["param"] == param and refused.value.body["type"] == "invalid_request_error"


def test_a_body_over_the_limit_or_not_json_is_a_400(server):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    status, big = http(server.url + "/v1/completions", b'{"prompt": "' + b"1" * 70_000 + b'"}', headers)
    assert status == 400 and big["error"]["param"] == "body"
    status, bad = http(server.url + "/v1/completions", b"{not json", headers)
    assert status == 400 and bad["error"]["param"] == "body"
    status, model = http(server.url + "/v1/completions", json.dumps({"model": "gpt-9", "prompt": QUESTION}).encode(),
                         headers)
    assert status == 404 and model["error"]["code"] == "model_not_found"


def test_a_failing_scorer_is_a_500_naming_it_and_the_server_goes_on(server):
    with pytest.raises(openai.InternalServerError) as failed:
        server.client().completions.create(model=server.app.state.model, prompt="The judge is down: compute 1 + 1.")
    assert "the judge is down" in failed.value.body["message"] and "MoodyJudge" in failed.value.body["message"]
    assert server.client().completions.create(model=server.app.state.model, prompt=QUESTION).choices[0].text


def test_a_request_that_breaks_a_scorer_fails_alone_not_the_requests_batched_with_it(server):
    outcomes = {}

    def ask(prompt):
        try:
            outcomes[prompt] = server.client().completions.create(model=server.app.state.model, prompt=prompt,
                                                                  extra_body={"consensus": {"seed": 9}})
        except openai.APIStatusError as error:
            outcomes[prompt] = error

    prompts = ["The judge is down: compute 2 + 5.", "Compute 6 + 1.", "Compute 8 - 3."]
    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for thread in threads:  # sent together: one batch (the worker waits 20 ms for company)
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(outcomes[prompts[0]], openai.InternalServerError)
    assert all(outcomes[p].choices[0].text for p in prompts[1:])


def test_a_client_that_leaves_frees_its_place(server):
    """One slow request runs; a second waits behind it; both clients give up: the waiting one is dropped unrun, and
    the server answers the next request."""
    before = http(server.url + "/health")[1]
    slow = server.client(timeout=0.5)

    def leave():
        with pytest.raises(openai.APITimeoutError):
            slow.completions.create(model=server.app.state.model, prompt="Compute 2 + 2, slowly.",
                                    extra_body={"consensus": {"seed": 1}})

    first = threading.Thread(target=leave)
    first.start()
    time.sleep(0.2)
    leave()  # a second slow request (another seed: a batch of its own), behind the first
    first.join()
    deadline = time.monotonic() + 30
    while (health := http(server.url + "/health")[1])["running"] or health["waiting"]:
        assert time.monotonic() < deadline, health
        time.sleep(0.1)
    assert health["dropped"] == before["dropped"] + 1
    assert server.client().completions.create(model=server.app.state.model, prompt=QUESTION).choices[0].text


def test_a_full_queue_is_a_429_and_a_request_out_of_time_a_504(tiny_math_model, monkeypatch):
    monkeypatch.delenv("CONSENSUS_API_KEY", raising=False)  # and a server without a key takes any
    served = Served(serve.app_from_args(serve_args(tiny_math_model, "--queue", "1", "--timeout", "1")))
    try:
        client = served.client(key="anything")
        late = {}

        def slow():
            try:
                client.completions.create(model=served.app.state.model, prompt="Compute 5 + 5, slowly.")
            except openai.APIStatusError as error:
                late["error"] = error

        first = threading.Thread(target=slow)
        first.start()
        time.sleep(0.3)  # the slow one runs: the queue of one is full
        with pytest.raises(openai.RateLimitError) as busy:
            client.completions.create(model=served.app.state.model, prompt=QUESTION)
        assert busy.value.body["code"] == "rate_limit_exceeded"
        first.join()
        assert late["error"].status_code == 504 and "no answer within 1 s" in late["error"].body["message"]
    finally:
        served.stop()
