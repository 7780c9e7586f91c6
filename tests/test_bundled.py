"""The bundled family, judged by the shapes world: loose floors on small samples (bench/quality.py has the real figures)."""

from __future__ import annotations

import numpy as np
import pytest

from models import Engine
from models.presets import DEFAULT_PRESET
from models.shapes import render
from models.shapes import parse
from models.shapes.evaluate import score_describe, score_regenerate, score_text_to_image

PROMPT = "a large yellow circle in the center on a purple background"


@pytest.fixture(scope="module")
def bundled():
    return Engine()


def test_bundled_is_the_default_preset_and_available_offline(bundled):
    assert bundled.default_preset == DEFAULT_PRESET == "bundled"
    listed = {p["name"]: p for p in bundled.presets()}
    assert listed["bundled"]["available"] and listed["bundled"]["default"]


def test_text_to_image_follows_the_caption(bundled):
    scores = score_text_to_image(bundled, count=40, seed=500)
    assert scores["all"] >= 0.7, scores
    assert min(scores[name] for name in ("size", "color", "shape", "position", "background")) >= 0.8, scores


def test_guidance_and_negative_prompt_change_the_image(bundled):
    base = np.asarray(bundled.text_to_image(PROMPT, seed=1).images[0], dtype=int)
    unguided = np.asarray(bundled.text_to_image(PROMPT, seed=1, guidance=1.0).images[0], dtype=int)
    negative = np.asarray(bundled.text_to_image(PROMPT, seed=1, negative_prompt="a purple background").images[0], dtype=int)
    assert np.abs(base - unguided).mean() > 1 and np.abs(base - negative).mean() > 1


def test_regenerate_keeping_layout_stays_closer_to_the_original(bundled):
    original = render(PROMPT, seed=2)
    kept = bundled.regenerate(original, PROMPT, keep_layout=0.8, seed=3).metadata["fidelity"]
    fresh = bundled.regenerate(original, PROMPT, keep_layout=0.0, seed=3).metadata["fidelity"]
    assert kept["psnr"] > fresh["psnr"] and kept["all_kept"]


def test_describe_writes_the_caption_of_a_render(bundled):
    scores = score_describe(bundled, count=40, seed=600)
    assert scores["exact"] >= 0.8, scores
    assert parse(bundled.describe(render(PROMPT, seed=4))).shape == "circle"


def test_describe_then_regenerate_keeps_the_scene(bundled):
    scores = score_regenerate(bundled, count=20, seed=700)
    assert scores["all"] >= 0.6, scores
