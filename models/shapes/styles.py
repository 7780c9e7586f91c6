"""Rendering styles of the shapes world and a judge that tells them apart.

A style changes how the shape is drawn, never what it is: `outline` (a 2 px stroke, background inside),
`striped` (horizontal bands of a contrasting shade), `dotted` (a grid of dots of that shade) and `pixelated`
(the whole image in 4x4 blocks). `plain` is the world's default flat rendering.

Patterns sit on the bundled autoencoder's grid (one latent cell per 4x4 pixels): bands are one cell tall, every
third cell, and dots one cell wide, every other cell, so a 16x16 latent can hold them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from .grammar import PALETTE, Attributes
from .render import IMAGE_SIZE, render_attributes, shape_coverage

STYLES = ("outline", "striped", "dotted", "pixelated")
PLAIN = "plain"
_CELL = 4  # px per latent cell of the bundled autoencoder
PIXEL_BLOCK = _CELL
_STROKE = 2  # px
_STRIPE_PERIOD = 3 * _CELL  # px from band to band: the accent stays the minority
_DOT_PERIOD = 2 * _CELL  # px from dot to dot
_SUPERSAMPLE = 4


def accent(color: str, background: str) -> tuple[int, int, int]:
    """The shade for stripes and dots: a darker or lighter version of the colour, whichever stands out more
    from both the colour and the background."""
    rgb, back = (np.array(PALETTE[name], dtype=np.float32) for name in (color, background))
    shades = (rgb * 0.4, rgb + 0.65 * (255 - rgb))
    shade = max(shades, key=lambda s: min(np.linalg.norm(s - rgb), np.linalg.norm(s - back)))
    return tuple(int(round(v)) for v in shade)


def _pattern(style: str, size: int) -> np.ndarray:
    """Where the accent shade goes, on a supersampled canvas of `size` pixels."""
    y, x = np.mgrid[0:size, 0:size] / _SUPERSAMPLE
    if style == "striped":
        return (y % _STRIPE_PERIOD) < _CELL
    centre = _CELL / 2
    return (x % _DOT_PERIOD - centre) ** 2 + (y % _DOT_PERIOD - centre) ** 2 <= (_CELL / 2) ** 2


def render_styled(attributes: Attributes, seed: int = 0, style: str = PLAIN) -> Image.Image:
    """Render a scene in one of `STYLES` (or `plain`); the layout for a seed is the same in every style."""
    if style == PLAIN:
        return render_attributes(attributes, seed)
    if style == "pixelated":
        small = render_attributes(attributes, seed).resize((IMAGE_SIZE // PIXEL_BLOCK,) * 2, Image.Resampling.BOX)
        return small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.NEAREST)
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}; styles are {', '.join(STYLES)}.")
    coverage = shape_coverage(attributes, seed, supersample=_SUPERSAMPLE)
    size = coverage.size[0]
    if style == "outline":
        inner = coverage.filter(ImageFilter.MinFilter(2 * _STROKE * _SUPERSAMPLE + 1))
        paint = np.asarray(coverage, np.float32) / 255 * (1 - np.asarray(inner, np.float32) / 255)
        colors = [(paint, PALETTE[attributes.color])]
    else:
        fill = np.asarray(coverage, np.float32) / 255
        spots = _pattern(style, size)
        colors = [(fill * ~spots, PALETTE[attributes.color]), (fill * spots, accent(attributes.color, attributes.background))]
    canvas = np.broadcast_to(np.array(PALETTE[attributes.background], np.float32), (size, size, 3)).copy()
    for weight, rgb in colors:
        canvas += weight[..., None] * (np.array(rgb, np.float32) - canvas) * (weight[..., None] > 0)
    image = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def blockiness(pixels: np.ndarray) -> float:
    """Share of the image's edge energy on the 4x4 block grid, in the direction where it is lower (1/4 unaligned)."""
    shares = []
    for axis in (0, 1):
        energy = np.abs(np.diff(pixels, axis=axis)).sum(axis=2).sum(axis=1 - axis)  # per boundary along `axis`
        shares.append(energy[PIXEL_BLOCK - 1 :: PIXEL_BLOCK].sum() / max(energy.sum(), 1e-6))
    return float(min(shares))  # both directions: grid-aligned bands alone are stripes, not blocks


def enclosed(mask: np.ndarray) -> np.ndarray:
    """The mask with the areas it encloses filled in, as a viewer sees them: a gap of up to 2 px in an outline
    still encloses its inside (the gap itself stays unfilled, so concave corners keep their shape)."""
    closed = ndimage.binary_closing(mask, structure=np.ones((3, 3), bool), border_value=0)
    return ndimage.binary_fill_holes(mask) | (ndimage.binary_fill_holes(closed) & ~closed)


def shape_masks(pixels: np.ndarray, background_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(painted, filled): pixels away from the background, and the same with what they enclose."""
    painted = np.linalg.norm(pixels - background_rgb, axis=2) > 30
    return painted, enclosed(painted)


def image_pixels(image: Image.Image) -> np.ndarray:
    """The image as float RGB at the world's size, as the judges read it."""
    return np.asarray(image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)), dtype=np.float32)


def border_color(pixels: np.ndarray) -> np.ndarray:
    """Median RGB of the 2 px frame: the background (shapes never reach the frame)."""
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                             pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])  # fmt: skip
    return np.median(border, axis=0)


def judge_style(image: Image.Image) -> str:
    """`plain` or one of `STYLES`, read from the pixels."""
    pixels = image_pixels(image)
    if blockiness(pixels) > 0.6:
        return "pixelated"
    painted, filled = shape_masks(pixels, border_color(pixels))
    if filled.sum() < 16:
        return PLAIN
    if painted.sum() < 0.96 * filled.sum():  # background showing inside the shape
        return "outline"
    interior = ndimage.binary_erosion(filled, iterations=1)
    if interior.sum() < 8:
        return PLAIN
    inside = pixels[interior]
    main = np.median(inside, axis=0)
    off = np.zeros(interior.shape, bool)
    off[interior] = np.linalg.norm(inside - main, axis=1) > 45
    if off[interior].mean() < 0.08:
        return PLAIN
    rows = [off[y][interior[y]].mean() for y in range(IMAGE_SIZE) if interior[y].sum() >= 4]
    mixed_rows = float(np.mean([min(f, 1 - f) for f in rows]))
    return "striped" if mixed_rows < 0.12 else "dotted"
