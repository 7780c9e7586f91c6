"""Datasets of rendered scenes for the bundled models' training scripts."""

from __future__ import annotations

import random

import numpy as np
import torch

from models.shapes.grammar import Attributes, random_attributes
from models.shapes.styles import PLAIN, render_styled


def prepare_scenes(count: int, seed: int, style: str = PLAIN) -> tuple[torch.Tensor, list[Attributes]]:
    """Render `count` random scenes (in a rendering style of `styles.py`).

    Returns:
        images: uint8 tensor (count, 3, 64, 64).
        scenes: the attributes of each image (its caption is `scene.caption`).
    """
    rng = random.Random(seed)
    scenes = [random_attributes(rng) for _ in range(count)]
    images = np.stack([np.asarray(render_styled(s, rng.randrange(2**31), style)) for s in scenes])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), scenes


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range diffusers' VAEs expect."""
    return images.float() / 127.5 - 1.0


def tensor_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR in dB of two batches of tensors in [-1, 1] (`models.metrics.psnr` compares two PIL images)."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())
