"""Describe -> regenerate: an image made again from its (edited) description, fresh or keeping the layout."""

from __future__ import annotations

from dataclasses import dataclass

from ..images import load_image
from ..metrics import psnr, ssim
from ..presets import Preset
from ..result import Result
from ..shapes import agreement, judge
from .base import Job, Prepared, SamplingParams
from .checks import check_range, check_sampling, check_structure, check_text
from .pipeline_inputs import img2img_inputs, structure_inputs, text_to_image_inputs


@dataclass(frozen=True, kw_only=True)
class RegenerateParams(SamplingParams):
    image: object  # the original picture
    description: str  # the text to regenerate it from
    keep_layout: float = 0.0  # 0: a fresh text-to-image; above 0: img2img keeping that much of the original
    structure: float = 0.0  # above 0: fresh noise guided by the original's edges (ControlNet) at this scale (0-2)


class Regenerate(Job):
    name = "regenerate"
    role = "text_to_image"

    def check_inputs(self, params: RegenerateParams, preset: Preset) -> None:
        check_text(params.description, "description", required=True)
        check_range(params.keep_layout, "keep_layout", 0.0, 0.95)
        check_structure(params.structure, preset, params.keep_layout)
        check_sampling(params)

    def prepare(self, params: RegenerateParams, loaded) -> Prepared:
        original = load_image(params.image)
        if params.structure > 0:
            prepared = structure_inputs(params, loaded.preset, original, params.description, params.structure)
        elif params.keep_layout > 0:
            prepared = img2img_inputs(params, loaded.preset, original, params.description,
                                      strength=1.0 - params.keep_layout)  # fmt: skip
        else:
            prepared = text_to_image_inputs(params, loaded.preset, params.description)
        prepared.original = original
        return prepared

    def postprocess(self, params, loaded, prepared, output) -> Result:
        original, images = prepared.original, output.images
        fidelity = {"psnr": round(psnr(original, images[0]), 2), "ssim": round(ssim(original, images[0]), 4)}
        if loaded.preset.shapes_world:
            kept = agreement(judge(original), judge(images[0]))
            fidelity["attributes_kept"] = kept
            fidelity["all_kept"] = all(kept.values())
        meta = {**self.metadata(params, loaded, prepared, output), "fidelity": fidelity}
        return Result(images=images, metadata=meta, condition=prepared.condition)
