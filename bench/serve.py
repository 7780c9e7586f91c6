"""Depict on Ray Serve replicas (bundled preset, loopback): throughput and latency for 1 and 2 replicas, and what a
replica's restart costs.

    python -m bench.serve [--replicas 1 2] [--requests 48] [--concurrency 8] [--steps 12]

Prints one JSON line per replica count (requests/s, p50/p95 seconds, which replicas answered) and one for the
restart: seconds from killing a replica's process until a new replica answers, the requests sent meanwhile all
answered (or not).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.machine import machine_facts
from models import serve
from models.remote import post

PROMPT = "a small red star at the top on a blue background"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--port", type=int, default=8765)
    return parser.parse_args(argv)


def timed(url: str, seed: int, steps: int) -> tuple[int, str, float]:
    started = time.perf_counter()
    status, headers, _ = post(url, "text_to_image", {"prompt": PROMPT, "seed": seed, "steps": steps}, 600)
    return status, headers.get("X-Depict-Replica", ""), time.perf_counter() - started


def load(url: str, requests: int, concurrency: int, steps: int) -> dict:
    """`requests` text -> image requests, `concurrency` at a time: requests/s, p50/p95 and who answered."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda seed: timed(url, seed, steps), range(3 * concurrency)))  # replicas warm, graphs built
        started = time.perf_counter()
        answers = list(pool.map(lambda seed: timed(url, seed, steps), range(requests)))
        wall = time.perf_counter() - started
    latencies = sorted(seconds for _, _, seconds in answers)
    return {"requests": requests, "concurrency": concurrency, "ok": sum(s == 200 for s, _, _ in answers),
            "requests_per_s": round(requests / wall, 2), "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "replicas_answering": len({replica for _, replica, _ in answers})}  # fmt: skip


def restart(url: str, concurrency: int, steps: int) -> dict:
    """Kill one replica's process under load: seconds until a new replica answers; every request answered?"""
    before = {replica for _, replica, _ in (timed(url, seed, steps) for seed in range(4))}
    victim = serve.replica_processes()[0]
    killed = time.perf_counter()
    os.kill(victim.pid, signal.SIGKILL)
    answers, seed = [], 0
    with ThreadPoolExecutor(concurrency) as pool:
        while time.perf_counter() - killed < 300:
            batch = list(pool.map(lambda s: timed(url, s, steps), range(seed, seed + concurrency)))
            answers += batch
            seed += concurrency
            if {replica for _, replica, _ in batch} - before:
                break
    return {"restart_s": round(time.perf_counter() - killed, 2), "requests_meanwhile": len(answers),
            "answered": sum(s == 200 for s, _, _ in answers)}  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    facts = machine_facts()
    for replicas in args.replicas:
        cpus = max(1, (os.cpu_count() or 1) // replicas)  # the machine's cores shared out
        url = serve.start("bundled", port=args.port, replicas=replicas, num_cpus=cpus)
        try:
            figures = load(url, args.requests, args.concurrency, args.steps)
            print(json.dumps({"phase": "load", "replicas": replicas, "num_cpus": cpus, "steps": args.steps, **figures,
                              **facts}), flush=True)  # fmt: skip
            if replicas > 1:
                lost = restart(url, args.concurrency, args.steps)
                print(json.dumps({"phase": "restart", "replicas": replicas, **lost}), flush=True)
        finally:
            serve.stop()


if __name__ == "__main__":
    main()
