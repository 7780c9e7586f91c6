"""Image -> description with the preset's captioner."""

from __future__ import annotations

from dataclasses import dataclass

from ..images import load_image
from ..presets import Preset
from ..result import Result
from .base import Job, Prepared, Resolved


@dataclass(frozen=True, kw_only=True)
class DescribeParams:
    image: object  # the picture to describe (path, bytes, array or PIL image)
    preset: str | None = None  # model preset; None: the engine's default


class Describe(Job):
    name = "describe"
    role = "captioner"

    def check_inputs(self, params: DescribeParams, preset: Preset) -> None:
        if not preset.captioner:
            raise ValueError(f"Preset '{preset.name}' has no captioning model; pick another preset to describe images.")

    def prepare(self, params: DescribeParams, loaded) -> Prepared:
        image = load_image(params.image)
        return Prepared(self.role, {"image": image}, Resolved(0, 0.0, *image.size), adapters={})

    def run(self, params, loaded, prepared, control) -> list[str]:
        return [loaded.pipeline(self.role).describe(prepared.args["image"])]

    def postprocess(self, params, loaded, prepared, outputs) -> Result:
        meta = {"job": self.name, "preset": loaded.preset.name, "model": loaded.preset.captioner, "description": outputs[0]}
        return Result(images=[], metadata=meta)
