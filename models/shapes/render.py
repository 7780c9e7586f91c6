"""The shapes world's renderer: a caption and a seed give a 64x64 anti-aliased image (or the same scene drawn at a
higher resolution, the ground truth of upscaling)."""

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


def draw_coverage(shape: str, cx: float, cy: float, side: float, supersample: int = _SUPERSAMPLE) -> Image.Image:
    """A shape's coverage (255 inside) on a canvas `supersample` times the image size."""
    s = supersample
    canvas = Image.new("L", (IMAGE_SIZE * s, IMAGE_SIZE * s), 0)
    draw = ImageDraw.Draw(canvas)
    polygon = shape_polygon(shape, cx * s, cy * s, side * s)
    if polygon is None:
        r = side * s / 2
        draw.ellipse((cx * s - r, cy * s - r, cx * s + r, cy * s + r), fill=255)
    else:
        draw.polygon(polygon, fill=255)
    return canvas


def shape_coverage(attributes: Attributes, seed: int = 0, supersample: int = _SUPERSAMPLE) -> Image.Image:
    """The scene's shape coverage at its seeded layout, supersampled."""
    return draw_coverage(attributes.shape, *layout(attributes, seed), supersample=supersample)


def render_attributes(attributes: Attributes, seed: int = 0, size: int = IMAGE_SIZE) -> Image.Image:
    """Render a scene: flat colours, edges anti-aliased by 4x supersampling. `size` (a multiple of 64) draws the same
    scene at that many pixels a side."""
    if size % IMAGE_SIZE:
        raise ValueError(f"`size` must be a multiple of {IMAGE_SIZE}, got {size}.")
    coverage = shape_coverage(attributes, seed, supersample=_SUPERSAMPLE * size // IMAGE_SIZE)
    background = Image.new("RGB", coverage.size, PALETTE[attributes.background])
    shape = Image.new("RGB", coverage.size, PALETTE[attributes.color])
    return Image.composite(shape, background, coverage).resize((size, size), Image.Resampling.BOX)


def render(caption: str, seed: int = 0) -> Image.Image:
    """Render a caption of the world's grammar (`ValueError` for any other text)."""
    return render_attributes(parse(caption), seed)
