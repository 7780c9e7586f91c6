"""Instruction editing (InstructPix2Pix): "make the circle green".

Hub presets pass the instruction through. The bundled (shapes-world) model is conditioned on the edited
caption: the captioner describes the picture and the parsed instruction is applied to that description;
instructions outside the world's are refused with the list of what is understood.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..images import load_image
from ..presets import Preset
from ..shapes.instructions import edited_caption, parse_instruction
from .base import Job, Prepared, SamplingParams
from .checks import check_range, check_sampling, check_text
from .pipeline_inputs import resolve, working_image


@dataclass(frozen=True, kw_only=True)
class InstructEditParams(SamplingParams):
    image: object  # the picture to edit
    instruction: str  # what to change, e.g. "make the circle green"
    image_guidance: float | None = None  # how closely to keep the input image; None: the preset's default


class InstructEdit(Job):
    name = "instruct_edit"
    role = "instruct_edit"

    def check_inputs(self, params: InstructEditParams, preset: Preset) -> None:
        check_text(params.instruction, "instruction", required=True)
        if preset.shapes_world:
            parse_instruction(params.instruction)
        if params.image_guidance is not None:
            check_range(params.image_guidance, "image_guidance", 0.0, 10.0)
        if params.adapters:
            raise ValueError("`adapters` are not supported by instruction editing; leave them empty.")
        if not preset.instruct_edit:
            raise ValueError(f"Preset '{preset.name}' has no instruction-editing model; pick another preset.")
        check_sampling(params)

    def prepare(self, params: InstructEditParams, loaded) -> Prepared:
        image = working_image(load_image(params.image), loaded.preset)
        resolved = resolve(params, loaded.preset, *image.size)
        image_guidance = params.image_guidance if params.image_guidance is not None else loaded.preset.image_guidance
        prompt, recorded = params.instruction, {}
        if loaded.preset.shapes_world:
            recorded["description"] = loaded.pipeline("captioner").describe(image)
            prompt = edited_caption(recorded["description"], params.instruction)
        args = {"prompt": prompt, "negative_prompt": params.negative_prompt or None, "image": image,
                "image_guidance_scale": image_guidance}  # fmt: skip
        return Prepared(role=self.role, args=args, resolved=resolved, adapters={}, metadata={"prompt": prompt, **recorded})
