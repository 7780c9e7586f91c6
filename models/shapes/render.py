"""The shapes world's renderer: a caption and a seed give a 64x64 anti-aliased image."""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from .grammar import PALETTE, Attributes, parse

IMAGE_SIZE = 64
_SUPERSAMPLE = 4
_SIDE = {"small": (18, 24), "large": (36, 44)}
_OFFSET = {"small": 14, "large": 8}
_DIRECTION = {
    "in the center": (0, 0),
    "on the left": (-1, 0),
    "on the right": (1, 0),
    "at the top": (0, -1),
    "at the bottom": (0, 1),
}
_JITTER = 2.0
STAR_INNER_RATIO = 0.4


def layout(attributes: Attributes, seed: int) -> tuple[float, float, float]:
    """The shape's bounding-box centre (x, y) and side in pixels for this seed."""
    rng = random.Random(seed)
    low, high = _SIDE[attributes.size]
    side = rng.uniform(low, high)
    dx, dy = _DIRECTION[attributes.position]
    offset = _OFFSET[attributes.size]
    cx = IMAGE_SIZE / 2 + dx * offset + rng.uniform(-_JITTER, _JITTER)
    cy = IMAGE_SIZE / 2 + dy * offset + rng.uniform(-_JITTER, _JITTER)
    return cx, cy, side


def shape_polygon(shape: str, cx: float, cy: float, side: float) -> list[tuple[float, float]] | None:
    """The outline of a polygonal shape (None for the circle, drawn as an ellipse)."""
    h = side / 2
    if shape == "circle":
        return None
    if shape == "square":
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = h if k % 2 == 0 else h * STAR_INNER_RATIO
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "cross":
        a = side / 6  # half the arm width: arms are a third of the side wide
        return [
            (cx - a, cy - h), (cx + a, cy - h), (cx + a, cy - a), (cx + h, cy - a),
            (cx + h, cy + a), (cx + a, cy + a), (cx + a, cy + h), (cx - a, cy + h),
            (cx - a, cy + a), (cx - h, cy + a), (cx - h, cy - a), (cx - a, cy - a),
        ]  # fmt: skip
    raise ValueError(f"Unknown shape {shape!r}.")


def render_attributes(attributes: Attributes, seed: int = 0) -> Image.Image:
    """Render a scene: flat colours, edges anti-aliased by 4x supersampling."""
    cx, cy, side = layout(attributes, seed)
    s = _SUPERSAMPLE
    canvas = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), PALETTE[attributes.background])
    draw = ImageDraw.Draw(canvas)
    fill = PALETTE[attributes.color]
    polygon = shape_polygon(attributes.shape, cx * s, cy * s, side * s)
    if polygon is None:
        r = side * s / 2
        draw.ellipse((cx * s - r, cy * s - r, cx * s + r, cy * s + r), fill=fill)
    else:
        draw.polygon(polygon, fill=fill)
    return canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def render(caption: str, seed: int = 0) -> Image.Image:
    """Render a caption of the world's grammar (`ValueError` for any other text)."""
    return render_attributes(parse(caption), seed)
