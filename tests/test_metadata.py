"""Parameters in PNGs: our JSON chunk, A1111's `parameters` text both ways, and restoring widgets from them."""

from __future__ import annotations

from PIL import Image, PngImagePlugin

from demo.load_settings import widget_value
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
