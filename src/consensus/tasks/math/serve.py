"""``consensus serve``: the math consensus behind an OpenAI-compatible endpoint.

``/v1/completions`` (the prompt is the problem) and ``/v1/chat/completions`` (the last user message is) answer with
the ensemble's pick, built exactly as ``consensus math`` builds it (``make_solve``: the same generator, scorers and
method); ``/v1/models`` and ``/health`` say what is served. A request may choose the method and its budget within
the server's limits through an extra field, ``"consensus": {"method": "step", "n": 8, "beam": 2, "seed": 0,
"explain": true}``; the response carries ``"consensus"`` too: the extracted answer, the stop reason, the generator
tokens, and with ``explain`` every iteration's candidates, energies per scorer and survivors.

Concurrency: one worker thread owns the models. Requests wait in a bounded queue; the worker takes every waiting
request of one method and budget (up to ``--batch``, after waiting 20 ms for more to come) and solves them together
in lockstep, their generator calls merged into one batch and their scorers' calls too, each request from its own
seed. A request whose client has gone or whose time is up before its batch starts is dropped unrun; a batch that
fails is solved again one request at a time, so a request that breaks a scorer fails alone.

Starlette under uvicorn, not FastAPI: every refusal must be OpenAI's error body naming the field, so the body is
validated here rather than by pydantic's 422s, and Starlette alone gives routing and server-sent events.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.cli import HelpFormatter
from consensus.core.engine import trace_record
from consensus.core.files import LineWriter
from consensus.core.trace import TraceWriter
from consensus.tasks.math.cli import METHODS, add_solver_options, make_solve
from consensus.tasks.math.data import Problem


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond it, a 400 naming the field."""

    body_bytes: int = 64 * 1024
    prompt_tokens: int = 1024
    n: int = 32  # proposals (consensus.n)
    beam: int = 8
    max_tokens: int = 512
    queue: int = 64  # requests waiting or running; one more is a 429
    batch: int = 4  # requests solved together: batch x n rows must fit the generator (llama.cpp: 128 sequences)
    seconds: float = 600.0  # a request not answered by then is a 504 and is dropped
    gather: float = 0.02  # seconds the worker waits, once a request comes, for others to share its batch


@dataclass(frozen=True)
class How:
    """A request's method and budget: requests alike are solved in one batch."""

    method: str
    n: int
    beam: int
    seed: int
    max_tokens: int


