"""Text -> image."""

from __future__ import annotations

from dataclasses import dataclass

from ..images import load_image
from ..presets import Preset
from .base import Job, Prepared, SamplingParams
from .checks import check_sampling, check_size, check_structure, check_text
from .pipeline_inputs import structure_inputs, text_to_image_inputs


@dataclass(frozen=True, kw_only=True)
class TextToImageParams(SamplingParams):
    prompt: str  # what the image shows
    width: int | None = None  # output width in pixels (multiple of 8)
    height: int | None = None  # output height in pixels (multiple of 8)
    structure_image: object = None  # a picture whose edges the image follows (ControlNet); None: no guide
    structure: float = 1.0  # how strongly the structure image's edges guide it (0-2; used with `structure_image`)


class TextToImage(Job):
    name = "text_to_image"
    role = "text_to_image"

    def check_inputs(self, params: TextToImageParams, preset: Preset) -> None:
        check_text(params.prompt, "prompt", required=True)
        check_sampling(params)
        check_size(params.width, params.height)
        if params.structure_image is not None:
            check_structure(params.structure, preset)

    def prepare(self, params: TextToImageParams, loaded) -> Prepared:
        if params.structure_image is not None and params.structure > 0:
            guide = load_image(params.structure_image, "structure_image")
            return structure_inputs(params, loaded.preset, guide, params.prompt, params.structure, params.width,
                                    params.height)  # fmt: skip
        return text_to_image_inputs(params, loaded.preset, params.prompt, params.width, params.height)
