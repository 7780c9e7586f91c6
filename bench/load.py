"""Load on a launched app (bundled preset): concurrent clients, a small queue, and a long sequential run.

    python -m bench.load [--clients 32] [--jobs-per-client 3] [--sequential 300] [--out bench/results]

Prints one JSON line per phase: jobs completed / refused because the queue was full / lost or failed,
p50/p95 latency, the server's peak RSS, and (sequential phase) its RSS growth after warm-up; writes them, with the
machine's facts, to `OUT/load.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from gradio_client import Client, handle_file

from bench.machine import machine_facts
from models.shapes import parse, region_mask, render

ROOT = Path(__file__).resolve().parent.parent

CONTENT = "a large green circle in the center on a white background"
PROMPT = "a small red star at the top on a blue background"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python app.py` in a subprocess, its RSS sampled every 50 ms."""

    def __init__(self, queue_size: int):
        self.port = free_port()
        env = {**os.environ, "DEPICT_QUEUE_SIZE": str(queue_size), "GRADIO_ANALYTICS_ENABLED": "False"}
        self.process = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port)], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}/"
        self.peak_rss = 0
        self._stop = threading.Event()
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        threading.Thread(target=self._sample, daemon=True).start()

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def _sample(self):
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.05)

    def close(self):
        self._stop.set()
        self.process.terminate()
        self.process.wait(timeout=30)


def jobs(folder: Path) -> list[tuple[str, dict]]:
    """One request per endpoint, in a mixing order."""
    picture, mask = folder / "picture.png", folder / "mask.png"
    render(CONTENT, seed=1).save(picture)
    region_mask(parse(CONTENT), 1).save(mask)
    image = handle_file(str(picture))
    return [
        ("/text_to_image", {"prompt": PROMPT}),
        ("/describe", {"image": image}),
        ("/regenerate", {"image": image, "description": CONTENT, "keep_layout": 0.5}),
        ("/style_transfer", {"image": image, "style": "striped", "prompt": CONTENT}),
        ("/inpaint", {"image": image, "mask": handle_file(str(mask)), "prompt": PROMPT}),
        ("/instruct_edit", {"image": image, "instruction": "make the circle blue"}),
    ]


def call(client: Client, endpoint: str, kwargs: dict, seed: int) -> tuple[str, float]:
    """One request: ("ok" | "queue full" | "error: ...", seconds). A result must carry the seed it was asked for."""
    extra = {} if endpoint == "/describe" else {"seed": seed}
    started = time.perf_counter()
    try:
        result = client.predict(**kwargs, **extra, api_name=endpoint)
    except Exception as error:  # the client raises the server's message
        text = str(error)
        return ("queue full" if "queue is full" in text.lower() else f"error: {text[:120]}"), time.perf_counter() - started
    seconds = time.perf_counter() - started
    if endpoint == "/describe":
        return ("ok" if isinstance(result, str) and result else "error: empty description"), seconds
    _, meta = result
    return ("ok" if meta.get("seed") == seed else f"error: seed {meta.get('seed')} != {seed}"), seconds


def summary(name: str, outcomes: list[tuple[str, float]], server: Server, **extra) -> dict:
    latencies = sorted(s for status, s in outcomes if status == "ok")
    counts = {"ok": 0, "queue full": 0, "failed": 0}
    for status, _ in outcomes:
        key = status if status in counts else "failed"
        counts[key] = counts.get(key, 0) + 1
    entry = {
        "phase": name, "requests": len(outcomes), **counts,
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        "peak_rss_mb": round(server.peak_rss / 2**20, 1), **extra,
    }  # fmt: skip
    errors = sorted({status for status, _ in outcomes if status.startswith("error")})
    if errors:
        entry["errors"] = errors[:5]
    print(json.dumps(entry), flush=True)
    return entry


def concurrent_phase(name: str, queue_size: int, clients: int, per_client: int, folder: Path) -> dict:
    server = Server(queue_size)
    requests = jobs(folder)
    try:
        def client_run(index: int) -> list[tuple[str, float]]:
            client = Client(server.url, verbose=False)
            return [call(client, *requests[(index + k) % len(requests)], seed=1000 * index + k) for k in range(per_client)]

        with ThreadPoolExecutor(clients) as pool:
            outcomes = [o for result in pool.map(client_run, range(clients)) for o in result]
        return summary(name, outcomes, server, clients=clients, queue_size=queue_size)
    finally:
        server.close()


def sequential_phase(count: int, folder: Path) -> dict:
    server = Server(64)
    requests = jobs(folder)
    try:
        client = Client(server.url, verbose=False)
        outcomes, warm_rss = [], None
        for index in range(count):
            outcomes.append(call(client, *requests[index % len(requests)], seed=index))
            if index + 1 == min(30, count):
                warm_rss = server.rss()
        growth = (server.rss() - warm_rss) / warm_rss
        return summary("sequential", outcomes, server, rss_growth_after_warmup=round(growth, 3))
    finally:
        server.close()


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--jobs-per-client", type=int, default=3)
    parser.add_argument("--small-queue", type=int, default=8, help="queue size for the overflow phase")
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        phases = [
            concurrent_phase("concurrent", 64, args.clients, args.jobs_per_client, folder),
            concurrent_phase("overflow", args.small_queue, args.clients, 1, folder),
            sequential_phase(args.sequential, folder),
        ]
    facts = machine_facts()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.jsonl").write_text("".join(json.dumps({**phase, "machine": facts}) + "\n" for phase in phases))
    return phases


if __name__ == "__main__":
    main()
