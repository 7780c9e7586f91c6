"""What every job shares: the sampling parameters, their checks, and running a diffusers pipeline under its lock.

A job reads like a diffusers pipeline: `check_inputs` -> `prepare` -> `run` -> `postprocess`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields

import torch
from PIL import Image

from .. import hub
from ..control import JobControl
from ..errors import JobCancelled, OutOfMemory
from ..graphs import graph_of, stand_ins
from ..pipelines import LoadedPreset, PipelineCache
from ..presets import Preset
from ..prompt_warnings import prompt_warnings
from ..result import Result
from ..schedulers import check_scheduler
from ..settings import LIMITS


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
        skip = {"image", "mask"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_text(value, name: str, required: bool) -> None:
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be text, got {type(value).__name__}.")
    if required and not value.strip():
        raise ValueError(f"`{name}` is empty: describe what you want to see.")
    if len(value) > LIMITS.max_prompt_chars:
        raise ValueError(f"`{name}` must be at most {LIMITS.max_prompt_chars} characters, got {len(value)}.")
    if "\x00" in value:
        raise ValueError(f"`{name}` contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"`{name}` is not valid Unicode text (it holds unpaired surrogates).") from None


def check_range(value, name: str, low: float, high: float, integer: bool = False) -> None:
    valid = _is_int(value) if integer else _is_number(value)
    if not valid or not low <= value <= high:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"`{name}` must be {kind} in [{low}, {high}], got {value!r}.")


def check_size(width, height) -> None:
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        check_range(value, name, LIMITS.min_side, LIMITS.max_side, integer=True)
        if value % 8:
            raise ValueError(f"`{name}` must be a multiple of 8, got {value}.")


def check_sampling(params: SamplingParams) -> None:
    check_text(params.negative_prompt, "negative_prompt", required=False)
    check_range(params.seed, "seed", 0, LIMITS.max_seed, integer=True)
    if params.steps is not None:
        check_range(params.steps, "steps", 1, LIMITS.max_steps, integer=True)
    if params.guidance is not None:
        check_range(params.guidance, "guidance", 0.0, LIMITS.max_guidance)
    check_range(params.num_images, "num_images", 1, LIMITS.max_images, integer=True)
    check_scheduler(params.scheduler)
    if params.fast_decode not in (None, True, False):
        raise ValueError(f"`fast_decode` must be true, false or null, got {params.fast_decode!r}.")


def check_preset_sampler(params, preset: Preset) -> None:
    """A sampler the preset's model is made for (a distilled student draws only with its own)."""
    chosen = getattr(params, "scheduler", None)
    if chosen is not None and preset.samplers and chosen not in preset.samplers:
        raise ValueError(f"`scheduler` must be one of {', '.join(preset.samplers)} for preset '{preset.name}' "
                         f"(its model is distilled for it), got {chosen!r}.")  # fmt: skip


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
    extras: dict = field(default_factory=dict)


class Job:
    """Base of the jobs: subclasses set `name` and `role` and define the four stages."""

    name: str = ""
    role: str = "text_to_image"

    def __init__(self, cache: PipelineCache, preset_for):
        self.cache = cache
        self.preset_for = preset_for  # name or None -> Preset (the allow-list)

    def __call__(self, params, control: JobControl | None = None) -> Result:
        """Run the job; a first download of the preset's files reports its progress to `control`."""
        with hub.downloads_reported_to(control.report if control else None):
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
        images = self.run(params, loaded, prepared, control or JobControl())
        timings["run"] = time.perf_counter() - run_started
        if "compile_wait" in prepared.extras:  # the first compiled call of this process at this shape
            timings["compile_wait"] = prepared.extras["compile_wait"]
        result = self.postprocess(params, loaded, prepared, images)
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

    def run(self, params, loaded: LoadedPreset, prepared: Prepared, control: JobControl) -> list[Image.Image]:
        return run_pipeline(loaded, prepared, params, control)

    def postprocess(self, params, loaded: LoadedPreset, prepared: Prepared, images: list[Image.Image]) -> Result:
        return Result(images=images, metadata=self.metadata(params, loaded, prepared))

    def metadata(self, params, loaded: LoadedPreset, prepared: Prepared) -> dict:
        role = prepared.role
        source_role = "instruct_edit" if role == "instruct_edit" else "text_to_image"
        return {
            "job": self.name,
            **params.as_metadata(),
            **asdict(prepared.resolved),
            "adapters": prepared.adapters,
            "preset": loaded.preset.name,
            "model": loaded.preset.sources()[source_role],
            "scheduler": params.scheduler or loaded.scheduler_configs[role]["_class_name"],
            "seeds": [params.seed + i for i in range(params.num_images)],
            "attention": loaded.attention,
            "decoder": prepared.extras.get("decoder", "full"),
            "unet": prepared.extras.get("unet", "float"),  # "traced", "compiled" or "int8" when a graph of it ran
            "device": loaded.policy.device,
            "dtype": loaded.policy.key[1],
            "speed_policy": loaded.speed.as_metadata(),
        }


