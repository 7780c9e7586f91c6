"""Text -> image."""

from __future__ import annotations

from dataclasses import dataclass

from ..presets import Preset
from .base import Job, Prepared, SamplingParams
from .checks import check_sampling, check_size, check_text
from .pipeline_inputs import text_to_image_inputs


@dataclass(frozen=True, kw_only=True)
class TextToImageParams(SamplingParams):
    prompt: str  # what the image shows
    width: int | None = None  # output width in pixels (multiple of 8)
    height: int | None = None  # output height in pixels (multiple of 8)


class TextToImage(Job):
    name = "text_to_image"
    role = "text_to_image"

    def check_inputs(self, params: TextToImageParams, preset: Preset) -> None:
        check_text(params.prompt, "prompt", required=True)
        check_sampling(params)
        check_size(params.width, params.height)

    def prepare(self, params: TextToImageParams, loaded) -> Prepared:
        return text_to_image_inputs(params, loaded.preset, params.prompt, params.width, params.height)