class RequestError(Exception):
    """A request refused: its HTTP status and OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class Job:
    """One request on its way: its problem, how to solve it, and the future its answer arrives in."""

    problem: Problem
    how: How
    explain: bool
    prompt_tokens: int = 0
    future: Future = field(default_factory=Future)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    gone: bool = False  # its client left, or its time ran out: not worth running


class Worker:
    """The thread that owns the models: it solves the queued jobs, alike ones together."""

    def __init__(self, solve, limits: Limits, results: LineWriter | None = None):
        self.solve, self.limits, self.results = solve, limits, results
        self.jobs: deque[Job] = deque()
        self.changed = threading.Condition()
        self.counts = {"answered": 0, "failed": 0, "dropped": 0}
        self.running = 0
        threading.Thread(target=self._loop, name="consensus-serve", daemon=True).start()

    def submit(self, job: Job) -> None:
        with self.changed:
            if len(self.jobs) + self.running >= self.limits.queue:
                raise RequestError(429, f"the server is busy ({self.limits.queue} requests waiting or running); try "
                                        "again shortly", kind="rate_limit_exceeded", code="rate_limit_exceeded")
            self.jobs.append(job)
            self.changed.notify()

    def status(self) -> dict[str, int]:
        with self.changed:
            return {"waiting": len(self.jobs), "running": self.running, **self.counts}

    def _next_batch(self) -> list[Job]:
        with self.changed:
            while not self.jobs:
                self.changed.wait()
            # Clients sending together arrive a few milliseconds apart: a short wait lets them share one batch.
            until = time.monotonic() + self.limits.gather
            while len(self.jobs) < self.limits.batch and (left := until - time.monotonic()) > 0:
                self.changed.wait(left)
            how = self.jobs[0].how
            batch = [job for job in self.jobs if job.how == how][: self.limits.batch]
            for job in batch:
                self.jobs.remove(job)
            dropped = [job for job in batch if job.gone]
            self.counts["dropped"] += len(dropped)
            batch = [job for job in batch if not job.gone]
            self.running = len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            outcomes = self._solved(batch)
            for job, outcome in zip(batch, outcomes):
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                    continue
                if self.results is not None:
                    self.results.write(json.dumps({"id": job.problem.id, "question": job.problem.question,
                                                   "text": outcome["text"], **_answer(outcome), "how": vars(job.how)},
                                                  ensure_ascii=False) + "\n")
                job.future.set_result(outcome)
            with self.changed:
                failed = sum(isinstance(outcome, Exception) for outcome in outcomes)
                self.counts["failed"] += failed
                self.counts["answered"] += len(outcomes) - failed
                self.running = 0

    def _solved(self, batch: list[Job]) -> list[Any]:
        """Each job's record, or the error that failed it. A batch that fails is solved again one job at a time, so
        a request that breaks a scorer fails alone, not every request it was batched with."""
        outcomes = self._solve(batch)
        if len(batch) > 1 and isinstance(outcomes[0], Exception):
            for job in batch:
                job.iterations.clear()
            outcomes = [outcome for job in batch for outcome in self._solve([job])]
        return outcomes

    def _solve(self, batch: list[Job]) -> list[Any]:
        if not batch:
            return []
        how = batch[0].how
        by_id = {job.problem.id: job for job in batch}

        def seen(problem: Problem, record: dict[str, Any]) -> None:
            if by_id[problem.id].explain:
                by_id[problem.id].iterations.append(trace_record(record, {}, problem.id))

        try:
            return list(self.solve([job.problem for job in batch], method=how.method, n=how.n, beam=how.beam,
                                   seed=how.seed, max_new_tokens=how.max_tokens, on_iteration=seen))
        except Exception as error:  # noqa: BLE001 - said to the request as a 500
            return [error] * len(batch)


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    """What a solved problem's record says beyond its text: the extracted answer, the tokens, the stop reason."""
    return {"answer": record["flexible"], "tokens": record["tokens"],
            **({"stop_reason": record["stop_reason"]} if "stop_reason" in record else {})}


