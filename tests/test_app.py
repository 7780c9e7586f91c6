"""The app launched on a free local port, every endpoint called through gradio_client."""

from __future__ import annotations

import socket

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from models.metadata import read_metadata
from models.shapes import render

PROMPT = "a small red star at the top on a blue background"
ENDPOINTS = {"/describe", "/regenerate", "/text_to_image", "/style_transfer", "/inpaint", "/instruct_edit"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_preset, engine):
    args = app.parse_args(["--port", str(free_port()), "--preset", str(tiny_preset)])
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    yield url
    blocks.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    render("a large green circle in the center on a white background", seed=1).save(folder / "picture.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(folder / "mask.png")
    (folder / "not_an_image.png").write_bytes(b"this is text, not a PNG")
    return folder


def gallery_images(gallery) -> list[Image.Image]:
    return [Image.open(item["image"]) for item in gallery]


def test_every_endpoint_is_named(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_text_to_image_returns_pngs_with_parameters(client):
    gallery, meta = client.predict(prompt=PROMPT, seed=7, num_images=2, api_name="/text_to_image")
    images = gallery_images(gallery)
    assert [im.format for im in images] == ["PNG", "PNG"] and images[0].size == (64, 64)
    stored = read_metadata(images[1])
    assert stored["prompt"] == PROMPT and stored["seed"] == 8 and meta["seeds"] == [7, 8]


def test_describe_and_regenerate(client, files):
    description = client.predict(image=handle_file(files / "picture.png"), api_name="/describe")
    assert isinstance(description, str)
    gallery, meta = client.predict(image=handle_file(files / "picture.png"), description=PROMPT, keep_layout=0.5,
                                   api_name="/regenerate")  # fmt: skip
    assert len(gallery) == 2 and gallery[0]["caption"] == "original"
    assert {"psnr", "ssim"} <= set(meta["fidelity"])


def test_style_transfer(client, files):
    gallery, meta = client.predict(image=handle_file(files / "picture.png"), style="warm", prompt=PROMPT,
                                   api_name="/style_transfer")  # fmt: skip
    assert meta["adapters"] == {"warm": 1.0} and gallery_images(gallery)[0].size == (64, 64)


def test_inpaint_and_instruct_edit(client, files):
    gallery, meta = client.predict(image=handle_file(files / "picture.png"), mask=handle_file(files / "mask.png"),
                                   prompt=PROMPT, api_name="/inpaint")  # fmt: skip
    assert meta["job"] == "inpaint" and len(gallery) == 1
    gallery, meta = client.predict(image=handle_file(files / "picture.png"), instruction="make the circle red",
                                   api_name="/instruct_edit")  # fmt: skip
    assert meta["job"] == "instruct_edit"
    assert [read_metadata(im)["job"] for im in gallery_images(gallery)] == ["instruct_edit", "inpaint"]  # history


BAD_REQUESTS = [
    ("/text_to_image", {"prompt": ""}, "`prompt` is empty"),
    ("/text_to_image", {"prompt": PROMPT, "preset": "no-such-preset"}, "no-such-preset"),
    ("/text_to_image", {"prompt": PROMPT, "width": 4096, "height": 4096}, "4096 is greater than maximum value 1024"),
    ("/text_to_image", {"prompt": PROMPT, "adapters": "../../etc/passwd:1"}, "unknown adapter"),
    ("/text_to_image", {"prompt": PROMPT, "adapters": "warm:lots"}, "must be a number"),
    ("/describe", {"image": None}, "`image` is required"),
    ("/describe", {"image": "FILE:not_an_image.png"}, "cannot identify image file|not a readable image"),
    ("/style_transfer", {"image": "FILE:picture.png", "style": "missing"}, "unknown adapter 'missing'"),
]


@pytest.mark.parametrize("endpoint,kwargs,message", BAD_REQUESTS, ids=[m for _, _, m in BAD_REQUESTS])
def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(client, files, endpoint, kwargs, message):
    kwargs = {k: handle_file(files / v[5:]) if isinstance(v, str) and v.startswith("FILE:") else v
              for k, v in kwargs.items()}  # fmt: skip
    with pytest.raises(AppError, match=message):
        client.predict(**kwargs, api_name=endpoint)
    gallery, _ = client.predict(prompt=PROMPT, api_name="/text_to_image")
    assert len(gallery) >= 1
