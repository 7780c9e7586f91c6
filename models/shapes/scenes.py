"""Scenes for scoring and benchmarks: seeded random scenes, and a mask over a rendered scene's shape."""

from __future__ import annotations

import random

from PIL import Image

from .grammar import Attributes, random_attributes
from .render import IMAGE_SIZE, layout


def random_scenes(count: int, seed: int) -> list[Attributes]:
    """`count` random scenes, the same for the same `seed`."""
    rng = random.Random(seed)
    return [random_attributes(rng) for _ in range(count)]


def region_mask(scene: Attributes, seed: int, margin: float = 4.0) -> Image.Image:
    """A mask (255 = repaint) over the shape's bounding box grown by `margin` pixels, as `render_attributes(scene,
    seed)` draws it."""
    cx, cy, side = layout(scene, seed)
    half = side / 2 + margin
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    mask.paste(255, tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half)))
    return mask