def parse_request(body: dict[str, Any], chat: bool, defaults: How, limits: Limits, model: str,
                  count_tokens) -> tuple[str, int, How, bool, bool]:
    """The question, its tokens, how to solve it, whether to explain, whether to stream; a ``RequestError`` naming
    the first field that is wrong."""
    if body.get("model") not in (None, model):
        raise RequestError(404, f"the model {body.get('model')!r} is not served here; this server serves {model!r}",
                           param="model", code="model_not_found")
    if chat:
        question = _last_user_message(body.get("messages"))
        prompt_field = "messages"
    else:
        question = body.get("prompt")
        prompt_field = "prompt"
        if isinstance(question, list) and len(question) == 1 and isinstance(question[0], str):
            question = question[0]
        if not isinstance(question, str) or not question.strip():
            raise RequestError(400, "prompt must be one non-empty string: the problem to solve", param="prompt")
    tokens = count_tokens(question)
    if tokens > limits.prompt_tokens:
        raise RequestError(400, f"the prompt is {tokens} tokens; this server takes at most {limits.prompt_tokens}",
                           param=prompt_field, code="context_length_exceeded")
    if body.get("n", 1) != 1:
        raise RequestError(400, "n must be 1: the answer is the ensemble's one pick (ask for more proposals with "
                                "consensus.n)", param="n")
    max_tokens = body.get("max_tokens")
    if chat:  # chat's newer name for it wins
        max_tokens = body.get("max_completion_tokens", max_tokens)
    max_tokens = defaults.max_tokens if max_tokens is None else max_tokens
    _check_int(max_tokens, 1, limits.max_tokens, "max_tokens")
    extra = body.get("consensus") or {}
    if not isinstance(extra, dict):
        raise RequestError(400, "consensus must be an object, e.g. {\"method\": \"step\", \"n\": 8}", param="consensus")
    unknown = sorted(set(extra) - {"method", "n", "beam", "seed", "explain"})
    if unknown:
        raise RequestError(400, f"consensus has no field {unknown[0]!r}; it takes method, n, beam, seed, explain",
                           param=f"consensus.{unknown[0]}")
    method = extra.get("method", defaults.method)
    if method not in METHODS:
        raise RequestError(400, f"consensus.method must be one of {', '.join(METHODS)}, not {method!r}",
                           param="consensus.method")
    n = _check_int(extra.get("n", defaults.n), 1, limits.n, "consensus.n")
    beam = _check_int(extra.get("beam", defaults.beam), 1, limits.beam, "consensus.beam")
    seed = _check_int(extra.get("seed", defaults.seed), 0, 2**63 - 1, "consensus.seed")
    explain, stream = extra.get("explain", False), body.get("stream", False)
    for name, value in (("consensus.explain", explain), ("stream", stream)):
        if not isinstance(value, bool):
            raise RequestError(400, f"{name} must be true or false", param=name)
    return question, tokens, How(method, n, beam, seed, max_tokens), explain, stream