def resolve(params: SamplingParams, preset: Preset, width=None, height=None, job: str = "") -> Resolved:
    return Resolved(
        steps=params.steps if params.steps is not None else preset.steps,
        guidance=params.guidance if params.guidance is not None else preset.default_guidance(job),
        width=width or preset.width,
        height=height or preset.height,
    )


def generators(seed: int, count: int) -> list[torch.Generator]:
    """One CPU generator per image, so image i is reproducible alone with seed + i."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(count)]


def run_pipeline(loaded: LoadedPreset, prepared: Prepared, params: SamplingParams, control: JobControl):
    """Call the role's pipeline under its lock with the request's adapters and scheduler; PIL images back.

    A failure leaves the pipeline usable: adapter state is re-applied by the next request, and
    out-of-memory empties the device cache and says what to lower.
    """
    role, resolved = prepared.role, prepared.resolved
    pipeline = loaded.pipeline(role)
    tiny = fast_decoder(loaded, params)  # loaded outside the lock on first use
    with loaded.lock_for(role):
        args = dict(prepared.args)
        adapters_decoder = None
        if role != "instruct_edit":  # instruct edit takes no adapters and leaves the shared modules' graphs as set
            loaded.release_shared_adapters()
            adapters_decoder = loaded.adapters.apply(pipeline, prepared.adapters)
            for graph in stand_ins(pipeline):  # traced, compiled or int8; a request's own LoRA adapters run eagerly
                graph.enabled = not any(prepared.adapters.values())
            args = loaded.prompts.substitute(pipeline, args, prepared.adapters, guided=resolved.guidance > 1)
        decoder = adapters_decoder or tiny
        prepared.extras["decoder"] = "adapters" if adapters_decoder else "tiny" if decoder is not None else "full"
        if decoder is not None:
            args["output_type"] = "latent"
        pipeline.scheduler = loaded.scheduler(role, params.scheduler)
        call = dict(args, num_inference_steps=resolved.steps, guidance_scale=resolved.guidance,
                    num_images_per_prompt=params.num_images, generator=generators(params.seed, params.num_images),
                    callback_on_step_end=control.callback(resolved.steps))  # fmt: skip
        shape = (role, resolved.width, resolved.height, params.num_images, resolved.guidance > 1)
        unet_graph = graph_of(pipeline.unet)
        unet_calls = unet_graph.calls if unet_graph else 0
        try:
            output = loaded.first_call(pipeline, shape, control, lambda: pipeline(**call), prepared.extras)
        except torch.OutOfMemoryError as error:
            loaded.adapters.reset()
            PipelineCache.empty_device_cache()
            raise OutOfMemory(
                "The device ran out of memory: lower the image size or the number of images and try again."
            ) from error
        except Exception:
            loaded.adapters.reset()
            raise
        if control.cancel.is_set():
            raise JobCancelled("The job was cancelled.")
        prepared.extras["unet"] = unet_graph.kind if unet_graph and unet_graph.calls > unet_calls else "float"
        if decoder is None:
            return output.images
        with torch.no_grad():
            decoded = decoder.decode(output.images.to(decoder.dtype) / decoder.config.scaling_factor).sample
        return pipeline.image_processor.postprocess(decoded.float(), output_type="pil")


def fast_decoder(loaded: LoadedPreset, params: SamplingParams):
    """The tiny autoencoder when this request decodes fast (on CPU by default), else None (the pipeline's VAE)."""
    wanted = params.fast_decode if params.fast_decode is not None else loaded.policy.device == "cpu"
    return loaded.tiny_vae() if wanted else None
