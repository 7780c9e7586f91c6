"""Style transfer: the content image redrawn (img2img) with a style LoRA adapter active."""

from __future__ import annotations

from dataclasses import dataclass

from ..images import load_image
from ..presets import Preset
from .base import Job, Prepared, SamplingParams, check_range, check_sampling, check_text
from .image_to_image import img2img_inputs


@dataclass(frozen=True, kw_only=True)
class StyleTransferParams(SamplingParams):
    image: object  # the content picture
    style: str  # name of a style adapter (see `Engine.adapters`)
    strength: float = 0.6  # how much is redrawn: 0 keeps the content, 1 ignores it
    style_weight: float = 1.0  # the style adapter's weight
    prompt: str = ""  # what the content shows; empty: the captioner describes it


class StyleTransfer(Job):
    name = "style_transfer"
    role = "image_to_image"

    def check_inputs(self, params: StyleTransferParams, preset: Preset) -> None:
        if not preset.offers_adapters():
            raise ValueError(f"Preset '{preset.name}' offers no style adapters; run style transfer on '{preset.base}'.")
        check_text(params.style, "style", required=True)
        check_range(params.strength, "strength", 0.05, 1.0)
        check_text(params.prompt, "prompt", required=False)
        check_sampling(params)

    def check_loaded(self, params: StyleTransferParams, loaded) -> None:
        loaded.catalog.check({**params.adapters, params.style: params.style_weight})

    def prepare(self, params: StyleTransferParams, loaded) -> Prepared:
        content = load_image(params.image)
        prompt = params.prompt
        if not prompt.strip() and loaded.preset.captioner:
            prompt = loaded.pipeline("captioner").describe(content)
        prepared = img2img_inputs(params, loaded, content, prompt, params.strength, job=self.name)
        prepared.adapters[params.style] = params.style_weight
        return prepared

    def metadata(self, params, loaded, prepared) -> dict:
        return {**super().metadata(params, loaded, prepared), "prompt": prepared.args["prompt"]}
