"""Inpainting: repaint the masked region from a prompt; pixels outside the mask are kept."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from ..images import load_image, load_mask
from ..presets import Preset
from ..result import Result
from .base import Job, Prepared, SamplingParams
from .checks import check_range, check_sampling, check_text
from .pipeline_inputs import img2img_inputs


@dataclass(frozen=True, kw_only=True)
class InpaintParams(SamplingParams):
    image: object  # the picture to edit
    mask: object  # white (or opaque) where to repaint; the image's size
    prompt: str  # what goes in the masked region
    strength: float = 1.0  # how much of the masked region is redrawn


class Inpaint(Job):
    name = "inpaint"
    role = "inpaint"

    def check_inputs(self, params: InpaintParams, preset: Preset) -> None:
        check_text(params.prompt, "prompt", required=True)
        check_range(params.strength, "strength", 0.05, 1.0)
        check_sampling(params)

    def prepare(self, params: InpaintParams, loaded) -> Prepared:
        image = load_image(params.image)
        mask = load_mask(params.mask, image.size)
        prepared = img2img_inputs(params, loaded.preset, image, params.prompt, params.strength, role=self.role)
        working = prepared.args["image"]
        prepared.args.update(mask_image=mask.resize(working.size, Image.Resampling.NEAREST),
                             width=working.width, height=working.height)  # fmt: skip
        return prepared

    def postprocess(self, params, loaded, prepared, output) -> Result:
        processor = loaded.pipeline(self.role).image_processor
        args = prepared.args
        kept = [processor.apply_overlay(args["mask_image"], args["image"], image) for image in output.images]
        return Result(images=kept, metadata=self.metadata(params, loaded, prepared, output))
