"""Image -> image with a prompt (SDEdit): the base of regenerate-keeping-layout, style transfer and inpainting."""

from __future__ import annotations

import math

from PIL import Image

from ..images import fit_size
from .base import Prepared, Resolved, resolve


def working_image(image: Image.Image, preset) -> Image.Image:
    """The input resized to the preset's working size, aspect ratio kept."""
    size = fit_size(image.size, max(preset.width, preset.height))
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def img2img_inputs(params, loaded, image: Image.Image, prompt: str, strength: float, role="image_to_image",
                   job: str = "") -> Prepared:  # fmt: skip
    """An img2img run's inputs; steps raised so that at least one denoising step runs (`int(steps * strength) >= 1`)."""
    image = working_image(image, loaded.preset)
    base = resolve(params, loaded.preset, *image.size, job=job)
    steps = max(base.steps, math.ceil(1 / strength))
    resolved = Resolved(steps=steps, guidance=base.guidance, width=image.width, height=image.height)
    args = {"prompt": prompt, "negative_prompt": params.negative_prompt or None, "image": image, "strength": strength}
    return Prepared(role=role, args=args, resolved=resolved, adapters=dict(params.adapters))
