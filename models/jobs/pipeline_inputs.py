"""A generating job's pipeline inputs: the request's settings resolved against the preset's defaults, and the call
arguments of a text-to-image, a structure-guided (ControlNet) or an image-to-image (SDEdit) run, the base of
regenerate, style transfer and inpainting."""

from __future__ import annotations

import math

from PIL import Image

from ..images import fit_size
from ..presets import Preset
from ..structure import edge_map
from .base import Prepared, Resolved, SamplingParams


def resolve(params: SamplingParams, preset: Preset, width=None, height=None, job: str = "") -> Resolved:
    return Resolved(
        steps=params.steps if params.steps is not None else preset.steps,
        guidance=params.guidance if params.guidance is not None else preset.default_guidance(job),
        width=width or preset.width,
        height=height or preset.height,
    )


def working_image(image: Image.Image, preset: Preset) -> Image.Image:
    """The input resized to the preset's working size, aspect ratio kept."""
    size = fit_size(image.size, max(preset.width, preset.height))
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def text_to_image_inputs(params: SamplingParams, preset: Preset, prompt: str, width=None, height=None) -> Prepared:
    resolved = resolve(params, preset, width, height)
    args = {"prompt": prompt, "negative_prompt": params.negative_prompt or None,
            "width": resolved.width, "height": resolved.height}  # fmt: skip
    return Prepared(role="text_to_image", args=args, resolved=resolved, adapters=dict(params.adapters))


def img2img_inputs(params: SamplingParams, preset: Preset, image: Image.Image, prompt: str, strength: float,
                   role="image_to_image", job: str = "") -> Prepared:  # fmt: skip
    """An img2img run's inputs; steps raised so that at least one denoising step runs (`int(steps * strength) >= 1`)."""
    image = working_image(image, preset)
    base = resolve(params, preset, *image.size, job=job)
    steps = max(base.steps, math.ceil(1 / strength))
    resolved = Resolved(steps=steps, guidance=base.guidance, width=image.width, height=image.height)
    args = {"prompt": prompt, "negative_prompt": params.negative_prompt or None, "image": image, "strength": strength}
    return Prepared(role=role, args=args, resolved=resolved, adapters=dict(params.adapters))


def structure_inputs(params: SamplingParams, preset: Preset, image: Image.Image, prompt: str, scale: float,
                     width=None, height=None) -> Prepared:  # fmt: skip
    """A structure-guided text-to-image run: fresh noise, the ControlNet following `image`'s edge map at `scale`; the
    size is the request's, else the picture's at the preset's working size. The edge map is kept for the result."""
    if width is None and height is None:
        image = working_image(image, preset)
        width, height = image.size
    resolved = resolve(params, preset, width, height)
    edges = edge_map(image.resize((resolved.width, resolved.height), Image.Resampling.LANCZOS))
    args = {"prompt": prompt, "negative_prompt": params.negative_prompt or None, "image": edges,
            "controlnet_conditioning_scale": scale, "width": resolved.width, "height": resolved.height}  # fmt: skip
    return Prepared(role="structure", args=args, resolved=resolved, adapters=dict(params.adapters), condition=edges)


def guided_img2img_inputs(prepared: Prepared, scale: float) -> Prepared:
    """An img2img run's inputs (`img2img_inputs`) with the ControlNet following its picture's edge map at `scale`."""
    edges = edge_map(prepared.args["image"])
    prepared.args.update(control_image=edges, controlnet_conditioning_scale=scale)
    prepared.role, prepared.condition = "structure_image_to_image", edges
    return prepared