def _check_int(value: Any, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(400, f"{name} must be a whole number from {low} to {high} on this server, got {value!r}",
                           param=name)
    return value


def _last_user_message(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list of {role, content}", param="messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: their text, in order
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            if isinstance(content, str) and content.strip():
                return content
            break
    raise RequestError(400, "the last user message must hold the problem as text", param="messages")


def build_app(solve, model: str, defaults: How, limits: Limits = Limits(), api_key: str | None = None,
              count_tokens=len, results: LineWriter | None = None):
    """The ASGI app around ``solve`` (``make_solve``'s, which writes the trace when it has one); its worker starts
    with it and writes each answer to ``results``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    worker = Worker(solve, limits, results)

    def refuse(error: RequestError) -> Response:
        return JSONResponse(error.body, status_code=error.status)

    def authorised(request: Request) -> bool:
        if api_key is None:
            return True
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), api_key.encode())

    def failed(error: Exception) -> RequestError:
        return RequestError(500, f"{type(error).__name__}: {error} (model {model})", kind="server_error")

    async def complete(request: Request, chat: bool) -> Response:
        if not authorised(request):
            return refuse(RequestError(401, "a valid API key is needed: send it as 'Authorization: Bearer <key>'",
                                       code="invalid_api_key"))
        try:
            body = await read_body(request, limits)
            question, tokens, how, explain, stream = parse_request(body, chat, defaults, limits, model, count_tokens)
            job = Job(Problem(f"req-{uuid.uuid4().hex[:12]}", question, ""), how, explain, tokens)
            worker.submit(job)
        except RequestError as error:
            return refuse(error)
        if stream:
            return StreamingResponse(events(request, job, chat), media_type="text/event-stream")
        try:
            record = await answered(request, job, limits)
        except RequestError as error:
            return refuse(error)
        except Exception as error:  # noqa: BLE001 - a model or scorer failed: said, never a hung connection
            return refuse(failed(error))
        return JSONResponse(_response(job, record, chat, model))

    async def events(request: Request, job: Job, chat: bool):
        try:
            parts = _chunks(_response(job, await answered(request, job, limits), chat, model), chat)
        except RequestError as error:
            parts = [error.body]
        except Exception as error:  # noqa: BLE001 - said in the stream, as the response would have said it
            parts = [failed(error).body]
        for part in parts:
            yield f"data: {json.dumps(part, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    async def completions(request: Request) -> Response:
        return await complete(request, chat=False)

    async def chat_completions(request: Request) -> Response:
        return await complete(request, chat=True)

    async def models(request: Request) -> Response:
        if not authorised(request):
            return refuse(RequestError(401, "a valid API key is needed", code="invalid_api_key"))
        return JSONResponse({"object": "list", "data": [{"id": model, "object": "model", "created": 0,
                                                         "owned_by": "consensus"}]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model, **worker.status()})

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"]),
                            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                            Route("/v1/models", models, methods=["GET"]), Route("/health", health, methods=["GET"])])
    app.state.worker, app.state.model = worker, model
    return app


async def read_body(request, limits: Limits) -> dict[str, Any]:
    """The request's JSON object, read up to the body limit; a ``RequestError`` naming ``body`` otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.body_bytes:
        raise RequestError(400, f"the request body is {declared} bytes; this server takes at most "
                                f"{limits.body_bytes}", param="body")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limits.body_bytes:
            raise RequestError(400, f"the request body is over {limits.body_bytes} bytes, this server's limit",
                               param="body")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise RequestError(400, "the request body is not JSON", param="body") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", param="body")
    return body


async def answered(request, job: Job, limits: Limits) -> dict[str, Any]:
    """The job's record once solved; a client that leaves, or a request out of time, drops the job."""
    waiting = asyncio.wrap_future(job.future)
    deadline = time.monotonic() + limits.seconds
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=0.1)
            if done:
                return waiting.result()
            if await request.is_disconnected():
                raise asyncio.CancelledError
            if time.monotonic() > deadline:
                raise RequestError(504, f"no answer within {limits.seconds:g} s; the request was dropped",
                                   kind="timeout")
    finally:
        job.gone = not job.future.done()


def _chunks(whole: dict[str, Any], chat: bool) -> list[dict[str, Any]]:
    """A response as the stream sends it: one chunk with the whole answer, then one with the finish reason."""
    choice = whole["choices"][0]
    if chat:
        kind = {"object": "chat.completion.chunk"}
        return [{**whole, **kind, "choices": [{"index": 0, "finish_reason": None,
                                               "delta": {"role": "assistant", "content": choice["message"]["content"]}}]},
                {**whole, **kind, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}]
    return [{**whole, "choices": [{**choice, "finish_reason": None}]},
            {**whole, "choices": [{"index": 0, "text": "", "finish_reason": choice["finish_reason"], "logprobs": None}]}]


def _response(job: Job, record: dict[str, Any], chat: bool, model: str) -> dict[str, Any]:
    """OpenAI's completion object for a solved job, with the ``consensus`` extension."""
    text = record["text"]
    usage = {"prompt_tokens": job.prompt_tokens, "completion_tokens": record["tokens"],
             "total_tokens": job.prompt_tokens + record["tokens"]}  # the problem's tokens, without the exemplars
    extension = {**_answer(record), "method": job.how.method, "n": job.how.n, "seed": job.how.seed,
                 **({"iterations": job.iterations} if job.explain else {})}
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                  "logprobs": None}
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{job.problem.id}",
            "object": "chat.completion" if chat else "text_completion", "created": int(time.time()), "model": model,
            "choices": [choice], "usage": usage, "consensus": extension}


