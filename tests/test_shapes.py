"""The shapes world: grammar, renderer and judge."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from models.shapes import (
    PALETTE,
    Attributes,
    agreement,
    all_attributes,
    judge,
    parse,
    random_attributes,
    render,
    render_attributes,
)
from models.shapes.judge import shape_alpha


def test_parse_reads_every_attribute():
    scene = parse("a small red star at the top on a blue background")
    assert scene == Attributes("small", "red", "star", "at the top", "blue")
    assert scene.caption == "a small red star at the top on a blue background"


@pytest.mark.parametrize(
    "caption,message",
    [
        ("a tiny red star at the top on a blue background", "`size` must be one of"),
        ("a small red hexagon at the top on a blue background", "`shape` must be one of"),
        ("a small red star at the top on a red background", "must differ"),
        ("a small red star somewhere on a blue background", "not in the shapes grammar"),
        ("hello", "not in the shapes grammar"),
    ],
)
def test_parse_rejects_text_outside_the_grammar(caption, message):
    with pytest.raises(ValueError, match=message):
        parse(caption)


def test_the_grammar_has_5500_scenes():
    scenes = all_attributes()
    assert len(scenes) == len(set(scenes)) == 2 * 11 * 10 * 5 * 5


def test_render_is_64px_flat_colours_and_deterministic():
    image = render("a large green circle in the center on a white background", seed=3)
    pixels = np.asarray(image)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert tuple(pixels[0, 0]) == PALETTE["white"] and tuple(pixels[32, 32]) == PALETTE["green"]
    assert np.array_equal(pixels, np.asarray(render("a large green circle in the center on a white background", seed=3)))
    assert not np.array_equal(pixels, np.asarray(render("a large green circle in the center on a white background", seed=4)))


@pytest.mark.parametrize(
    "size,position,centre,side",
    [
        ("small", "in the center", (32, 32), (18, 24)),
        ("small", "on the left", (18, 32), (18, 24)),
        ("small", "at the bottom", (32, 46), (18, 24)),
        ("large", "on the right", (40, 32), (36, 44)),
        ("large", "at the top", (32, 24), (36, 44)),
    ],
)
def test_render_places_and_sizes_the_shape(size, position, centre, side):
    for seed in range(10):
        image = render_attributes(Attributes(size, "red", "square", position, "blue"), seed)
        alpha, _, _ = shape_alpha(image)
        ys, xs = np.nonzero(alpha > 0.5)
        width = xs.max() - xs.min() + 1
        assert side[0] - 1 <= width <= side[1] + 1
        assert abs((xs.min() + xs.max() + 1) / 2 - centre[0]) <= 2.5
        assert abs((ys.min() + ys.max() + 1) / 2 - centre[1]) <= 2.5


def degrade(image, rng: random.Random):
    """What a generator's picture looks like: soft edges, a colour shift, pixel noise."""
    from PIL import ImageFilter

    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2))), np.float32)
    shifted = soft + np.array([rng.uniform(-12, 12) for _ in range(3)])
    noisy = shifted + np.random.default_rng(rng.randrange(2**30)).normal(0, 4, soft.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def test_judge_reads_degraded_renders_too():
    rng = random.Random(7)
    scenes = [random_attributes(rng) for _ in range(300)]
    right = sum(all(agreement(s, judge(degrade(render_attributes(s, seed=i), rng))).values()) for i, s in enumerate(scenes))
    assert right >= 294


def test_judge_reads_back_99_percent_of_renders():
    rng = random.Random(123)
    scenes = [random_attributes(rng) for _ in range(1000)]
    right = sum(all(agreement(s, judge(render_attributes(s, seed=i))).values()) for i, s in enumerate(scenes))
    assert right >= 990


def test_every_caption_fits_the_text_encoder_one_token_per_word():
    from models.shapes import vocabulary
    from training.tokenizer import MAX_LENGTH, build_tokenizer

    tokenizer = build_tokenizer(vocabulary())
    assert all(len(tokenizer.tokenize(word)) == 1 for word in vocabulary())
    longest = max(all_attributes(), key=lambda s: len(s.caption.split()))
    assert len(tokenizer(longest.caption).input_ids) == len(longest.caption.split()) + 2 <= MAX_LENGTH
