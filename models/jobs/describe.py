"""Image -> description with the preset's captioner."""

from __future__ import annotations

from dataclasses import dataclass

from ..captioner import DETAILS
from ..images import load_image
from ..presets import Preset
from ..result import Result
from .base import Job, Prepared, Resolved


@dataclass(frozen=True, kw_only=True)
class DescribeParams:
    image: object  # the picture to describe (path, bytes, array or PIL image)
    preset: str | None = None  # model preset; None: the engine's default
    detail: str = "short"  # "short", or "detailed" where the captioner offers it (Florence-2 on the hub presets)


class Describe(Job):
    name = "describe"
    role = "captioner"

    def check_inputs(self, params: DescribeParams, preset: Preset) -> None:
        if not preset.captioner:
            raise ValueError(f"Preset '{preset.name}' has no captioning model; pick another preset to describe images.")
        if params.detail not in DETAILS:
            raise ValueError(f"`detail` must be one of {', '.join(DETAILS)}, got {params.detail!r}.")

    def check_loaded(self, params: DescribeParams, loaded) -> None:
        offered = loaded.pipeline(self.role).details
        if params.detail not in offered:
            raise ValueError(f"`detail` must be {' or '.join(offered)} on preset '{loaded.preset.name}' (its captioner "
                             f"has no {params.detail} description), got {params.detail!r}.")  # fmt: skip

    def prepare(self, params: DescribeParams, loaded) -> Prepared:
        image = load_image(params.image)
        return Prepared(self.role, {"image": image}, Resolved(0, 0.0, *image.size), adapters={})

    def run(self, params, loaded, prepared, control) -> str:
        return loaded.pipeline(self.role).describe(prepared.args["image"], params.detail)

    def postprocess(self, params, loaded, prepared, description: str) -> Result:
        meta = {"job": self.name, "preset": loaded.preset.name, "model": loaded.preset.captioner, "detail": params.detail,
                "description": description}  # fmt: skip
        return Result(images=[], metadata=meta)
