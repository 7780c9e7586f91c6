"""Structure-guided regenerate: the edge map, the bundled ControlNet's effect, its refusals, and its training script."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image

from models import Engine, graphs
from models.presets import BUNDLED_FAST
from models.shapes import judge, random_attributes, render_attributes
from models.shapes.styles import judge_style
from models.structure import edge_map
from training import train_structure
from training.evaluate import box_iou, shape_box, structure_edit


@pytest.fixture(scope="module")
def engine():
    return Engine()


def test_edge_map_sees_the_border_of_two_equally_bright_colours():
    """A grey-level edge detector misses a border between colours of equal brightness; the edge map must not."""
    image = Image.new("RGB", (64, 64), (200, 0, 0))
    image.paste((0, 102, 0), (32, 0, 64, 64))  # about the same luma as the red (0.299 * 200 ~ 0.587 * 102)
    grey = np.asarray(edge_map(image.convert("L").convert("RGB")))
    edges = np.asarray(edge_map(image))
    assert edges.shape == (64, 64, 3) and set(np.unique(edges)) == {0, 255}
    assert not grey.any()
    columns = np.nonzero(edges[:, :, 0].any(axis=0))[0]
    assert set(columns) <= {31, 32} and edges[8:56, 31:33, 0].any(axis=1).all()


def edited_cases(count: int, seed: int):
    rng = random.Random(seed)
    for index in range(count):
        scene = random_attributes(rng)
        yield render_attributes(scene, seed=seed + index), structure_edit(scene, rng), seed + index


def test_structure_keeps_the_place_and_applies_the_edit(engine):
    """On new renders with one attribute edited, the structure-guided picture shows the edit and keeps the shape's
    place better than a fresh one made from the same words."""
    guided, fresh, shown = [], [], 0
    for original, edited, seed in edited_cases(12, seed=70_000):
        result = engine.regenerate(original, edited.caption, structure=1.0, seed=seed)
        image = result.images[0]
        assert result.condition.size == image.size and result.metadata["structure_model"].endswith("structure")
        guided.append(box_iou(shape_box(original), shape_box(image)))
        shown += judge(image) == edited
        plain = engine.regenerate(original, edited.caption, seed=seed).images[0]
        fresh.append(box_iou(shape_box(original), shape_box(plain)))
    assert shown >= 10, shown
    assert np.mean(guided) > np.mean(fresh) + 0.05 and np.mean(guided) > 0.8, (np.mean(guided), np.mean(fresh))


def test_structure_runs_its_unet_and_controlnet_as_graphs(engine):
    """The structure path goes through the speed policy like the others: once built in the background, the traced
    UNet (with the ControlNet's residuals) and the traced ControlNet run, drawing what the modules draw eagerly."""
    original = render_attributes(random_attributes(random.Random(5)), seed=5)
    description = "a large blue square in the center on a white background"
    first = engine.regenerate(original, description, structure=1.0, seed=2)
    assert graphs.wait_for_builds(timeout=300)
    controlnet = graphs.graph_of(engine.load().pipeline("structure").controlnet)
    calls = controlnet.calls
    again = engine.regenerate(original, description, structure=1.0, seed=2)
    assert again.metadata["unet"] == "traced" and controlnet.calls > calls
    difference = np.abs(np.asarray(again.images[0], dtype=int) - np.asarray(first.images[0], dtype=int))
    assert difference.max() <= 2, difference.max()


def test_text_to_image_follows_a_structure_image(engine):
    original = render_attributes(random_attributes(random.Random(3)), seed=3)
    result = engine.text_to_image("a large red square in the center on a white background", structure_image=original,
                                  structure=1.5, seed=1)  # fmt: skip
    assert result.metadata["structure"] == 1.5 and result.condition is not None
    assert "structure_image" not in result.metadata  # pictures stay out of the parameters
    unguided = engine.text_to_image("a large red square in the center on a white background", seed=1)
    assert unguided.condition is None and "structure_model" not in unguided.metadata


def test_style_transfer_follows_the_contents_edges(engine):
    """`structure` in style transfer: the content's edge map guides the redrawing beside its pixels (ControlNet
    img2img); the style is still drawn and the scene kept."""
    scene = random_attributes(random.Random(11))
    content = render_attributes(scene, seed=11)
    guided = engine.style_transfer(content, "outline", strength=0.9, structure=1.0, seed=4)
    plain = engine.style_transfer(content, "outline", strength=0.9, seed=4)
    assert guided.metadata["structure_model"].endswith("structure") and "structure_model" not in plain.metadata
    assert np.array_equal(np.asarray(guided.condition), np.asarray(edge_map(content)))
    assert np.abs(np.asarray(guided.images[0], dtype=int) - np.asarray(plain.images[0], dtype=int)).mean() > 1
    assert judge(guided.images[0]) == scene and judge_style(guided.images[0]) == "outline"
    with pytest.raises(ValueError, match=r"`structure` must be a number in \[0.0, 2.0\]"):
        engine.style_transfer(content, "outline", structure=-1)


@pytest.mark.parametrize(("options", "message"), [
    ({"structure": 2.5}, r"`structure` must be a number in \[0.0, 2.0\], got 2.5"),
    ({"structure": "strong"}, r"`structure` must be a number"),
    ({"structure": 1.0, "keep_layout": 0.5}, "`structure` and `keep_layout` are two ways of keeping the original"),
    ({"structure": 1.0, "preset": BUNDLED_FAST}, f"preset '{BUNDLED_FAST}' has none: the bundled ControlNet"),
])  # fmt: skip
def test_bad_structure_requests_are_refused_with_a_sentence(engine, options, message):
    with pytest.raises(ValueError, match=message):
        engine.regenerate(Image.new("RGB", (64, 64)), "a small red circle in the center", **options)


def test_a_bad_structure_image_names_its_argument(engine):
    with pytest.raises(ValueError, match="structure_image"):
        engine.text_to_image("a red circle", structure_image=b"not a picture")


def test_structure_script_trains_resumes_and_saves_a_controlnet(tmp_path):
    out, work = tmp_path / "structure", tmp_path / "work"
    facts = train_structure.main(["--tiny", "--out", str(out), "--work-dir", str(work)])
    assert json.loads((work / "checkpoint-2" / "state.json").read_text())["step"] == 2
    controlnet = ControlNetModel.from_pretrained(out)
    assert tuple(controlnet.config.conditioning_embedding_out_channels) == train_structure.CONDITIONING_CHANNELS
    assert "edited regenerations" in (out / "README.md").read_text()
    assert all(0 <= facts[key]["all"] <= 1 for key in facts if key.startswith("edited regenerations"))
    train_structure.main(["--tiny", "--out", str(out), "--work-dir", str(work)])  # resumes: nothing left to do
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint-1", "checkpoint-2"]
