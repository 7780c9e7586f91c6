"""Scoring models of the shapes world with its judge: the share of attributes read back right."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image

from models.metrics import psnr
from models.shapes.grammar import ATTRIBUTE_NAMES, COLORS, SHAPES, Attributes, parse, random_attributes
from models.shapes.instructions import random_edit
from models.shapes.judge import agreement, judge, shape_alpha
from models.shapes.render import render_attributes
from models.shapes.scenes import random_scenes, region_mask
from models.shapes.styles import STYLES, judge_style


def tally(pairs: Iterable[tuple[Attributes, Attributes | None]]) -> dict[str, float]:
    """(expected, found) pairs -> share right per attribute and for all five at once (None found: all wrong)."""
    hits = {name: 0 for name in (*ATTRIBUTE_NAMES, "all")}
    count = 0
    for expected, found in pairs:
        verdict = agreement(expected, found) if found is not None else {name: False for name in ATTRIBUTE_NAMES}
        for name, ok in verdict.items():
            hits[name] += ok
        hits["all"] += all(verdict.values())
        count += 1
    return {name: round(value / max(count, 1), 3) for name, value in hits.items()}


def score_generator(generate: Callable[[list[str], int], list[Image.Image]], count: int, seed: int,
                    chunk: int = 25) -> dict[str, float]:  # fmt: skip
    """Judge images made by `generate(captions, seed)` for `count` random captions."""
    scenes = random_scenes(count, seed)
    pairs = []
    for start in range(0, count, chunk):
        batch = scenes[start : start + chunk]
        images = generate([s.caption for s in batch], seed + start)
        pairs += [(scene, judge(image)) for scene, image in zip(batch, images)]
    return tally(pairs)


def score_text_to_image(engine, count: int, seed: int = 0, **options) -> dict[str, float]:
    """Text -> image through the engine: does the judge read each caption back?"""

    def generate(captions, chunk_seed):
        return [engine.text_to_image(c, seed=chunk_seed + i, **options).images[0] for i, c in enumerate(captions)]

    return score_generator(generate, count, seed)


def score_describe(engine, count: int, seed: int = 0) -> dict[str, float]:
    """Describe on fresh renders: exact caption match, and per attribute (captions parsed by the grammar)."""
    pairs, exact = [], 0
    for index, scene in enumerate(random_scenes(count, seed)):
        text = engine.describe(render_attributes(scene, seed=seed + index))
        exact += text == scene.caption
        try:
            pairs.append((scene, parse(text)))
        except ValueError:  # not even in the grammar: every attribute wrong
            pairs.append((scene, None))
    return {"exact": round(exact / max(count, 1), 3), **tally(pairs)}


def score_regenerate(engine, count: int, seed: int = 0, keep_layout: float = 0.0, preset: str | None = None,
                     **options) -> dict[str, float]:  # fmt: skip
    """Describe -> regenerate on fresh renders (with `preset`'s models and the engine `options`): attributes the
    regenerated image keeps."""
    pairs = []
    for index, scene in enumerate(random_scenes(count, seed)):
        original = render_attributes(scene, seed=seed + index)
        description = engine.describe(original, preset=preset)
        result = engine.regenerate(original, description, keep_layout=keep_layout, seed=seed + index, preset=preset,
                                   **options)  # fmt: skip
        pairs.append((scene, judge(result.images[0])))
    return tally(pairs)


def score_style_transfer(transfer: Callable[[Image.Image, str, int], Image.Image], style: str, count: int,
                         seed: int = 0) -> dict[str, float]:  # fmt: skip
    """`transfer(content, caption, seed)` on fresh plain renders: is the style judged right, is the content kept?

    Returns the share with the style right, each content attribute kept (shape, colour, background; size and
    position too), `all`: style right with shape, colour and background kept, and `box_iou`: how well the shape
    keeps its place (mean intersection over union of the shape's boxes).
    """
    pairs, styled, both, overlap = [], 0, 0, 0.0
    for index, scene in enumerate(random_scenes(count, seed)):
        content = render_attributes(scene, seed=seed + index)
        image = transfer(content, scene.caption, seed + index)
        found = judge(image)
        right = judge_style(image) == style
        kept = all(getattr(found, name) == getattr(scene, name) for name in ("shape", "color", "background"))
        styled += right
        both += right and kept
        overlap += box_iou(shape_box(content), shape_box(image))
        pairs.append((scene, found))
    kept_shares = {name: share for name, share in tally(pairs).items() if name != "all"}
    return {"style": round(styled / max(count, 1), 3), **kept_shares, "all": round(both / max(count, 1), 3),
            "box_iou": round(overlap / max(count, 1), 3)}


def score_instruct_edit(edit: Callable[[Image.Image, str, int], Image.Image], count: int,
                        seed: int = 0) -> dict[str, float]:  # fmt: skip
    """`edit(image, instruction, seed)` on fresh renders with random one-attribute instructions.

    Returns, per attribute, the share judged equal to the expected scene, `changed` (the requested attribute
    has its new value) and `all` (the requested change made and every other attribute kept).
    """
    rng = random.Random(seed)
    pairs, changed = [], 0
    for index in range(count):
        scene = random_attributes(rng)
        instruction, request = random_edit(scene, rng)
        found = judge(edit(render_attributes(scene, seed=seed + index), instruction, seed + index))
        changed += getattr(found, request.attribute) == request.value
        pairs.append((request.apply(scene), found))
    return {**tally(pairs), "changed": round(changed / max(count, 1), 3)}


def score_inpaint(inpaint: Callable[[Image.Image, Image.Image, str, int], Image.Image], count: int,
                  seed: int = 0) -> dict[str, float]:  # fmt: skip
    """`inpaint(image, mask, caption, seed)`: a mask over the shape, a caption with a new shape and colour.

    Returns the judge's shares against the new caption (`all`: the region shows what the prompt says) and
    `psnr_outside`: the mean PSNR of the pixels outside the mask against the original (capped at 100 dB).
    """
    rng = random.Random(seed)
    pairs, outside = [], []
    for index in range(count):
        scene = random_attributes(rng)
        colors = [c for c in COLORS if c not in (scene.color, scene.background)]
        target = scene.replace(color=rng.choice(colors), shape=rng.choice([s for s in SHAPES if s != scene.shape]))
        original = render_attributes(scene, seed=seed + index)
        mask = region_mask(scene, seed + index)
        result = inpaint(original, mask, target.caption, seed + index)
        pairs.append((target, judge(result)))
        outside.append(psnr(original, result, mask=np.asarray(mask) == 0))
    return {**tally(pairs), "psnr_outside": round(float(np.mean(outside)), 2)}


STRUCTURE_EDITS = ("color", "background", "shape")  # what a structure-guided regenerate may change


def structure_edit(scene: Attributes, rng: random.Random) -> Attributes:
    """`scene` with one of its colour, background or shape changed to another allowed value."""
    attribute = rng.choice(STRUCTURE_EDITS)
    if attribute == "shape":
        return scene.replace(shape=rng.choice([s for s in SHAPES if s != scene.shape]))
    taken = {scene.color, scene.background}
    return scene.replace(**{attribute: rng.choice([c for c in COLORS if c not in taken])})


def score_structure(regenerate: Callable[[Image.Image, str, int], Image.Image], count: int,
                    seed: int = 0) -> dict[str, float]:  # fmt: skip
    """`regenerate(original, description, seed)` on fresh renders, the description with one attribute (colour,
    background or shape) changed: the judge's shares against the edited scene (`all`: the change applied and every
    other attribute kept), `changed` (the edited attribute has its new value) and `box_iou`, the mean overlap of the
    shape's bounding box with the original's (the judge reads size and position in classes; this reads the place)."""
    rng = random.Random(seed)
    pairs, changed, overlaps = [], 0, []
    for index in range(count):
        scene = random_attributes(rng)
        edited = structure_edit(scene, rng)
        original = render_attributes(scene, seed=seed + index)
        image = regenerate(original, edited.caption, seed + index)
        found = judge(image)
        attribute = next(name for name in STRUCTURE_EDITS if getattr(scene, name) != getattr(edited, name))
        changed += getattr(found, attribute) == getattr(edited, attribute)
        pairs.append((edited, found))
        overlaps.append(box_iou(shape_box(original), shape_box(image)))
    return {**tally(pairs), "changed": round(changed / max(count, 1), 3), "box_iou": round(float(np.mean(overlaps)), 3)}


def shape_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box (x0, y0, x1, y1) of the pixels the judge counts as the shape; None when there are none."""
    ys, xs = np.nonzero(shape_alpha(image)[0] > 0.5)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else None


def box_iou(a: tuple | None, b: tuple | None) -> float:
    """Intersection over union of two boxes (0 when either is missing)."""
    if a is None or b is None:
        return 0.0
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def engine_scores(engine, count: int, seed: int = 0) -> dict[str, Callable[[], dict[str, float]]]:
    """Every job of the bundled preset scored through `engine`, by name (each called when wanted)."""

    def style(name):
        transfer = lambda content, caption, s: engine.style_transfer(content, style=name, seed=s).images[0]  # noqa: E731
        return lambda: score_style_transfer(transfer, name, count, seed)

    return {
        "text_to_image": lambda: score_text_to_image(engine, count, seed),
        "describe": lambda: score_describe(engine, count, seed),
        "regenerate": lambda: score_regenerate(engine, count, seed),
        **{f"style_{name}": style(name) for name in STYLES if name in engine.adapters()},
        "instruct_edit": lambda: score_instruct_edit(
            lambda image, instruction, s: engine.instruct_edit(image, instruction, seed=s).images[0], count, seed),
        "inpaint": lambda: score_inpaint(
            lambda image, mask, caption, s: engine.inpaint(image, mask, caption, seed=s).images[0], count, seed),
    }  # fmt: skip
