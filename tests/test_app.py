"""The app launched on a free local port, every endpoint called through gradio_client."""

from __future__ import annotations

import pytest
from gradio_client import handle_file
from PIL import Image

from models.metadata import read_metadata
from models.shapes import GRAMMAR, render

PROMPT = "a small red star at the top on a blue background"
ENDPOINTS = {"/describe", "/regenerate", "/text_to_image", "/style_transfer", "/inpaint", "/instruct_edit", "/upscale"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    render("a large green circle in the center on a white background", seed=1).save(folder / "picture.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(folder / "mask.png")
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
    gallery, meta = client.predict(image=handle_file(files / "picture.png"), description=PROMPT, structure=1.0,
                                   preset="bundled", api_name="/regenerate")  # fmt: skip
    assert [item["caption"] for item in gallery[:2]] == ["original", "edges followed"] and len(gallery) == 3
    edges = gallery_images(gallery)[1].convert("L")
    assert set(edges.getdata()) <= {0, 255} and meta["structure"] == 1.0 and "structure_model" in meta


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


def test_words_the_bundled_models_do_not_know_still_draw_with_a_warning(client):
    gallery, meta = client.predict(prompt="a cat sleeping on a sofa", preset="bundled", steps=2,
                                   api_name="/text_to_image")  # fmt: skip
    assert gallery_images(gallery)[0].size == (64, 64) and read_metadata(gallery_images(gallery)[0])["warnings"]
    [warning] = meta["warnings"]
    assert all(f"'{word}'" in warning for word in ("cat", "sleeping", "sofa")) and GRAMMAR in warning
    _, meta = client.predict(prompt=PROMPT, preset="bundled", steps=2, api_name="/text_to_image")
    assert "warnings" not in meta
