"""The shapes world's rendering styles, their judge, and the edit instructions the bundled model understands."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import ndimage

from models.shapes import PALETTE, judge, random_attributes, render_attributes
from models.shapes.instructions import Edit, parse_instruction, random_edit
from models.shapes.styles import PLAIN, STYLES, judge_style, render_styled
from training.evaluate import tally


def _scenes(count, seed=0):
    rng = random.Random(seed)
    return [random_attributes(rng) for _ in range(count)]


@pytest.mark.parametrize("style", [PLAIN, *STYLES])
def test_style_judge_reads_each_style_and_the_content_survives(style):
    scenes = _scenes(120, seed=7)
    images = [render_styled(scene, index, style) for index, scene in enumerate(scenes)]
    assert np.mean([judge_style(image) == style for image in images]) >= 0.95  # a small grid-aligned square looks pixelated
    kept = tally((scene, judge(image)) for scene, image in zip(scenes, images))
    assert min(kept["color"], kept["background"], kept["position"], kept["size"]) >= 0.95
    assert kept["shape"] >= (0.95 if style == "pixelated" else 0.98)  # a few pixelated small stars lose their points


def test_styles_keep_the_layout_of_the_plain_render():
    scene = _scenes(1)[0]
    plain = np.asarray(render_attributes(scene, 5))
    for style in STYLES:
        styled = np.asarray(render_styled(scene, 5, style))
        assert (styled == plain).mean() > 0.5, style  # the same background everywhere the shape is not
    with pytest.raises(ValueError, match="Unknown style"):
        render_styled(scene, 0, "watercolour")


def _share_of_color(image, scene) -> np.ndarray:
    """How far each pixel is from the scene's background towards its colour (0 to 1)."""
    back, color = (np.array(PALETTE[name], np.float32) for name in (scene.background, scene.color))
    return (np.asarray(image, np.float32) - back) @ (color - back) / np.sum((color - back) ** 2)


def test_the_outline_is_a_stroke_along_the_inside_of_the_shapes_edge():
    square = np.ones((3, 3), bool)
    for index, scene in enumerate(_scenes(20, seed=3)):
        plain = _share_of_color(render_attributes(scene, index), scene)
        stroke = _share_of_color(render_styled(scene, index, "outline"), scene)
        shape = plain > 0.5
        assert stroke[shape & ~ndimage.binary_erosion(shape)].mean() > 0.6  # the shape's edge is drawn
        assert (stroke <= plain + 0.01).all()  # never beyond the shape
        assert stroke[ndimage.binary_erosion(shape, square, iterations=3)].max() < 0.05  # a 2 px stroke: background inside


@pytest.mark.parametrize(
    "instruction,edit",
    [
        ("make the star green", Edit("color", "green")),
        ("Change the background to yellow.", Edit("background", "yellow")),
        ("turn the circle into a square", Edit("shape", "square")),
        ("make it small", Edit("size", "small")),
        ("make it bigger", Edit("size", "large")),
        ("move it to the left", Edit("position", "on the left")),
        ("please move the cross to the top", Edit("position", "at the top")),
    ],
)
def test_instructions_parse_to_one_edit(instruction, edit):
    assert parse_instruction(instruction) == edit


@pytest.mark.parametrize("instruction", ["make it look like van gogh", "", "make the star greenish", "rotate it"])
def test_instructions_outside_the_world_are_refused_with_the_list(instruction):
    with pytest.raises(ValueError, match="It understands: make the star green"):
        parse_instruction(instruction)


def test_random_edits_round_trip_and_change_exactly_one_attribute():
    rng = random.Random(3)
    for scene in _scenes(500, seed=3):
        instruction, edit = random_edit(scene, rng)
        assert parse_instruction(instruction) == edit
        after = edit.apply(scene)
        changed = [name for name, value in after.as_dict().items() if value != getattr(scene, name)]
        assert changed == [edit.attribute]
