"""Style presets (prompt templates from a styles file) on the bundled presets and through the app; style adapters as
before; a reference image refused where the preset has no IP-Adapter; a malformed styles line skipped, not fatal.
The hub presets' styles and reference images are rehearsed in `tests/test_hub_presets.py`."""

from __future__ import annotations

import logging
import re

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from models import Engine
from models.shapes import render
from models.style_presets import SHIPPED, read_styles, style_presets

PROMPT = "a small red star at the top on a blue background"
CONTENT = render(PROMPT, seed=3)


@pytest.fixture(scope="module")
def bundled():
    return Engine()


def test_at_least_a_dozen_styles_ship_each_a_template():
    shipped = read_styles(SHIPPED)
    assert len(shipped) >= 12 and all("{prompt}" in style.prompt for style in shipped.values())
    assert shipped["Watercolor"].apply("a fox", "blurry") == (
        "watercolor painting of a fox, soft washes of colour, paper texture, painterly, artistic",
        "blurry, photo, photorealistic, 3d render, harsh lines",
    )


def test_styles_lists_a_presets_adapters_then_the_style_presets(bundled):
    assert bundled.styles("bundled")[:4] == bundled.adapters("bundled") == ["dotted", "outline", "pixelated", "striped"]
    assert bundled.styles("bundled")[4:] == list(style_presets())
    assert bundled.styles("bundled-fast") == list(style_presets())  # no adapters on the distilled student


@pytest.mark.parametrize("preset", ["bundled", "bundled-fast"])
def test_a_style_preset_redraws_with_its_template(bundled, preset):
    result = bundled.style_transfer(CONTENT, "Pixel art", prompt=PROMPT, preset=preset)
    assert result.images[0].size == (64, 64) and result.metadata["style"] == "Pixel art"
    assert result.metadata["prompt"].startswith(f"pixel art of {PROMPT}, 16-bit")
    assert "blurry" in result.metadata["negative_prompt"] and result.metadata["adapters"] == {}


def test_style_adapters_work_as_before(bundled):
    result = bundled.style_transfer(CONTENT, "striped", preset="bundled")
    assert result.metadata["adapters"] == {"striped": 1.0} and result.metadata["style_image"] is False


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e.style_transfer(CONTENT, style_image=CONTENT), "Preset 'bundled' takes no `style_image`"),
        (lambda e: e.style_transfer(CONTENT, "Vaporwave"),
         "`style` names an unknown adapter 'Vaporwave', and no style preset has that name; available: dotted"),
        (lambda e: e.style_transfer(CONTENT, "striped", preset="bundled-fast"), "offers no style adapters"),
        (lambda e: e.style_transfer(CONTENT, ""), "`style` is empty: pick a style or give a `style_image`"),
        (lambda e: e.style_transfer(CONTENT, "Watercolor", style_weight=9.0), "`style_weight` must be a number in"),
        (lambda e: e.describe(CONTENT, detail="detailed"), "`detail` must be short on preset 'bundled'"),
    ],
)  # fmt: skip
def test_bad_style_requests_are_refused_in_a_sentence(bundled, call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(bundled)


def test_a_malformed_styles_line_is_skipped_and_the_rest_load(tmp_path, monkeypatch, caplog):
    user = tmp_path / "styles.csv"
    user.write_text('name,prompt,negative_prompt\nMine,"{prompt}, in my style",ugly\nbroken,"a {subject} here",\n'
                    'Watercolor,"{prompt}, my watercolor",\n,"{prompt}, nameless",\ntoo,many,columns,here\n')  # fmt: skip
    monkeypatch.setenv("DEPICT_STYLES", str(user))
    with caplog.at_level(logging.WARNING, logger="models.style_presets"):
        styles = style_presets()
    assert styles["Mine"].apply("a cat") == ("a cat, in my style", "ugly")
    assert styles["Watercolor"].prompt == "{prompt}, my watercolor"  # the user's file wins
    assert "broken" not in styles and "too" not in styles and "" not in styles and "Anime" in styles
    assert len(re.findall("skipped", caplog.text)) == 3, caplog.text


def test_style_requests_through_the_app(client, tmp_path):
    CONTENT.save(tmp_path / "content.png")
    picture = handle_file(str(tmp_path / "content.png"))
    with pytest.raises(AppError, match="unknown adapter 'Vaporwave', and no style preset"):
        client.predict(image=picture, style="Vaporwave", api_name="/style_transfer")
    with pytest.raises(AppError, match="takes no `style_image`"):
        client.predict(image=picture, style="Watercolor", style_image=picture, api_name="/style_transfer")
    gallery, meta = client.predict(image=picture, style="Watercolor", prompt="a cat", api_name="/style_transfer")
    assert meta["prompt"].startswith("watercolor painting of a cat") and len(gallery) == 1
