"""A classical analyser that reads a shapes-world image back into its attributes.

Border colour -> background, dominant other colour -> shape colour, mask extent -> size,
mask centre -> position, fill ratio and solidity -> shape. It is how the project measures its models.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .grammar import PALETTE, Attributes
from .render import IMAGE_SIZE, STAR_INNER_RATIO

_PALETTE_NAMES = list(PALETTE)
_PALETTE_RGB = np.array([PALETTE[n] for n in _PALETTE_NAMES], dtype=np.float32)
# (fill ratio, solidity) of each ideal shape.
_SHAPE_PROTOTYPES = {
    "circle": (math.pi / 4, 1.0),
    "square": (1.0, 1.0),
    "triangle": (0.5, 1.0),
    "star": (0.342, 0.494),
    "cross": (5 / 9, (5 / 9) / (7 / 9)),
}
_SIZE_THRESHOLD = 29.0  # px: small sides are 18-24, large 36-44 (a star's box is ~0.9 of its side)
_CENTER_TOLERANCE = 4.0  # px: jitter is at most 2, the smallest offset 8 - 2
_MIN_COLOR_DISTANCE = 40.0


def _nearest_color(rgb: np.ndarray, exclude: str | None = None) -> str:
    distances = np.linalg.norm(_PALETTE_RGB - rgb, axis=1)
    if exclude is not None:
        distances[_PALETTE_NAMES.index(exclude)] = np.inf
    return _PALETTE_NAMES[int(np.argmin(distances))]


def _hull_area(mask: np.ndarray) -> float:
    """Area of the convex hull of the mask's pixel squares (monotone chain)."""
    rows = np.flatnonzero(mask.any(axis=1))
    points = []
    for y in rows:
        xs = np.flatnonzero(mask[y])
        x0, x1 = xs[0], xs[-1] + 1
        points += [(x0, y), (x0, y + 1), (x1, y), (x1, y + 1)]
    points = sorted(set(points))
    if len(points) < 3:
        return 0.0

    def half(pts):
        chain = []
        for p in pts:
            while len(chain) >= 2 and (
                (chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])
            ) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    hull = half(points) + half(points[::-1])
    xs, ys = np.array(hull, dtype=np.float64).T
    return 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))


def _classify_shape(fill: float, solidity: float) -> str:
    return min(
        _SHAPE_PROTOTYPES,
        key=lambda s: (fill - _SHAPE_PROTOTYPES[s][0]) ** 2 + (solidity - _SHAPE_PROTOTYPES[s][1]) ** 2,
    )


def _position(dx: float, dy: float) -> str:
    if max(abs(dx), abs(dy)) < _CENTER_TOLERANCE:
        return "in the center"
    if abs(dx) >= abs(dy):
        return "on the left" if dx < 0 else "on the right"
    return "at the top" if dy < 0 else "at the bottom"


def shape_alpha(image: Image.Image) -> tuple[np.ndarray, str, str]:
    """Per-pixel coverage of the shape in [0, 1], with the background and shape colour names."""
    pixels = np.asarray(image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)), dtype=np.float32)
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                             pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])  # fmt: skip
    background_rgb = np.median(border, axis=0)
    background = _nearest_color(background_rgb)
    distance = np.linalg.norm(pixels - background_rgb, axis=2)
    candidates = pixels[distance > max(_MIN_COLOR_DISTANCE, 0.5 * distance.max())]
    if len(candidates) == 0:
        return np.zeros(distance.shape, np.float32), background, _nearest_color(background_rgb, exclude=background)
    shape_rgb = np.median(candidates, axis=0)
    direction = shape_rgb - background_rgb
    alpha = np.clip((pixels - background_rgb) @ direction / max(float(direction @ direction), 1e-6), 0.0, 1.0)
    return alpha, background, _nearest_color(shape_rgb, exclude=background)


def judge(image: Image.Image) -> Attributes:
    """Read an image of the shapes world back into its attributes."""
    alpha, background, color = shape_alpha(image)
    mask = alpha > 0.5
    if mask.sum() < 4:
        # Nothing drawn: the closest reading is the smallest, most central square.
        return Attributes("small", color, "square", "in the center", background)
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    width, height = float(x1 - x0), float(y1 - y0)
    area = float(alpha[y0:y1, x0:x1].sum())
    fill = area / (width * height)
    solidity = area / max(_hull_area(mask), 1.0)
    shape = _classify_shape(fill, solidity)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(width, height)
    if shape == "star":
        # A star's box is not centred on the star: its centre is one outer radius below the top point.
        radius = width / (2 * math.sin(2 * math.pi / 5))
        cy = y0 + radius
        side = 2 * radius
    size = "large" if side >= _SIZE_THRESHOLD else "small"
    position = _position(cx - IMAGE_SIZE / 2, cy - IMAGE_SIZE / 2)
    return Attributes(size, color, shape, position, background)


def judge_caption(image: Image.Image) -> str:
    return judge(image).caption


def agreement(expected: Attributes, found: Attributes) -> dict[str, bool]:
    """Which attributes match, per name."""
    return {name: getattr(expected, name) == getattr(found, name) for name in expected.as_dict()}


__all__ = ["judge", "judge_caption", "agreement", "shape_alpha", "STAR_INNER_RATIO"]
