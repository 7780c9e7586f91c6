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


HEADER = b"name,prompt,negative_prompt\n"
GOOD = b'Mine,"{prompt}, in my style",ugly\n'
FILES = [  # what a spreadsheet or another locale saves -> the styles read, and the warnings naming a line
    ("utf-8 bom (Excel)", b"\xef\xbb\xbf" + HEADER + GOOD, ["Mine"], []),
    ("a latin-1 byte", HEADER + b"Caf\xe9,{prompt} at a caf\xe9,\n" + GOOD, ["Mine"], ["line 2 skipped: byte 0xe9 at"]),
    ("a bad byte in a quoted multi-line prompt", HEADER + b'Two,"{prompt},\n\xff here",\n' + GOOD, ["Mine"],
     ["line 3 skipped: byte 0xff"]),
    ("windows line ends", HEADER.replace(b"\n", b"\r\n") + GOOD.replace(b"\n", b"\r\n"), ["Mine"], []),
    ("a field over csv's limit", HEADER + b'Long,"' + b"x" * 200_000 + b'",\n' + GOOD, ["Mine"],
     ["line 2 skipped: field larger than field limit"]),
    ("a header not of styles", b"title;text\n" + GOOD, [], ["line 1 skipped, and with it the file: its header must be"]),
    ("empty", b"", [], []),
    ("a header over csv's limit", b"x" * 200_000 + b"\n" + GOOD, [], ["line 1 skipped, and with it the file"]),
    ("latin-1 header", b"name,prompt,n\xe9gative\n" + GOOD, ["Mine"], []),
]


@pytest.mark.parametrize("name,data,styles,warnings", FILES, ids=[f[0] for f in FILES])
def test_styles_files_from_anywhere_load_what_they_can(tmp_path, caplog, name, data, styles, warnings):
    path = tmp_path / "styles.csv"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="models.style_presets"):
        read = read_styles(path)
    assert list(read) == styles
    assert [message.split(f"styles file {path} ")[1][: len(w)] for message, w in zip(caplog.messages, warnings)] == warnings
    assert len(caplog.messages) == len(warnings), caplog.messages


def test_a_bad_user_styles_file_never_stops_the_app(tmp_path, monkeypatch, caplog):
    user = tmp_path / "styles.csv"
    user.write_bytes(b"\xef\xbb\xbf" + HEADER + b"Caf\xe9,{prompt},\n" + GOOD)
    monkeypatch.setenv("DEPICT_STYLES", str(user))
    styles = style_presets()
    assert "Mine" in styles and "Watercolor" in styles and f"styles file {user} line 2 skipped" in caplog.text
    (tmp_path / "folder.csv").mkdir()
    monkeypatch.setenv("DEPICT_STYLES", str(tmp_path / "folder.csv"))
    assert "Mine" not in style_presets() and "Watercolor" in style_presets()
