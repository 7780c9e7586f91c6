"""What every job shares: the sampling parameters, what `prepare` hands to `run`, and the job's fixed stages.

A job reads like a diffusers pipeline: `check_inputs` -> `prepare` -> `run` -> `postprocess`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

from PIL import Image

from .. import hub
from ..control import JobControl
from ..graphs import request_running
from ..loaded_preset import LoadedPreset, RunOutput
from ..pipelines import PipelineCache
from ..presets import Preset
from ..prompt_warnings import prompt_warnings
from ..result import Result
from .checks import check_preset_sampler


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """Settings every generating job shares. `None` means the preset's default."""

    negative_prompt: str = ""  # what the image should not show
    seed: int = 0  # seed of the first image; image i of a batch uses seed + i
    steps: int | None = None  # denoising steps
    guidance: float | None = None  # classifier-free guidance scale
    scheduler: str | None = None  # sampler name (see models.schedulers.SCHEDULERS)
    num_images: int = 1  # images in the batch
    adapters: dict[str, float] = field(default_factory=dict)  # LoRA adapter name -> weight
    preset: str | None = None  # model preset; None: the engine's default
    fast_decode: bool | None = None  # decode with the preset's tiny autoencoder; None: on CPU when it has one

    def as_metadata(self) -> dict:
        skip = {"image", "mask", "structure_image"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass(frozen=True)
class Resolved:
    """A request's settings with the preset's defaults filled in."""

    steps: int
    guidance: float
    width: int
    height: int


@dataclass
class Prepared:
    """What `prepare` hands to `run`: the pipeline role and its call arguments, and what `postprocess` needs."""

    role: str
    args: dict  # pipeline call arguments besides steps, guidance, batch, generator and callback
    resolved: Resolved
    adapters: dict[str, float]
    reference_scale: float | None = None  # the IP-Adapter's scale when `args` holds a reference image
    original: Image.Image | None = None  # the input picture, for jobs that measure the result against it
    condition: Image.Image | None = None  # the edge map a structure-guided run follows, returned with the result
    metadata: dict = field(default_factory=dict)  # what the job adds to the result's metadata


class Job:
    """Base of the jobs: subclasses set `name` and `role` and define the four stages."""

    name: str = ""
    role: str = "text_to_image"

    def __init__(self, cache: PipelineCache, preset_for):
        self.cache = cache
        self.preset_for = preset_for  # name or None -> Preset (the allow-list)

    def __call__(self, params, control: JobControl | None = None) -> Result:
        """Run the job; a first download of the preset's files reports its progress to `control`."""
        with hub.downloads_reported_to(control.report if control else None), request_running():
            return self._call(params, control)

    def _call(self, params, control: JobControl | None) -> Result:
        started = time.perf_counter()
        preset = self.preset_for(params.preset)
        self.check_inputs(params, preset)
        check_preset_sampler(params, preset)
        loaded = self.cache.get(preset)
        timings = {"load": time.perf_counter() - started}
        self.check_loaded(params, loaded)
        prepared = self.prepare(params, loaded)
        timings["prepare"] = time.perf_counter() - started - timings["load"]
        run_started = time.perf_counter()
        output = self.run(params, loaded, prepared, control or JobControl())
        timings["run"] = time.perf_counter() - run_started
        if isinstance(output, RunOutput) and output.compile_wait is not None:  # the first compiled call at its shape
            timings["compile_wait"] = output.compile_wait
        result = self.postprocess(params, loaded, prepared, output)
        warnings = prompt_warnings(params, preset)
        if warnings:
            result.metadata["warnings"] = warnings
        timings["total"] = time.perf_counter() - started
        result.timings = {**timings, **result.timings}
        return result

    def check_inputs(self, params, preset: Preset) -> None:
        raise NotImplementedError

    def check_loaded(self, params, loaded: LoadedPreset) -> None:
        """Checks that need the loaded preset (its adapter catalog); run before any model work."""
        if getattr(params, "adapters", None):
            loaded.catalog.check(params.adapters)

    def prepare(self, params, loaded: LoadedPreset) -> Prepared:
        raise NotImplementedError

    def run(self, params, loaded: LoadedPreset, prepared: Prepared, control: JobControl) -> RunOutput:
        resolved = prepared.resolved
        return loaded.run(
            prepared.role, prepared.args, steps=resolved.steps, guidance=resolved.guidance,
            size=(resolved.width, resolved.height), num_images=params.num_images, seed=params.seed,
            scheduler=params.scheduler, adapters=prepared.adapters, fast_decode=params.fast_decode,
            reference_scale=prepared.reference_scale, control=control,
        )  # fmt: skip

    def postprocess(self, params, loaded: LoadedPreset, prepared: Prepared, output: RunOutput) -> Result:
        return Result(images=output.images, metadata=self.metadata(params, loaded, prepared, output),
                      condition=prepared.condition)

    def metadata(self, params, loaded: LoadedPreset, prepared: Prepared, output: RunOutput) -> dict:
        return {
            "job": self.name,
            **params.as_metadata(),
            **asdict(prepared.resolved),
            "adapters": prepared.adapters,
            "preset": loaded.preset.name,
            "seeds": [params.seed + i for i in range(params.num_images)],
            **output.metadata,
            **prepared.metadata,
        }

