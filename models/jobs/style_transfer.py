"""Style transfer: the content image redrawn (img2img) in a style: a style LoRA adapter, a style preset (a prompt
template from the styles file) and/or a reference image (IP-Adapter, on presets that have one)."""

from __future__ import annotations

from dataclasses import dataclass

from ..images import load_image
from ..presets import Preset
from ..settings import LIMITS
from ..style_presets import style_presets
from .base import Job, Prepared, SamplingParams
from .checks import check_range, check_sampling, check_structure, check_text
from .pipeline_inputs import guided_img2img_inputs, img2img_inputs


@dataclass(frozen=True, kw_only=True)
class StyleTransferParams(SamplingParams):
    image: object  # the content picture
    style: str | None = None  # a style adapter or style preset name (see `Engine.styles`); None: `style_image` only
    style_image: object = None  # a picture whose style is taken (IP-Adapter; presets with a `reference_adapter`)
    strength: float = 0.6  # how much is redrawn: 0 keeps the content, 1 ignores it
    structure: float = 0.0  # above 0: the content's edges also guide the redrawing (ControlNet) at this scale (0-2)
    style_weight: float = 1.0  # the style adapter's weight, or the reference image's IP-Adapter scale
    prompt: str = ""  # what the content shows; empty: the captioner describes it

    def as_metadata(self) -> dict:
        return {**super().as_metadata(), "style_image": self.style_image is not None}


class StyleTransfer(Job):
    name = "style_transfer"
    role = "image_to_image"

    def check_inputs(self, params: StyleTransferParams, preset: Preset) -> None:
        if params.style_image is None and (not isinstance(params.style, str) or not params.style.strip()):
            raise ValueError(f"`style` is empty: pick a style or give a `style_image`, got {params.style!r}.")
        if params.style is not None:
            check_text(params.style, "style", required=False)
        if params.style and not preset.offers_adapters() and params.style not in style_presets():
            raise ValueError(f"Preset '{preset.name}' offers no style adapters; run style transfer on '{preset.base}'.")
        if params.style_image is not None and not preset.reference_adapter:
            raise ValueError(f"Preset '{preset.name}' takes no `style_image`: it has no IP-Adapter (none exists for "
                             f"its model); use a style from its list, or a preset that takes a reference image "
                             f"(sd15-lcm, sdxl-turbo).")  # fmt: skip
        check_range(params.style_weight, "style_weight", 0.0, LIMITS.max_adapter_weight)
        check_range(params.strength, "strength", 0.05, 1.0)
        check_structure(params.structure, preset)
        check_text(params.prompt, "prompt", required=False)
        check_sampling(params)

    def check_loaded(self, params: StyleTransferParams, loaded) -> None:
        super().check_loaded(params, loaded)
        if not params.style:
            return
        if params.style in loaded.catalog.files():
            loaded.catalog.check({params.style: params.style_weight})
        elif params.style not in style_presets():
            listed = ", ".join([*loaded.catalog.names(), *style_presets()])
            raise ValueError(f"`style` names an unknown adapter {params.style!r}, and no style preset has that name; "
                             f"available: {listed}.")  # fmt: skip

    def prepare(self, params: StyleTransferParams, loaded) -> Prepared:
        content = load_image(params.image)
        reference = load_image(params.style_image, "style_image") if params.style_image is not None else None
        prompt = params.prompt
        if not prompt.strip() and loaded.preset.captioner:
            prompt = loaded.pipeline("captioner").describe(content)
        template = style_presets().get(params.style) if params.style not in loaded.catalog.files() else None
        negative = params.negative_prompt
        if template:
            prompt, negative = template.apply(prompt, negative)
        prepared = img2img_inputs(params, loaded.preset, content, prompt, params.strength, job=self.name)
        if params.structure > 0:
            prepared = guided_img2img_inputs(prepared, params.structure)
        prepared.args["negative_prompt"] = negative or None
        prepared.metadata = {"prompt": prompt, **({"negative_prompt": negative} if negative else {})}
        if params.style and template is None:
            prepared.adapters[params.style] = params.style_weight
        if reference is not None:
            prepared.args["ip_adapter_image"] = reference
            prepared.reference_scale = params.style_weight
        return prepared
