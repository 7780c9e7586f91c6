"""Depict on Ray Serve (`python -m models serve`): a real two-replica deployment on CPU, loopback only. Sixteen
concurrent requests are served by both replicas; bad input gets the job's sentence and hurts no replica; the page
(`app.py --backend`) runs its jobs there; a replica process killed under load is replaced and every request is still
answered. Ray is shut down at the end."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from models.metadata import png_bytes, read_metadata
from models.remote import RemoteEngine, post
from tests.conftest import free_port

pytestmark = pytest.mark.serve
serve = pytest.importorskip("models.serve", exc_type=ImportError)  # needs requirements-serve.txt

PROMPT = "a small red star at the top on a blue background"
REQUESTS = 16
TIMEOUT_S = 240
DOT = base64.b64encode(png_bytes(Image.new("RGB", (1, 1)), {})).decode()  # a 1x1 picture


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
        ("upscale", {"image": DOT, "scale": 3}, 400, "`scale` must be 2 or 4, got 3."),
        ("upscale", {"image": DOT}, 400, "`image` is 1x1: upscaling needs at least 8 pixels a side."),
        ("upscale", {"scale": 2}, 400, "`image` is required by upscale"),
        ("paint", {"prompt": PROMPT}, 404, "no job 'paint'"),
    ],
)  # fmt: skip
def test_bad_requests_get_the_jobs_sentence(deployment, job, options, status, message):
    got, _, body = post(deployment, job, options, TIMEOUT_S)
    assert got == status and message in json.loads(body)["error"]


def test_upscale_keeps_the_pictures_parameters(deployment):
    _, _, png = draw(deployment, seed=7)
    status, headers, body = post(deployment, "upscale", {"image": base64.b64encode(png).decode(), "scale": 2},
                                 TIMEOUT_S)  # fmt: skip
    assert status == 200 and headers["content-type"] == "image/png" and headers["X-Depict-Replica"]
    upscaled = Image.open(io.BytesIO(body))
    meta = read_metadata(upscaled)
    assert upscaled.size == (128, 128) and (meta["job"], meta["scale"], meta["input_size"]) == ("upscale", 2, [64, 64])
    assert (meta["prompt"], meta["seed"]) == (PROMPT, 7)


def test_backend_engine_runs_jobs_on_the_replicas(deployment):
    engine = RemoteEngine(deployment)
    result = engine.text_to_image(PROMPT, seed=5, num_images=2)
    assert [meta["seed"] for meta in map(read_metadata, result.images)] == [5, 6]
    assert engine.describe(result.images[0]).startswith("a ")
    assert result.metadata["replica"]
    assert engine.upscale(result.images[1], scale=4).images[0].size == (256, 256)
    with pytest.raises(ValueError, match="`strength` must be"):
        engine.style_transfer(result.images[0], style="striped", strength=1.5)
    with pytest.raises(ValueError, match="`scale` must be 2 or 4"):
        engine.upscale(result.images[0], scale=3)


def test_the_page_runs_its_jobs_on_the_backend(deployment, tmp_path):
    args = app.parse_args(["--port", str(free_port()), "--backend", deployment])
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        gallery, meta = client.predict(prompt=PROMPT, seed=9, api_name="/text_to_image")
        drawn = gallery[0]["image"]
        assert (meta["prompt"], meta["seed"], read_metadata(Image.open(drawn))["seed"]) == (PROMPT, 9, 9)
        assert meta["replica"]  # made by a replica, not in the page's process
        gallery, meta = client.predict(image=handle_file(drawn), scale=4, api_name="/upscale")
        assert Image.open(gallery[0]["image"]).size == (256, 256) and (meta["job"], meta["seed"]) == ("upscale", 9)
        assert meta["replica"]
    finally:
        blocks.close()


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
