"""Parameters in PNGs: our JSON chunk, A1111's `parameters` text both ways, and restoring widgets from them."""

from __future__ import annotations

import time

import gradio as gr
import pytest
from PIL import Image, PngImagePlugin

from demo.load_settings import read_settings, widget_value
from models.metadata import a1111_text, parse_a1111, read_metadata, save_png

META = {"job": "text_to_image", "prompt": "a small red star at the top on a blue background", "negative_prompt": "blurry",
        "steps": 8, "guidance": 4.0, "seed": 3, "width": 64, "height": 64, "scheduler": "dpm++", "preset": "bundled",
        "adapters": {"warm": 0.5}}  # fmt: skip

A1111_SAMPLE = (
    "masterpiece, a cat on a sofa, (detailed:1.2)\n"
    "Negative prompt: lowres, bad anatomy\n"
    'Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567, Size: 512x768, Model hash: abc123, '
    'Model: sd15, Lora hashes: "warm: 0a1b", Version: v1.9.4'
)


def test_png_round_trip_keeps_every_parameter(tmp_path):
    path = save_png(Image.new("RGB", (64, 64)), META, tmp_path / "out.png")
    assert read_metadata(path) == META
    assert Image.open(path).text["parameters"] == a1111_text(META)


def test_our_a1111_text_reads_back():
    parsed = parse_a1111(a1111_text(META))
    for key in ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "scheduler", "preset"):
        assert parsed[key] == META[key], key


def test_a1111_own_text_is_parsed(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_SAMPLE)
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    meta = read_metadata(path)
    assert meta["prompt"] == "masterpiece, a cat on a sofa, (detailed:1.2)"
    assert meta["negative_prompt"] == "lowres, bad anatomy"
    assert (meta["steps"], meta["guidance"], meta["seed"], meta["width"], meta["height"]) == (20, 7.0, 1234567, 512, 768)
    assert widget_value("scheduler", meta["scheduler"], []) == "dpm++ karras"


def test_png_without_parameters_has_no_metadata(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") == {}


def test_widget_values():
    assert widget_value("adapters", {"warm": 0.5, "cool": 1.0}, []) == "warm:0.5, cool:1"
    assert widget_value("scheduler", "DPMSolverMultistepScheduler", []) == ""
    assert widget_value("preset", "bundled", ["bundled"]) == "bundled"
    assert widget_value("preset", "../etc", ["bundled"]) is None


def png_with_parameters(path, text: str):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (64, 64)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("spaces", [1_000, 20_000])
def test_a_settings_line_of_spaces_parses_at_once(tmp_path, spaces):
    """The old pattern took 3 s on 1,000 spaces (hours on 20,000), holding the GIL: the whole server froze."""
    path = png_with_parameters(tmp_path / "slow.png", "a red star\nSteps: 1, " + " " * spaces + "x")
    started = time.perf_counter()
    meta = read_metadata(path)
    assert time.perf_counter() - started < 0.2
    assert meta == {"prompt": "a red star", "negative_prompt": "", "steps": 1}


ADVERSARIAL = {"many pairs": "a\nSteps: " + ", Steps: " * 7_000, "quotes": "a\nSteps: 1, " + '"' * 60_000,
               "colons": "a\nSteps: 1, " + "a:" * 30_000, "escapes": "a\nSteps: 1, Lora: " + '"\\' * 30_000}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL)
def test_adversarial_settings_lines_stay_fast(text):
    started = time.perf_counter()
    parse_a1111(text)
    assert time.perf_counter() - started < 0.2


SETTINGS = [  # a settings line -> what it restores
    ('Steps: 20, Sampler: Euler a, Lora hashes: "a: 1, b: 2", Seed: 5', {"steps": 20, "scheduler": "Euler a", "seed": 5}),
    ("Steps: lots, Seed: 7, Size: 512xbig", {"seed": 7, "width": 512}),  # values that are not numbers are dropped
    ("Steps: 3, junk without a colon, CFG scale: 2.5", {"steps": 3, "guidance": 2.5}),
    ('Steps: 3, Model: "sd, \\"15\\"", Seed: 1', {"steps": 3, "preset": 'sd, "15"', "seed": 1}),
    ('Steps: 3, Model: "unterminated, Seed: 1', {"steps": 3, "preset": '"unterminated', "seed": 1}),
]


@pytest.mark.parametrize("line,expected", SETTINGS, ids=[line[:24] for line, _ in SETTINGS])
def test_settings_lines(line, expected):
    meta = parse_a1111(f"a cat\n{line}")
    assert {k: v for k, v in meta.items() if k not in ("prompt", "negative_prompt")} == expected


@pytest.mark.parametrize(
    "key,text,message",
    [("parameters", "a cat\nSteps: 1, " + "x" * 70_000, r"`parameters` text is 70,016 characters, more than the 65,536"),
     ("depict", "{" * 70_000, r"`depict` text is 70,000 characters"),
     ("depict", "[" * 60_000, r"`depict` text is not valid JSON"),
     ("depict", "{not json", r"`depict` text is not valid JSON"),
     ("depict", "[1, 2]", r"`depict` text must be a JSON object, got list")],
    ids=["long parameters", "long json", "deep json", "bad json", "json list"],
)  # fmt: skip
def test_unreadable_parameter_text_is_refused_in_a_sentence(tmp_path, key, text, message):
    info = PngImagePlugin.PngInfo()
    info.add_text(key, text)
    Image.new("RGB", (8, 8)).save(tmp_path / "odd.png", pnginfo=info)
    with pytest.raises(ValueError, match=message):
        read_metadata(tmp_path / "odd.png")


def test_load_settings_shows_the_sentence(tmp_path):
    path = png_with_parameters(tmp_path / "long.png", "a cat\nSteps: 1, " + "x" * 70_000)
    with pytest.raises(gr.Error, match="`parameters` text is 70,016 characters"):
        read_settings(str(path))
