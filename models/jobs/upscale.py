"""Upscale: a picture made 2x or 4x larger by the preset's super-resolution model."""

from __future__ import annotations

from dataclasses import dataclass

from ..control import JobControl
from ..errors import JobCancelled
from ..images import check_upload, load_image
from ..metadata import read_metadata
from ..presets import Preset
from ..result import Result
from ..settings import LIMITS
from .base import Job, Prepared, Resolved

SCALES = (2, 4)
CARRIED = ("prompt", "negative_prompt", "description", "instruction", "seed", "steps", "guidance", "scheduler",
           "adapters")  # what an upscaled Depict picture keeps of its source's parameters (the seed names its file)


def source_parameters(image) -> dict:
    """The generation parameters a Depict (or A1111) PNG carries that its upscale keeps; {} for any other picture."""
    try:
        meta = read_metadata(check_upload(image))
    except (ValueError, OSError):
        return {}
    carried = {key: meta[key] for key in CARRIED if key in meta}
    if not isinstance(carried.get("seed"), int):
        carried["seed"] = 0
    return carried


@dataclass(frozen=True, kw_only=True)
class UpscaleParams:
    image: object  # the picture to enlarge (path, bytes, array or PIL image)
    scale: int = 2  # how many times larger each side becomes: 2 or 4
    preset: str | None = None  # model preset; None: the engine's default


def check_upscale_size(width: int, height: int, scale: int) -> None:
    """The picture is large enough to upscale and its upscale stays within the side cap (`DEPICT_MAX_SIDE`)."""
    if min(width, height) < LIMITS.min_side:
        raise ValueError(f"`image` is {width}x{height}: upscaling needs at least {LIMITS.min_side} pixels a side.")
    cap = LIMITS.max_side
    if max(width, height) >= cap:
        raise ValueError(f"`image` is {width}x{height}, already at the {cap}-pixel side cap (DEPICT_MAX_SIDE): it "
                         "cannot be made larger.")  # fmt: skip
    if max(width, height) * scale > cap:
        instead = "2x or a smaller picture" if scale == 4 else "a smaller picture"
        raise ValueError(f"`image` is {width}x{height}: {scale}x would make it {width * scale}x{height * scale}, "
                         f"over the {cap}-pixel side cap (DEPICT_MAX_SIDE); pick {instead}.")  # fmt: skip


class Upscale(Job):
    name = "upscale"
    role = "upscaler"

    def check_inputs(self, params: UpscaleParams, preset: Preset) -> None:
        if params.scale not in SCALES or isinstance(params.scale, bool):
            raise ValueError(f"`scale` must be 2 or 4, got {params.scale!r}.")
        if not preset.upscaler:
            raise ValueError(f"Preset '{preset.name}' has no upscaling model; pick another preset to upscale images.")
        check_upscale_size(*check_upload(params.image).size, params.scale)  # the header's size: nothing decoded yet

    def prepare(self, params: UpscaleParams, loaded) -> Prepared:
        image = load_image(params.image)
        width, height = image.size
        resolved = Resolved(0, 0.0, width * params.scale, height * params.scale)
        return Prepared(self.role, {"image": image}, resolved, adapters={}, original=image,
                        metadata=source_parameters(params.image))  # fmt: skip

    def run(self, params: UpscaleParams, loaded, prepared: Prepared, control: JobControl):
        upscaled = loaded.pipeline(self.role).upscale(prepared.args["image"], params.scale, control)
        if control.cancel.is_set():
            raise JobCancelled("The job was cancelled.")
        return upscaled

    def postprocess(self, params: UpscaleParams, loaded, prepared: Prepared, image) -> Result:
        upscaler = loaded.pipeline(self.role)
        meta = {**prepared.metadata, "job": self.name, "preset": loaded.preset.name, "model": loaded.preset.upscaler,
                "scale": params.scale, "input_size": list(prepared.original.size), "width": image.width,
                "height": image.height,
                "device": upscaler.speed.device, "dtype": upscaler.speed.dtype,
                "speed_policy": upscaler.speed.as_metadata()}  # fmt: skip
        return Result(images=[image], metadata=meta)
