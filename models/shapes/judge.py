"""A classical analyser that reads a shapes-world image back into its attributes.

Border colour -> background, dominant other colour -> shape colour, mask extent -> size,
mask centre -> position; the shape is the ideal outline (drawn by the renderer at the measured place and size)
that best matches the soft coverage mask, and fill ratio and solidity decide between near ties.
It is how the project measures its models, so it is checked on degraded renders too (blur, noise, colour shift).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .grammar import PALETTE, Attributes
from .render import IMAGE_SIZE, STAR_INNER_RATIO, draw_coverage
from .styles import PIXEL_BLOCK, accent, blockiness, border_color, enclosed, image_pixels

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
_SIZE_THRESHOLD = 30.0  # px: small sides are 18-24, large 36-44
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


_STAR_BOX = (2 * math.sin(2 * math.pi / 5), 1 + math.cos(math.pi / 5))  # star box width, height per outer radius
_SCALES = (1.0, 1.1, 1.2)
_BLOCK_SHIFTS = (-1.5, 0.0, 1.5)  # px
_BLOCK_BOX_ALPHA = 0.25  # a block the shape covers a quarter of (a star's tip) is still inside its box
_BLOCK_SCALES = (0.9, 1.0, 1.1, 1.2)


def _placement(shape: str, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """Centre (x, y) and side of a shape whose coverage box is `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if shape == "star":
        radius = (x1 - x0) / _STAR_BOX[0]
        return (x0 + x1) / 2, y0 + radius, 2 * radius
    return (x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) + (y1 - y0)) / 2


def _template(shape: str, cx: float, cy: float, side: float, pixelated: bool) -> np.ndarray:
    """The renderer's ideal coverage of a shape, anti-aliased like a render (in 4x4 blocks if `pixelated`)."""
    coverage = draw_coverage(shape, cx, cy, side).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    if pixelated:
        coverage = coverage.resize((IMAGE_SIZE // PIXEL_BLOCK,) * 2, Image.Resampling.BOX)
        coverage = coverage.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.NEAREST)
    return np.asarray(coverage, np.float32) / 255


def _classify_shape(alpha: np.ndarray, box: tuple[int, int, int, int], fill: float, solidity: float,
                    pixelated: bool) -> str:  # fmt: skip
    """The ideal shape closest to the coverage around its box; prototype distance breaks near ties.

    Blocks hide where the shape really sits within 4 px, and make fill and solidity unreliable: pixelated images
    are fitted over shifted and scaled placements instead, with no prototype term.
    """
    x0, y0, x1, y1 = box
    window = (slice(max(0, y0 - 3), y1 + 3), slice(max(0, x0 - 3), x1 + 3))
    observed = alpha[window]
    shifts, scales, prototype_weight = (_BLOCK_SHIFTS, _BLOCK_SCALES, 0.0) if pixelated else ((0.0,), _SCALES, 0.05)

    def score(shape: str) -> float:
        cx, cy, side = _placement(shape, box)
        # thin tips fall below half coverage when edges are soft: let the outline grow a little to fit
        mismatch = min(np.abs(observed - _template(shape, cx + dx, cy + dy, side * scale, pixelated)[window]).mean()
                       for scale in scales for dx in shifts for dy in shifts)  # fmt: skip
        prototype = math.dist((fill, solidity), _SHAPE_PROTOTYPES[shape])
        return mismatch + prototype_weight * prototype

    return min(_SHAPE_PROTOTYPES, key=score)


def _position(dx: float, dy: float) -> str:
    if max(abs(dx), abs(dy)) < _CENTER_TOLERANCE:
        return "in the center"
    if abs(dx) >= abs(dy):
        return "on the left" if dx < 0 else "on the right"
    return "at the top" if dy < 0 else "at the bottom"


def shape_alpha(image: Image.Image | np.ndarray) -> tuple[np.ndarray, str, str]:
    """Per-pixel coverage of the shape in [0, 1], with the background and shape colour names (from an image, or
    its `image_pixels`)."""
    pixels = image if isinstance(image, np.ndarray) else image_pixels(image)
    background_rgb = border_color(pixels)
    background = _nearest_color(background_rgb)
    distance = np.linalg.norm(pixels - background_rgb, axis=2)
    candidates = pixels[distance > max(_MIN_COLOR_DISTANCE, 0.25 * distance.max())]
    if len(candidates) == 0:
        return np.zeros(distance.shape, np.float32), background, _nearest_color(background_rgb, exclude=background)
    # the palette colour most pixels away from the background are close to (stripes and dots are the minority)
    distances = np.linalg.norm(candidates[:, None, :] - _PALETTE_RGB[None], axis=2)
    distances[:, _PALETTE_NAMES.index(background)] = np.inf
    labels = distances.argmin(axis=1)
    pure = distances.min(axis=1) < _MIN_COLOR_DISTANCE  # not a blend with the background, nor a stripe's shade
    label = int(np.bincount(labels[pure] if pure.any() else labels).argmax())
    color = _PALETTE_NAMES[label]
    shape_rgb = np.median(candidates[labels == label], axis=0)
    # stripes and dots are drawn in the accent shade: count it as covered too
    alpha = np.maximum(_toward(pixels, background_rgb, shape_rgb), _toward(pixels, background_rgb, accent(color, background)))
    return alpha, background, color


def _toward(pixels: np.ndarray, start: np.ndarray, end) -> np.ndarray:
    """How far each pixel lies from `start` toward `end`, in [0, 1]."""
    direction = np.asarray(end, np.float32) - start
    return np.clip((pixels - start) @ direction / max(float(direction @ direction), 1e-6), 0.0, 1.0)


def judge(image: Image.Image) -> Attributes:
    """Read an image of the shapes world back into its attributes."""
    pixels = image_pixels(image)
    alpha, background, color = shape_alpha(pixels)
    # outlines, stripes and dots enclose the shape's area: count it as covered
    alpha = np.maximum(alpha, enclosed(alpha > 0.5))
    pixelated = blockiness(pixels) > 0.6
    mask = alpha > 0.5
    if mask.sum() < 4:
        # Nothing drawn: the closest reading is the smallest, most central square.
        return Attributes("small", color, "square", "in the center", background)
    ys, xs = np.nonzero(alpha > _BLOCK_BOX_ALPHA if pixelated else mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    width, height = float(x1 - x0), float(y1 - y0)
    area = float(alpha[y0:y1, x0:x1].sum())
    fill = area / (width * height)
    solidity = area / max(_hull_area(mask), 1.0)
    box = (int(x0), int(y0), int(x1), int(y1))
    shape = _classify_shape(alpha, box, fill, solidity, pixelated)
    cx, cy, side = _placement(shape, box)  # a star's box is not centred on the star
    size = "large" if side >= _SIZE_THRESHOLD else "small"
    position = _position(cx - IMAGE_SIZE / 2, cy - IMAGE_SIZE / 2)
    return Attributes(size, color, shape, position, background)


def judge_caption(image: Image.Image) -> str:
    return judge(image).caption


def agreement(expected: Attributes, found: Attributes) -> dict[str, bool]:
    """Which attributes match, per name."""
    return {name: getattr(expected, name) == getattr(found, name) for name in expected.as_dict()}


__all__ = ["judge", "judge_caption", "agreement", "shape_alpha", "STAR_INNER_RATIO"]
