"""``consensus serve`` under load, on loopback, against the same problems solved in one process.

The baseline is what ``consensus math --source chain_sum --method solution --batch B`` does: the problems in batches
of B, each batch's consensus runs in lockstep. The server (the same loaded models, in the same process) then answers
the same problems sent by 1, 4 and 16 concurrent clients (the official ``openai`` client, one problem a request).
Per setting: throughput (problems/s), latency percentiles (seconds from a request sent to its answer), and the check
that every request was answered once, for its own problem.

    python benchmarks/serve_load.py [--problems 16] [--n 8] [--batch 4]

Writes benchmarks/results/serve-load.json and .md. Bounded: problems x (1 + the client counts) solutions in all.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from consensus.tasks.math import serve
from consensus.tasks.math.data import load_problems
from consensus.zoo.text_generators import resolve_backend

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_name() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), platform.machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    options = parser.parse_args()

    flags = argparse.ArgumentParser()
    serve.add_parser(flags.add_subparsers())
    args = flags.parse_args(["serve", "--source", "chain_sum", "--method", "solution", "--n", str(options.n),
                             "--batch", str(options.batch), "--api-key-env", "CONSENSUS_BENCHMARK_NO_KEY"])
    problems = load_problems("chain_sum", options.problems, seed=11)
    app = serve.app_from_args(args)
    solve = app.state.worker.solve

    rows = []
    start = time.perf_counter()
    latencies = []
    for i in range(0, len(problems), options.batch):
        batch_start = time.perf_counter()
        records = list(solve(problems[i:i + options.batch], method="solution", n=options.n, seed=0,
                             max_new_tokens=args.max_tokens))
        latencies += [time.perf_counter() - batch_start] * len(records)
    wall = time.perf_counter() - start
    rows.append({"setting": f"one process, --batch {options.batch}", "clients": None, "seconds": wall,
                 "problems_per_s": len(problems) / wall, "answered": len(problems), "p50": percentile(latencies, .5),
                 "p90": percentile(latencies, .9), "p99": percentile(latencies, .99)})
    print(rows[-1], flush=True)

    served = serve.ServerThread(app)
    try:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="none", max_retries=0, timeout=3600)
        model = app.state.model
        for clients in options.clients:
            answers: dict[int, list[str]] = {}  # by the problem's place (two chain_sum problems may read alike)
            latencies, lock = [], threading.Lock()

            def ask(i, answers=answers, latencies=latencies, lock=lock):
                sent = time.perf_counter()
                response = client.completions.create(model=model, prompt=problems[i].question,
                                                     max_tokens=args.max_tokens, extra_body={"consensus": {"seed": 0}})
                with lock:
                    latencies.append(time.perf_counter() - sent)
                    answers.setdefault(i, []).append(response.id)

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(ask, range(len(problems))))
            wall = time.perf_counter() - start
            once = sorted(answers) == list(range(len(problems))) and all(len(v) == 1 for v in answers.values())
            ids = [i for v in answers.values() for i in v]
            rows.append({"setting": f"consensus serve, {clients} client{'s' * (clients > 1)}", "clients": clients,
                         "seconds": wall, "problems_per_s": len(problems) / wall, "answered": len(latencies),
                         "each_once": once and len(set(ids)) == len(ids), "p50": percentile(latencies, .5),
                         "p90": percentile(latencies, .9), "p99": percentile(latencies, .99)})
            print(rows[-1], flush=True)
    finally:
        served.stop()

    baseline = rows[0]["problems_per_s"]
    for row in rows:
        row["throughput_vs_one_process"] = row["problems_per_s"] / baseline
    result = {"cpu": cpu_name(), "cores": len(__import__("os").sched_getaffinity(0)), "model": app.state.model,
              "backend": resolve_backend(args.backend, args.model), "problems": len(problems), "n": options.n, "batch": options.batch,
              "max_tokens": args.max_tokens, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve-load.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# consensus serve under load ({result['cpu']}, {result['cores']} cores)", "",
             f"{len(problems)} chain_sum problems, best of {options.n} with the four math scorers "
             f"({app.state.model}, backend {result['backend']}); the server batches up to {options.batch} requests. "
             "Latency: seconds from a request sent to its answer (in one process: its batch's time).", "",
             "| setting | problems/s | × one process | p50 s | p90 s | p99 s | answered | each once |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['setting']} | {row['problems_per_s']:.3f} | {row['throughput_vs_one_process']:.2f} | "
                     f"{row['p50']:.1f} | {row['p90']:.1f} | {row['p99']:.1f} | {row['answered']}/{len(problems)} | "
                     f"{'yes' if row.get('each_once', True) else 'NO'} |")
    lines += ["", "    python benchmarks/serve_load.py " + " ".join(sys.argv[1:]), ""]
    (RESULTS / "serve-load.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"median latency at the most clients: {statistics.median(latencies):.1f} s")


if __name__ == "__main__":
    main()
