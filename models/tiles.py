"""Tiled upscaling: a picture cut into overlapping tiles, each upscaled alone, the results feathered together, so
memory is bounded by one tile whatever the picture's size."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image


def starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where each tile starts along a side of `size` pixels: `tile` long, neighbours sharing `overlap` pixels, the
    last one flush with the end (one tile when the side is shorter)."""
    if size <= tile:
        return [0]
    found = list(range(0, size - tile, tile - overlap))
    return found + [size - tile]


def ramp(length: int, before: int, after: int) -> torch.Tensor:
    """Blend weights along one side of an upscaled tile: rising over the `before` pixels it shares with the previous
    tile, falling over the `after` it shares with the next, 1 between."""
    weights = torch.ones(length)
    if before:
        weights[:before] = torch.linspace(1 / (before + 1), before / (before + 1), before)
    if after:
        falling = torch.linspace(after / (after + 1), 1 / (after + 1), after)
        weights[length - after:] = torch.minimum(weights[length - after:], falling)
    return weights


def padded(tile: Image.Image, multiple: int) -> Image.Image:
    """`tile` grown to a multiple of `multiple` on each side by repeating its edge pixels."""
    width, height = tile.size
    grow = (-height % multiple, -width % multiple)
    if grow == (0, 0):
        return tile
    pixels = np.pad(np.asarray(tile), ((0, grow[0]), (0, grow[1]), (0, 0)), mode="edge")
    return Image.fromarray(pixels)


def upscale_tiled(image: Image.Image, upscale: Callable[[Image.Image], torch.Tensor], scale: int, tile: int,
                  overlap: int, multiple: int = 8) -> torch.Tensor:  # fmt: skip
    """`image` upscaled `scale`x tile by tile: `upscale(tile)` returns a (3, h*scale, w*scale) tensor in [0, 1] of a
    tile padded to a multiple of `multiple`; the result is (1, 3, H*scale, W*scale)."""
    width, height = image.size
    out = torch.zeros(3, height * scale, width * scale)
    total = torch.zeros(1, height * scale, width * scale)
    xs, ys = starts(width, tile, overlap), starts(height, tile, overlap)
    for y in ys:
        for x in xs:
            box = (x, y, min(x + tile, width), min(y + tile, height))
            piece = image.crop(box)
            h, w = piece.height * scale, piece.width * scale
            upscaled = upscale(padded(piece, multiple))[:, :h, :w].float().cpu()
            shared = [scale * overlap if cond else 0 for cond in (y > 0, box[3] < height, x > 0, box[2] < width)]
            weight = ramp(h, shared[0], shared[1])[:, None] * ramp(w, shared[2], shared[3])[None, :]
            out[:, y * scale:y * scale + h, x * scale:x * scale + w] += upscaled * weight
            total[:, y * scale:y * scale + h, x * scale:x * scale + w] += weight
    return (out / total)[None]
