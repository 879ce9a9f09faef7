"""A bounded load test of ``xlt serve`` on the loopback interface: 16 languages x 2 configurations (SLP+TA and
LA+TA) requested concurrently, each request one input (an emoji name from the target language's test set),
under the server's three batching policies:

- ``routed``: xlt's batches hold any plans, each row under its own (one routed forward per batch);
- ``per-plan``: a batch holds one plan (how servers that multiplex adapters per model batch);
- ``none``: one request at a time.

Each policy gets its own server process (``xlt serve``), warmed up with one request per (language,
configuration) so that every representation is resident, then ``--concurrency`` clients send requests back to
back for ``--duration`` seconds (at most ``--max-requests``): it stops by itself. Printed: requests per second,
p50 and p99 latency, the mean batch size, and each policy's throughput as a ratio of the others'.

The representations are freshly initialised on e5-small (the converted multilingual-e5-small, or ``--matrix
DIR`` for a trained matrix output directory with those two configurations): a batch's cost does not depend on
the weights' values. Load generator and server share the machine; the client is one asyncio thread.

    PYTHONPATH=src python benchmarks/serve.py                      # 3 policies x 30 s at 32 clients
    PYTHONPATH=src python benchmarks/serve.py --concurrency 1 8 64 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

CONFIGURATIONS = ("SLP+TA", "LA+TA")
SEED = 1


def bank(root: Path, prompt_tokens: int) -> Path:
    """A matrix-shaped directory of untrained representations on e5: a soft language prompt and a language
    adapter per language, and the two configurations' task adapters with the emoji task's 9-label head."""
    from xlt.languages import PAPER_LANGUAGES
    from xlt.loading import load_model
    from xlt.reps import BottleneckConfig, HeadConfig, PromptConfig
    from xlt.tasks.registry import emoji_task

    model = load_model("e5", device="cpu")
    labels = emoji_task().labels("en")
    for language in PAPER_LANGUAGES:
        model.add_language(language, PromptConfig(num_virtual_tokens=prompt_tokens))
        model.add_language(language, BottleneckConfig())
        model.save_rep(f"{language}/prompt", root / "reps" / "language" / f"{language}-prompt" / "rep")
        model.save_rep(f"{language}/bottleneck", root / "reps" / "language" / f"{language}-bottleneck" / "rep")
    head = HeadConfig("sequence", num_labels=len(labels), labels=labels)
    for slug in ("slp-ta", "la-ta"):
        name = f"emoji/en/{slug}/seed{SEED}"
        model.add_task("emoji", BottleneckConfig(), head=head, name=name)
        model.save_rep(name, root / "reps" / "task" / f"emoji-en-{slug}-seed{SEED}" / "rep")
    config = {
        "model": "e5",
        "tasks": {"emoji": "builtin"},
        "sources": ["en"],
        "targets": list(PAPER_LANGUAGES),
        "configurations": list(CONFIGURATIONS),
        "seeds": [SEED],
        "task_training": {"max_length": 128},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    (root / "matrix.json").write_text(json.dumps({"recipe": "benchmark", "config": config}))
    return root


def workload(count: int, seed: int = 0) -> list[dict]:
    from xlt.languages import PAPER_LANGUAGES
    from xlt.tasks.registry import DATA_DIR

    texts = {
        lang: [json.loads(line)["text"] for line in (DATA_DIR / "emoji" / "test" / f"{lang}.jsonl").open()]
        for lang in PAPER_LANGUAGES
    }
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        lang, conf = rng.choice(PAPER_LANGUAGES), rng.choice(CONFIGURATIONS)
        out.append(
            {"task": "emoji", "configuration": conf, "language": lang, "inputs": [{"text": rng.choice(texts[lang])}]}
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(directory: Path, policy: str, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-c", "from xlt.cli import main; main()", "serve", str(directory)]
    command += ["--port", str(port), "--batching", policy, "--max_batch_size", str(args.max_batch_size)]
    command += ["--max_wait_ms", str(args.max_wait_ms), "--threads", str(args.threads), "--device", args.device]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the {policy} server exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the {policy} server did not start")
        time.sleep(0.3)


async def load(url: str, requests: list[dict], concurrency: int, duration: float) -> tuple[list[float], float]:
    """``concurrency`` clients, each on its own keep-alive connection, sending ``requests`` in turn for
    ``duration`` seconds; the latencies and the elapsed time. Requests are serialised beforehand and answers read
    with asyncio streams, so that the load generator takes as little of the shared CPU as it can."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps(b).encode() for b in requests]
    wire = [
        b"POST /v1/predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), len(b), b)
        for b in bodies
    ]
    latencies: list[float] = []
    cursor = iter(wire)
    stop = time.perf_counter() + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for request in cursor:
                if time.perf_counter() >= stop:
                    return
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                if status != b"200":
                    raise SystemExit(f"request failed: {status.decode()} {body[:300].decode(errors='replace')}")
                latencies.append(time.perf_counter() - sent)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


def batch_mean(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith(("xlt_batch_size_sum", "xlt_batch_size_count")):
            name, value = line.split()
            values[name] = float(value)
    return values["xlt_batch_size_sum"] / max(values["xlt_batch_size_count"], 1)


def measure(directory: Path, policy: str, concurrency: int, args: argparse.Namespace) -> dict:
    process, url = start(directory, policy, args)
    try:
        from xlt.languages import PAPER_LANGUAGES

        warm = [
            {"task": "emoji", "configuration": c, "language": lang, "inputs": [{"text": "warm up"}]}
            for lang in PAPER_LANGUAGES
            for c in CONFIGURATIONS
        ]
        asyncio.run(load(url, warm, 4, 600))
        before = batch_mean(url), httpx.get(url + "/metrics").text
        requests = workload(args.max_requests, seed=concurrency)
        latencies, elapsed = asyncio.run(load(url, requests, concurrency, args.duration))
        del before
        latencies.sort()
        if os.environ.get("XLT_BENCH_METRICS"):
            print(
                "\n".join(
                    line for line in httpx.get(url + "/metrics").text.splitlines() if "_sum" in line or "_count" in line
                )
            )
        return {
            "policy": policy,
            "concurrency": concurrency,
            "requests": len(latencies),
            "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "batch": batch_mean(url),
        }
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", type=Path, help="a trained matrix output directory with SLP+TA and LA+TA")
    parser.add_argument("--policies", nargs="+", default=["routed", "per-plan", "none"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per policy")
    parser.add_argument("--max-requests", type=int, default=100_000, help="requests per policy at most")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--prompt-tokens", type=int, default=20, help="soft prompt length (the fast preset's)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the server's torch threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.matrix or bank(Path(scratch), args.prompt_tokens)
        rows = [measure(directory, p, c, args) for c in args.concurrency for p in args.policies]
    import torch

    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"device {args.device}, server threads {args.threads}"
    )
    print(
        f"workload: 16 languages x {len(CONFIGURATIONS)} configurations, one input per request, "
        f"max_batch_size {args.max_batch_size}, max_wait_ms {args.max_wait_ms}, {args.duration:g} s per policy\n"
    )
    print("| clients | batching | requests | req/s | p50 ms | p99 ms | mean batch | routed's req/s ÷ this |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        routed = next((r for r in rows if r["policy"] == "routed" and r["concurrency"] == row["concurrency"]), None)
        ratio = f"{routed['rps'] / row['rps']:.2f}×" if routed else "–"
        print(
            f"| {row['concurrency']} | {row['policy']} | {row['requests']} | {row['rps']:.1f} | {row['p50_ms']:.0f} | "
            f"{row['p99_ms']:.0f} | {row['batch']:.1f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