class ServerThread:
    """``app`` served by uvicorn on a free loopback port in a thread of this process, until ``stop``: for tests,
    benchmarks and notebooks (``url`` is where it listens)."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start; see its log above")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the math consensus behind an OpenAI-compatible endpoint",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key-env", default="CONSENSUS_API_KEY",
                   help="the environment variable holding the API key requests must send; unset: no key needed")
    add_solver_options(p)
    p.add_argument("--max-tokens", type=int, default=256, help="new tokens per proposal, unless a request asks for "
                                                               "fewer or more (up to --limit-max-tokens)")
    p.add_argument("--batch", type=int, default=Limits.batch,
                   help="requests solved together, in lockstep; their rows (batch x n) and tokens must fit the "
                        "generator (the offline llama.cpp Gemma: 128 sequences in an 8,192-token cache)")
    p.add_argument("--queue", type=int, default=Limits.queue, help="requests waiting or running; more are a 429")
    p.add_argument("--limit-n", type=int, default=Limits.n, help="the most proposals a request may ask for")
    p.add_argument("--limit-max-tokens", type=int, default=Limits.max_tokens)
    p.add_argument("--limit-prompt-tokens", type=int, default=Limits.prompt_tokens)
    p.add_argument("--timeout", type=float, default=Limits.seconds, help="seconds a request may wait for its answer")
    p.add_argument("--out", default=None, help="a folder for every request's trace and answer (trace.jsonl, "
                                               "results.jsonl, run.json), which `consensus report` reads")


def count_tokens_of(lm) -> Any:
    """The generator's own token count of a text, or its UTF-8 bytes (an upper bound for byte-level tokenizers)
    where it is a remote server's."""
    if hasattr(lm, "tokenize"):
        return lambda text: len(lm.tokenize(text, special=False))
    if hasattr(lm, "tokenizer"):
        return lambda text: len(lm.tokenizer(text)["input_ids"])
    return lambda text: len(text.encode("utf-8"))


def app_from_args(args: argparse.Namespace):
    """The app ``consensus serve`` runs: the limits and defaults of its flags, the models ``consensus math`` would
    load for them (the scorers always, so any request may ask for a scored method)."""
    from consensus.cli import flags_of, lock_run_folder, run_manifest, user_scorers

    user_scorers(args.scorer)  # a bad --scorer fails before any model loads
    limits = Limits(prompt_tokens=args.limit_prompt_tokens, n=args.limit_n, max_tokens=args.limit_max_tokens,
                    queue=args.queue, batch=args.batch, seconds=args.timeout)
    for name, value, high in (("--n", args.n, limits.n), ("--beam", args.beam, limits.beam),
                              ("--max-tokens", args.max_tokens, limits.max_tokens), ("--batch", args.batch, 1024),
                              ("--queue", args.queue, 1 << 20)):
        if not 1 <= value <= high:
            raise ValueError(f"{name} must be from 1 to {high}, got {value}")
    trace = results = None
    if args.out is not None:
        folder = Path(args.out)
        lock_run_folder(folder)
        trace, results = TraceWriter(folder / "trace.jsonl"), LineWriter(folder / "results.jsonl", durable=True)
        run_manifest(args, folder, folder / "trace.jsonl", task="serve", title=f"serve: {args.method} on {args.host}",
                     settings=flags_of(args),
                     results="results.jsonl", columns=["answer", "tokens", "stop_reason"])()
    solve = make_solve(argparse.Namespace(**{**vars(args), "method": "solution", "baseline": "none"}), trace)
    api_key = os.environ.get(args.api_key_env) or None
    defaults = How(args.method, args.n, args.beam, args.seed, args.max_tokens)
    return build_app(solve, solve.generator, defaults, limits, api_key, count_tokens_of(solve.lm), results)


def run(args: argparse.Namespace) -> None:
    import uvicorn

    app = app_from_args(args)
    key = os.environ.get(args.api_key_env)
    print(f"serving {app.state.model} ({args.method}, n {args.n}) at http://{args.host}:{args.port}/v1"
          + (f"; requests need the key in ${args.api_key_env}" if key else ""), flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:  # uvicorn shut down gracefully on Ctrl-C or SIGTERM, then passed the signal on
        pass
    if args.out is not None:
        args.manifest(state="finished")  # a stopped server has finished: every answered request is on disk
    print("consensus serve: stopped" + (f"; every answered request is in {args.out}" if args.out else ""),
          file=sys.stderr)
