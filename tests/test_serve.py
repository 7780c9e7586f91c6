"""Depict on Ray Serve (`python -m models serve`): a real two-replica deployment on CPU, loopback only. Sixteen
concurrent requests are served by both replicas; bad input gets the job's sentence and hurts no replica; a replica
process killed under load is replaced and every request is still answered. Ray is shut down at the end."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from models.metadata import read_metadata
from models.remote import RemoteEngine, post
from tests.conftest import free_port

pytestmark = pytest.mark.serve
serve = pytest.importorskip("models.serve", exc_type=ImportError)  # needs requirements-serve.txt

PROMPT = "a small red star at the top on a blue background"
REQUESTS = 16
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def deployment():
    url = serve.start("bundled", port=free_port(), replicas=2, num_cpus=1)
    yield url
    serve.stop()


def draw(url: str, seed: int, steps: int = 12) -> tuple[int, str, bytes]:
    status, headers, body = post(url, "text_to_image", {"prompt": PROMPT, "seed": seed, "steps": steps}, TIMEOUT_S)
    return status, headers.get("X-Depict-Replica", ""), body


def test_both_replicas_serve_concurrent_requests(deployment):
    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(lambda seed: draw(deployment, seed), range(REQUESTS)))
    assert [status for status, _, _ in answers] == [200] * REQUESTS
    assert len({replica for _, replica, _ in answers}) == 2
    for seed, (_, _, png) in enumerate(answers):
        meta = read_metadata(Image.open(io.BytesIO(png)))
        assert (meta["prompt"], meta["seed"], meta["steps"]) == (PROMPT, seed, 12)


@pytest.mark.parametrize(
    "job, options, status, message",
    [
        ("text_to_image", {"prompt": PROMPT, "steps": 0}, 400, "`steps`"),
        ("text_to_image", {"prompt": PROMPT, "colour": "red"}, 400, "`colour` is not an argument of text_to_image"),
        ("text_to_image", {}, 400, "`prompt` is required"),
        ("describe", {"image": "not base64!"}, 400, "`image` is not valid base64"),
        ("describe", {"image": "aGVsbG8="}, 400, "`image` is not a readable image file"),
        ("paint", {"prompt": PROMPT}, 404, "no job 'paint'"),
    ],
)  # fmt: skip
def test_bad_requests_get_the_jobs_sentence(deployment, job, options, status, message):
    got, _, body = post(deployment, job, options, TIMEOUT_S)
    assert got == status and message in json.loads(body)["error"]


def test_backend_engine_runs_jobs_on_the_replicas(deployment):
    engine = RemoteEngine(deployment)
    result = engine.text_to_image(PROMPT, seed=5, num_images=2)
    assert [meta["seed"] for meta in map(read_metadata, result.images)] == [5, 6]
    assert engine.describe(result.images[0]).startswith("a ")
    with pytest.raises(ValueError, match="`strength` must be"):
        engine.style_transfer(result.images[0], style="striped", strength=1.5)


def test_a_replica_killed_under_load_loses_no_request(deployment):
    victims = serve.replica_processes()
    assert len(victims) == 2
    with ThreadPoolExecutor(REQUESTS) as pool:
        futures = [pool.submit(draw, deployment, seed, 60) for seed in range(REQUESTS)]
        time.sleep(3)  # both replicas busy, the rest queued
        assert not all(f.done() for f in futures)
        os.kill(victims[0].pid, signal.SIGKILL)
        answers = [f.result() for f in futures]
    assert [status for status, _, _ in answers] == [200] * REQUESTS
    deadline = time.monotonic() + TIMEOUT_S
    while len(serve.replica_processes()) < 2 and time.monotonic() < deadline:  # Ray Serve replaces the dead replica
        time.sleep(1)
    assert len(serve.replica_processes()) == 2
