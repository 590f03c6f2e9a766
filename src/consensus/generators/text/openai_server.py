"""Text generator over any server that speaks OpenAI's completions API: vLLM, SGLang, llama.cpp's server,
llama-cpp-python's server (``python -m llama_cpp.server``), or OpenAI itself.

Only the standard library talks to the server (``urllib.request``), through a pool of at most ``max_in_flight``
threads. Every row is a request of its own (``n=1``): servers that ignore ``n`` (llama-cpp-python's) give the
rows asked for all the same, and each row carries its own seed. The seeds are drawn from the caller's
``torch.Generator`` in a fixed order (prompt by prompt, row by row; with one generator per prompt, each prompt's
seeds come from its own generator, as in a call of its own), so a seed gives the same requests run after run; the
draws themselves are the server's, so a seed reproduces a run on the same server and model, not the torch or
llama.cpp backends' draws.

Log-probabilities. The completions ask for ``logprobs=1``; a text then comes back as a ``SampledText`` carrying the
log-probability of each of its tokens. OpenAI servers return no token ids, only each token's text, so here
``SampledText.token_ids`` holds the tokens' texts (a tuple of ``str`` whose concatenation is the text): only this
generator reads them (``_carried`` checks that the text is theirs, sampled by this generator from that prompt), and
``protocol.join`` concatenates them as it does ids. ``continuation_logprobs`` scores the others by teacher forcing:
it sends prompt + continuation with ``echo`` and reads the log-probabilities of the echoed tokens that begin at or
after the end of the prompt (a token that straddles the prompt's end is the prompt's). It asks for one new token
(``max_tokens=1``), whose log-probability it drops: llama-cpp-python's server reads ``max_tokens=0`` as "no limit".
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from consensus.generators.text.decoding import Generators, check_sample_args, first_stop
from consensus.generators.text.protocol import Completion, SampledText

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class OpenAIServerError(RuntimeError):
    """A request the server refused or never answered. ``status`` is the HTTP status (None when no answer came)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class OpenAIGenerator:
    """A ``TextGenerator`` over an OpenAI-compatible completions endpoint at ``base_url`` (``http://host:port/v1``).

    ``api_key`` (default: the ``OPENAI_API_KEY`` environment variable) goes as a bearer token. A request that times
    out (``timeout`` seconds), finds no server, or gets HTTP 429 or 5xx is tried again after 0.5 s, 1 s, 2 s, ...,
    ``retries`` times, then raises an ``OpenAIServerError`` that names the server, the model, the status and the
    server's own words. The server's model decides the context length and the end-of-sequence tokens, so
    ``context`` is None and ``eos_ids`` empty.
    """

    backend = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, max_in_flight: int = 8, name: str | None = None):
        if max_in_flight < 1 or retries < 0 or timeout <= 0:
            raise ValueError(f"need max_in_flight >= 1, retries >= 0, timeout > 0; got {max_in_flight}, {retries}, "
                             f"{timeout}")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.retries, self.max_in_flight = timeout, retries, max_in_flight
        self.name = name or f"{model} @ {self.base_url}"
        self.seconds = 0.0  # wall time spent inside this generator, for overhead accounting
        self.eos_ids: set[int] = set()
        self.context = None
        self.requests = 0  # HTTP requests sent, retries included
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIGenerator({self.base_url!r}, {self.model!r})"

    def close(self) -> None:
        """Stop the request threads (a later call starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)

    def _map(self, fn, items):
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="openai-generator")
            pool = self._pool
        return list(pool.map(fn, items))

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"the server at {self.base_url} (model {self.model!r})"

    def _send(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        """One request: its status and body; raises ``urllib.error.HTTPError``, ``URLError`` or ``TimeoutError``."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        with self._lock:
            self.requests += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return response.status, response.read()

    def _request(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``path`` and return the JSON answer, retrying what a retry may mend."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                _, raw = self._send("POST", path, body)
            except urllib.error.HTTPError as e:
                text = _error_text(e)
                if e.code == 404 or _says_no_such_model(text):
                    raise OpenAIServerError(self._wrong_model(e.code, text), e.code) from None
                if e.code not in RETRIED_STATUSES or last:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise OpenAIServerError(f"{self._where()} answered {path} with HTTP {e.code}{tries}: {text}",
                                            e.code) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if last:
                    reason = getattr(e, "reason", e)
                    what = (f"did not answer within {self.timeout:g} s" if isinstance(reason, TimeoutError)
                            else f"could not be reached ({reason}): is the server running?")
                    raise OpenAIServerError(f"{self._where()} {what} (POST {self.base_url}{path}, "
                                            f"{attempt + 1} attempts)") from None
            else:
                try:
                    return json.loads(raw)
                except ValueError:
                    raise OpenAIServerError(f"{self._where()} answered {path} with no JSON: {raw[:300]!r}") from None
            time.sleep(0.5 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _wrong_model(self, status: int, text: str) -> str:
        message = f"{self._where()} answered HTTP {status}: {text}. Is the model name {self.model!r} wrong?"
        try:
            models = self.models()
        except Exception:  # noqa: BLE001 - the listing is a courtesy; the first error is what matters
            return message + " (GET /models did not list the server's models either)"
        return message + f" The server serves: {', '.join(map(str, models)) or 'no models'}"

    def models(self) -> list[str]:
        """The ids of the models the server serves (GET /models)."""
        for attempt in range(self.retries + 1):
            try:
                _, raw = self._send("GET", "/models")
                return [m["id"] for m in json.loads(raw).get("data", [])]
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.retries:
                    raise OpenAIServerError(f"{self._where()}: GET /models failed: {e}",
                                            getattr(e, "code", None)) from None
            time.sleep(0.5 * 2 ** attempt)
        raise AssertionError("unreachable")

    # -- sampling ------------------------------------------------------------------------------------------------

    def sample(self, prompts: Sequence[str], n: int = 1, *, max_new_tokens: int = 128, temperature: float = 1.0,
               top_p: float = 1.0, top_k: int = 64, stop: Sequence[str] = (),
               generator: Generators = None) -> list[list[Completion]]:
        """``n`` continuations of every prompt, one request each; ``temperature=0`` is greedy decoding. Returns one
        list of ``n`` completions per prompt."""
        check_sample_args(prompts, n, max_new_tokens, temperature, top_p, top_k, generator)
        start = time.perf_counter()
        stop = list(stop)
        seeds = _seeds(len(prompts), n, generator)
        rows = [(prompts[i], seeds[i * n + j]) for i in range(len(prompts)) for j in range(n)]

        def one(row: tuple[str, int]) -> Completion:
            prompt, seed = row
            body = {"model": self.model, "prompt": prompt, "max_tokens": max_new_tokens, "temperature": temperature,
                    "top_p": top_p, "top_k": top_k, "seed": seed, "logprobs": 1, "n": 1}
            if stop:
                body["stop"] = stop
            return self._completion(prompt, self._choice(self._request("/completions", body)), stop)

        try:
            flat = self._map(one, rows)
        finally:
            self.seconds += time.perf_counter() - start
        return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _choice(self, answer: dict) -> dict:
        choices = answer.get("choices") or []
        if not choices:
            raise OpenAIServerError(f"{self._where()} answered with no choices: {json.dumps(answer)[:300]}")
        choice = dict(choices[0])
        choice["usage"] = answer.get("usage") or {}
        return choice

    def _completion(self, prompt: str, choice: dict, stop: list[str]) -> Completion:
        text = choice.get("text") or ""
        logprobs = choice.get("logprobs") or {}
        tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
        if tokens is None or values is None or len(tokens) != len(values):
            tokens = values = None
        spent = choice["usage"].get("completion_tokens")
        if spent is None:
            spent = len(values) if values is not None else 0
        cut, hit = first_stop(text, stop)  # a server that ignored (some of) our stop strings
        if cut is not None:
            ended, text, matched = "stop", text[:cut], hit
        elif choice.get("finish_reason") == "length":
            ended, matched = "length", None
        else:
            matched = self._matched_stop(text, choice, tokens, stop)
            ended = "eos" if matched is None else "stop"
            if matched == "":  # a stop string ended it, but which one cannot be told
                matched = None
        sampled = (lambda t: t) if tokens is None else (lambda t: self._sampled(t, tokens, values, prompt))
        with_stop = sampled(text + matched) if matched else None
        return Completion(sampled(text), int(spent), ended, with_stop)

    @staticmethod
    def _matched_stop(text: str, choice: dict, tokens: list[str] | None, stop: list[str]) -> str | None:
        """Which of ``stop`` ended a completion the server says stopped: None when the model ended it itself, ""
        when a stop string did but which one cannot be told."""
        if not stop:
            return None
        for field in ("stop_reason", "matched_stop"):  # vLLM, SGLang: the stop string, or an end token's id
            if field in choice:
                reason = choice[field]
                if isinstance(reason, str) and reason in stop:
                    return reason
                return None if reason is None or isinstance(reason, int) else ""
        if tokens is not None:  # the tokens run on past the cut text into the stop string (llama-cpp-python)
            spelled = "".join(tokens)
            if spelled.startswith(text):
                rest = spelled[len(text):]
                return next((s for s in stop if rest.startswith(s)), None)
        return stop[0] if len(stop) == 1 else ""

    def _sampled(self, text: str, tokens: list[str], values: list[float | None], prompt: str) -> str:
        """``text`` as a ``SampledText`` carrying the sampled tokens that spell it (their texts as token ids); a plain
        str when they do not spell it exactly (the cut falls inside a token)."""
        spelled, k = "", 0
        while k < len(tokens) and len(spelled) + len(tokens[k]) <= len(text):
            spelled += tokens[k]
            k += 1
        if spelled != text or any(v is None for v in values[:k]):
            return text
        return SampledText(text, tokens[:k], torch.tensor(values[:k], dtype=torch.float32), self, prompt)

    # -- scoring -------------------------------------------------------------------------------------------------

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each continuation given its prompt. A ``SampledText`` this generator drew
        from that prompt brings its own along, with no request; the others are scored by the server (teacher
        forcing, ``echo``), one request each."""
        if len(prompts) != len(continuations):
            raise ValueError("continuation_logprobs needs one prompt per continuation")
        start = time.perf_counter()
        try:
            results: list[torch.Tensor | None] = [self._carried(p, c) for p, c in zip(prompts, continuations)]
            todo = [i for i, r in enumerate(results) if r is None]
            for i in [i for i in todo if not continuations[i]]:
                results[i] = torch.empty(0)
            todo = [i for i in todo if continuations[i]]
            scored = self._map(lambda i: self._score(prompts[i], str(continuations[i])), todo)
            for i, values in zip(todo, scored):
                results[i] = values
        finally:
            self.seconds += time.perf_counter() - start
        return results

    def _score(self, prompt: str, continuation: str) -> torch.Tensor:
        full = prompt + continuation
        body = {"model": self.model, "prompt": full, "max_tokens": 1, "temperature": 0.0, "echo": True,
                "logprobs": 1}
        logprobs = self._choice(self._request("/completions", body)).get("logprobs") or {}
        offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
        if not offsets or values is None:
            raise OpenAIServerError(
                f"{self._where()} returned no log-probabilities for an echoed prompt, and this scorer needs them "
                "(vLLM gives them by default; start llama.cpp's server, or llama-cpp-python's, with logits_all)")
        picked = [v for offset, v in zip(offsets, values) if len(prompt) <= offset < len(full)]
        if any(v is None for v in picked):
            raise ValueError(f"{self._where()} gives no log-probability for a text's first token: score a "
                             "continuation of a non-empty prompt")
        return torch.tensor(picked, dtype=torch.float32)

    def _carried(self, prompt: str, continuation: str) -> torch.Tensor | None:
        """The log-probabilities a ``SampledText`` this generator sampled from ``prompt`` carries (its token ids are
        its tokens' texts, which spell it); None for any other text."""
        if not (isinstance(continuation, SampledText) and continuation.model is self and continuation.context == prompt
                and all(isinstance(t, str) for t in continuation.token_ids)
                and "".join(continuation.token_ids) == continuation):
            return None
        return continuation.logprobs


def _seeds(prompts: int, n: int, generator: Generators) -> list[int]:
    """One integer seed per row (prompt by prompt, ``n`` rows each), drawn from the caller's generator(s) in that
    order; with one generator per prompt, each prompt draws from its own (a shared one draws for each in turn)."""
    owners = generator if isinstance(generator, (list, tuple)) else [generator] * prompts
    return [seed for g in owners for seed in torch.randint(2**31 - 1, (n,), generator=g).tolist()]


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read().decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001
        raw = ""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.strip()[:500] or str(error.reason)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for key in ("message", "detail", "msg"):
                if inner.get(key):
                    return str(inner[key])[:500]
        elif isinstance(inner, str):
            return inner[:500]
        if body.get("detail"):
            return str(body["detail"])[:500]
    return raw.strip()[:500]


def _says_no_such_model(text: str) -> bool:
    text = text.lower()
    return "model" in text and any(s in text for s in ("not found", "does not exist", "model_not_found"))
