"""The bundled family, judged by the shapes world: loose floors on small samples (bench/quality.py has the real figures)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from models import Engine
from models.presets import BUNDLED_DIR, DEFAULT_PRESET
from models.shapes import parse, render
from models.shapes.styles import STYLES
from training.evaluate import (
    score_describe,
    score_inpaint,
    score_instruct_edit,
    score_regenerate,
    score_style_transfer,
    score_text_to_image,
)

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


@pytest.mark.parametrize("scheduler", ["euler", "euler a", "ddim", "unipc", "dpm++", "dpm++ karras"])
def test_every_sampler_draws_the_caption(bundled, scheduler):
    scores = score_text_to_image(bundled, count=6, seed=700, scheduler=scheduler)
    assert scores["all"] >= 0.5, scores


def test_regenerate_keeping_layout_stays_closer_to_the_original(bundled):
    original = render(PROMPT, seed=2)
    kept = bundled.regenerate(original, PROMPT, keep_layout=0.8, seed=3).metadata["fidelity"]
    fresh = bundled.regenerate(original, PROMPT, keep_layout=0.0, seed=3).metadata["fidelity"]
    assert kept["psnr"] > fresh["psnr"] and kept["all_kept"]
    assert set(kept["attributes_kept"]) == {"size", "color", "shape", "position", "background"}


def test_describe_writes_the_caption_of_a_render(bundled):
    scores = score_describe(bundled, count=40, seed=600)
    assert scores["exact"] >= 0.8, scores
    assert parse(bundled.describe(render(PROMPT, seed=4))).shape == "circle"


def test_describe_then_regenerate_keeps_the_scene(bundled):
    scores = score_regenerate(bundled, count=20, seed=700)
    assert scores["all"] >= 0.6, scores


@pytest.mark.parametrize("style", STYLES)
def test_style_transfer_draws_the_style_and_keeps_the_scene(bundled, style):
    # loose floors (bench/quality.py has the real figures on 300 transfers)
    transfer = lambda content, caption, seed: bundled.style_transfer(content, style=style, seed=seed).images[0]  # noqa: E731
    scores = score_style_transfer(transfer, style, count=20, seed=800)
    assert scores["style"] >= 0.5 and min(scores["color"], scores["shape"]) >= 0.6, scores
    assert min(scores["background"], scores["position"]) >= 0.8, scores


def test_two_styles_at_once_differ_from_each_alone(bundled):
    content = render(PROMPT, seed=5)

    def styled(style, weight, adapters):
        image = bundled.style_transfer(content, style=style, style_weight=weight, adapters=adapters, prompt=PROMPT, seed=5)
        return np.asarray(image.images[0], dtype=int)

    both = styled("striped", 0.5, {"outline": 0.5})
    for alone in (styled("striped", 1.0, {}), styled("outline", 1.0, {})):
        assert np.abs(both - alone).mean() > 1


def test_style_decoder_is_used_only_by_its_adapter(bundled):
    """A style's decoder LoRA decodes that style's requests; other jobs, sharing the VAE, stay as they were."""
    content = render(PROMPT, seed=7)
    before = (bundled.text_to_image(PROMPT, seed=7), bundled.instruct_edit(content, "make the circle red", seed=7))
    styled = bundled.style_transfer(content, style="striped", prompt=PROMPT, seed=7)
    after = (bundled.text_to_image(PROMPT, seed=7), bundled.instruct_edit(content, "make the circle red", seed=7))
    assert styled.metadata["decoder"] == "adapters" and before[0].metadata["decoder"] == "full"
    for earlier, later in zip(before, after):
        assert np.array_equal(np.asarray(earlier.images[0]), np.asarray(later.images[0]))


def test_switching_styles_reloads_nothing(tmp_path):
    folder = shutil.copytree(BUNDLED_DIR, tmp_path / "bundled")
    engine = Engine(preset=str(folder))
    content = render(PROMPT, seed=6)

    def run(style):
        return np.asarray(engine.style_transfer(content, style=style, prompt=PROMPT, seed=6).images[0])

    first = {style: run(style) for style in STYLES}
    for path in (folder / "styles").glob("*.safetensors"):
        path.write_bytes(b"not read")  # still listed, but a reload would fail now
    for style in (*STYLES[::-1], *STYLES):
        assert np.array_equal(run(style), first[style]), style


def test_instruction_edit_changes_what_was_asked(bundled):
    edit = lambda image, instruction, seed: bundled.instruct_edit(image, instruction, seed=seed).images[0]  # noqa: E731
    scores = score_instruct_edit(edit, count=20, seed=900)
    assert scores["all"] >= 0.6 and scores["changed"] >= 0.7, scores


def test_instructions_outside_the_world_are_refused(bundled):
    with pytest.raises(ValueError, match="It understands: make the star green"):
        bundled.instruct_edit(render(PROMPT), "make it look like a painting")
    with pytest.raises(ValueError, match="does not fit the picture"):  # the circle is yellow on purple already
        bundled.instruct_edit(render(PROMPT), "make the circle purple")


def test_inpainting_repaints_the_mask_and_keeps_the_rest(bundled):
    inpaint = lambda image, mask, caption, seed: bundled.inpaint(image, mask, caption, seed=seed).images[0]  # noqa: E731
    scores = score_inpaint(inpaint, count=20, seed=1100)
    assert scores["all"] >= 0.6 and scores["psnr_outside"] >= 30, scores
