"""`bundled-fast`, the distilled student: it shares the teacher's modules, runs its jobs in one or two passes, and
refuses the jobs it does not offer in one sentence (bench/compress.py has the real figures)."""

from __future__ import annotations

import pytest

from models import Engine
from models.shapes import parse, region_mask, render
from training.evaluate import score_regenerate, score_text_to_image

FAST = "bundled-fast"
PROMPT = "a small red star at the top on a blue background"


@pytest.fixture(scope="module")
def bundled():
    return Engine()


def test_fast_preset_shares_the_teachers_autoencoder_text_encoder_and_captioner(bundled):
    fast, teacher = bundled.load(FAST), bundled.load("bundled")
    assert fast.base.vae is teacher.base.vae and fast.base.text_encoder is teacher.base.text_encoder
    assert fast.pipeline("captioner") is teacher.pipeline("captioner")
    assert fast.base.unet is not teacher.base.unet and fast.lock is teacher.lock
    assert type(fast.base.scheduler).__name__ == "LCMScheduler"


def test_fast_preset_draws_the_caption_in_one_pass(bundled):
    result = bundled.text_to_image(PROMPT, preset=FAST)
    assert result.metadata["steps"] == 1 and result.metadata["scheduler"] == "LCMScheduler"
    scores = score_text_to_image(bundled, count=40, seed=700, preset=FAST)
    assert scores["all"] >= 0.8, scores


def test_describe_regenerate_and_inpaint_run_on_the_fast_preset(bundled):
    original = render(PROMPT, seed=3)
    assert bundled.describe(original, preset=FAST) == bundled.describe(original, preset="bundled")
    kept = bundled.regenerate(original, PROMPT, preset=FAST, keep_layout=0.5)
    assert kept.images[0].size == (64, 64) and kept.metadata["fidelity"]["psnr"] > 15
    mask = region_mask(parse(PROMPT), 3)
    assert bundled.inpaint(original, mask, "a small green circle at the top on a blue background", preset=FAST).images


def test_regenerate_on_the_fast_preset_keeps_the_scene(bundled):
    assert score_regenerate(bundled, count=20, seed=900, preset=FAST)["all"] >= 0.75


@pytest.mark.parametrize(
    "job, message",
    [
        (lambda e: e.style_transfer(render(PROMPT), "striped", preset=FAST), "offers no style adapters"),
        (lambda e: e.instruct_edit(render(PROMPT), "make the star green", preset=FAST), "no instruction-editing"),
        (lambda e: e.text_to_image(PROMPT, preset=FAST, scheduler="dpm++"), "`scheduler` must be one of lcm"),
        (lambda e: e.text_to_image(PROMPT, preset=FAST, adapters={"striped": 1.0}), "striped"),
    ],
)
def test_jobs_the_fast_preset_does_not_offer_are_refused_in_a_sentence(bundled, job, message):
    with pytest.raises(ValueError, match=message):
        job(bundled)
    assert bundled.text_to_image(PROMPT, preset=FAST).images  # and it keeps serving


def test_fast_preset_offers_no_adapters_but_the_teacher_keeps_its_styles(bundled):
    assert bundled.adapters(FAST) == [] and "striped" in bundled.adapters("bundled")
