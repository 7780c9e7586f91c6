"""A preset's pipelines on one device: the base, its derived task pipelines, adapters, locks, and running them.

img2img and inpainting come from `from_pipe` (no second copy of any weight); the instruct-edit pipeline reuses the
base VAE and text encoder when the preset says they match.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from diffusers import (
    AutoencoderTiny,
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    ControlNetModel,
    DDPMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    UNet2DConditionModel,
)
from PIL import Image

from . import compile_cache, hub, openvino_runtime, quantize
from .adapters import AdapterCatalog, AdapterState
from .captioner import Captioner
from .control import JobControl
from .devices import (
    DevicePolicy,
    configure_controlnet,
    configure_pipeline,
    empty_device_cache,
    memory_format,
    pin_execution_device,
)
from .errors import JobCancelled, OutOfMemory, PresetUnavailable
from .graphs import TINY_DECODER, graph_of, stand_ins
from .loading import PIPELINE_LOAD_OPTIONS, load_pretrained
from .presets import Preset
from .priming import prime
from .prompt_cache import PromptCache
from .reference import ReferenceAdapter
from .schedulers import make_scheduler
from .settings import adapters_dir
from .speed import decide
from .upscaler import Upscaler

log = logging.getLogger(__name__)

ROLES = ("text_to_image", "image_to_image", "inpaint", "structure", "structure_image_to_image", "instruct_edit",
         "captioner", "upscaler")
SPEED_ADAPTER = "speed"
COMPILING = ("Compiling the model for this image size: the first image on this machine waits for it, "
             "later starts read what it compiled.")  # fmt: skip
BUILDING = ("A faster path for this image size is being prepared in the background; this image ran without it, "
            "later ones use it when it is ready.")  # fmt: skip


@dataclass
class RunOutput:
    """A pipeline run's images and what ran to make them."""

    images: list[Image.Image]
    metadata: dict  # model, scheduler, attention, decoder, unet, device, dtype, speed_policy
    compile_wait: float | None = None  # seconds of the first compiled call of this process at this shape


def generators(seed: int, count: int) -> list[torch.Generator]:
    """One CPU generator per image, so image i is reproducible alone with seed + i."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(count)]


class LoadedPreset:
    """A preset's pipelines on one device: the base, its derived task pipelines, adapters and a lock.

    `lock` guards everything that shares the base modules (base, img2img, inpaint, adapter state);
    the instruct-edit pipeline has its own UNet and its own lock. `speed` is the speed policy decided from the base
    model when it loads (`models.speed`); `policy` carries the dtype it chose.
    """

    def __init__(self, preset: Preset, policy: DevicePolicy, shared: LoadedPreset | None = None):
        self.preset, self.policy, self.shared = preset, policy, shared
        self.lock = shared.lock if shared else threading.RLock()  # shared modules: one lock for both presets
        self.instruct_lock = threading.RLock()
        self._load_lock = threading.RLock()  # a derived role loads the role it derives from
        self._pipelines: dict[tuple, object] = {}
        self._tiny_vae: AutoencoderTiny | None = None
        self._schedulers: dict[tuple, object] = {}  # (role, sampler name) -> scheduler, see `scheduler`
        self._warm: set[tuple] = set()  # (UNet, shape) pairs whose compiled forward has run
        self.load_seconds: dict[str, float] = {}
        self.prompts = PromptCache()
        started = time.perf_counter()
        self.base = self._load_student(shared) if shared else load_pretrained(
            AutoPipelineForText2Image.from_pretrained, preset.text_to_image, preset, "text_to_image",
            dtype=policy.dtype, variant=hub.variant(preset.text_to_image, policy.dtype), **PIPELINE_LOAD_OPTIONS,
        )  # fmt: skip
        self.speed = decide(self.base, preset, replace(policy, dtype_chosen=True) if shared else policy)
        self.policy = policy = replace(policy, dtype=self.speed.torch_dtype)
        if self.speed.compile or self.speed.openvino:
            try:
                compile_cache.prepare()
            except compile_cache.CacheRefused as error:  # costs speed, never a request
                log.warning("%s", error)
                self.speed = replace(self.speed, compile=False, openvino=(), reasons=(*self.speed.reasons, str(error)))
        int8 = self.speed.quantize == "int8"
        self.attention = configure_pipeline(self.base, policy, self.speed.compile and not int8,  # int8: its own graph
                                            self.speed.channels_last, self.speed.traced, self.speed.openvino,
                                            self.speed.quantize == "int8-hybrid")  # fmt: skip
        self.scheduler_configs = {"text_to_image": dict(self.base.scheduler.config)}
        folders = [Path(preset.adapters_dir)] if preset.adapters_dir else []
        self.catalog = AdapterCatalog([*folders, adapters_dir()] if preset.offers_adapters() else [])
        self.adapters = AdapterState(self.catalog)
        self.reference = ReferenceAdapter(preset.reference_adapter) if preset.reference_adapter else None
        if preset.speed_adapter:
            source, _, weight_name = preset.speed_adapter.partition(":")
            self.adapters.fuse_fixed(self.base, {SPEED_ADAPTER: (source, weight_name or "pytorch_lora_weights.safetensors")})
        self.int8 = quantize.quantize_unet(self.base, preset.width, preset.height, preset.steps, preset.guidance,
                                           self.speed.compile) if int8 else None  # after fusing the speed LoRA
        self._pipelines[self.key("text_to_image")] = self.base
        guided = preset.guidance > 1
        empty = self.prompts.substitute(self.base, {"prompt": ""}, {}, guided)  # the text states priming hands on
        prime(self.base, make_scheduler(None, self.scheduler_configs["text_to_image"]), preset.width, preset.height,
              1, guided, empty)  # the default request's graphs, from now on rather than at its first call
        self.load_seconds["text_to_image"] = time.perf_counter() - started
        log.info("loaded %s text_to_image in %.2fs (%s, %s; %s)", preset.name, self.load_seconds["text_to_image"],
                 *policy.key, "; ".join(self.speed.reasons))  # fmt: skip

    def _load_student(self, shared: LoadedPreset):
        """The preset folder's UNet and scheduler in a pipeline sharing every other module of `shared`'s base."""
        source = self.preset.text_to_image
        unet = load_pretrained(UNet2DConditionModel.from_pretrained, source, self.preset, "text_to_image",
                               subfolder="unet", dtype=self.policy.dtype, use_safetensors=True)  # fmt: skip
        # any scheduler class reads the folder's scheduler_config.json; its `_class_name` picks the class
        scheduler_config = load_pretrained(DDPMScheduler.load_config, source, self.preset, "text_to_image",
                                           subfolder="scheduler")  # fmt: skip
        scheduler = make_scheduler(None, dict(scheduler_config))
        return AutoPipelineForText2Image.from_pipe(shared.base, unet=unet, scheduler=scheduler)

    def key(self, role: str) -> tuple[str, str, str, str]:
        return (self.preset.name, role, *self.policy.key)

    def pipeline(self, role: str):
        """The pipeline for a role, loaded or derived on first use."""
        key = self.key(role)
        if key in self._pipelines:
            return self._pipelines[key]
        with self._load_lock:
            if key not in self._pipelines:
                started = time.perf_counter()
                pipeline = self._build(role)
                if hasattr(pipeline, "scheduler"):
                    self.scheduler_configs[role] = dict(pipeline.scheduler.config)
                self._pipelines[key] = pipeline
                self.load_seconds[role] = time.perf_counter() - started
                log.info("loaded %s %s in %.2fs", self.preset.name, role, self.load_seconds[role])
        return self._pipelines[key]

    def _build(self, role: str):
        if role in ("image_to_image", "inpaint", "structure_image_to_image"):
            auto = AutoPipelineForInpainting if role == "inpaint" else AutoPipelineForImage2Image
            # structure img2img (style transfer's `structure`) derives from the pipeline holding the ControlNet
            pipeline = auto.from_pipe(self.pipeline("structure") if role.startswith("structure") else self.base)
            pipeline.set_progress_bar_config(disable=True)
            pin_execution_device(pipeline, self.policy)
            return pipeline
        if role == "structure":
            return self._build_structure()
        if role == "instruct_edit":
            return self._build_instruct()
        if role in ("captioner", "upscaler"):
            if self.shared:
                return self.shared.pipeline(role)
            loader = {"captioner": Captioner, "upscaler": Upscaler}[role]
            source = getattr(self.preset, role)
            if not source:
                raise PresetUnavailable(f"Preset '{self.preset.name}' has no {role} model.")
            return load_pretrained(loader, source, self.preset, role, policy=self.policy)
        raise ValueError(f"Unknown pipeline role {role!r}; roles are {', '.join(ROLES)}.")

    def _build_structure(self):
        """The base pipeline with the preset's canny ControlNet (`from_pipe`: every other module shared)."""
        preset = self.preset
        if not preset.structure:
            raise PresetUnavailable(preset.without_structure())
        controlnet = load_pretrained(ControlNetModel.from_pretrained, preset.structure, preset, "structure",
                                     dtype=self.policy.dtype, use_safetensors=True)  # fmt: skip
        controlnet.to(self.policy.device, memory_format=memory_format("unet", self.speed.channels_last)).eval()
        pipeline = AutoPipelineForText2Image.from_pipe(self.base, controlnet=controlnet)
        configure_controlnet(pipeline, self.policy, self.speed.compile and self.speed.quantize != "int8",
                             self.speed.traced, self.speed.openvino)  # fmt: skip
        pipeline.set_progress_bar_config(disable=True)
        pin_execution_device(pipeline, self.policy)
        return pipeline

    def _build_instruct(self):
        preset = self.preset
        if not preset.instruct_edit:
            raise PresetUnavailable(f"Preset '{preset.name}' has no instruction-editing model.")
        shared = {}
        if preset.instruct_shares_components:
            shared = {"vae": self.base.vae, "text_encoder": self.base.text_encoder, "tokenizer": self.base.tokenizer}
        pipeline = load_pretrained(
            StableDiffusionInstructPix2PixPipeline.from_pretrained, preset.instruct_edit, preset, "instruct_edit",
            dtype=self.policy.dtype, variant=hub.variant(preset.instruct_edit, self.policy.dtype), **shared,
            **PIPELINE_LOAD_OPTIONS,
        )  # fmt: skip
        configure_pipeline(pipeline, self.policy, self.speed.compile, self.speed.channels_last, self.speed.traced,
                           self.speed.openvino, self.speed.quantize == "int8-hybrid")  # fmt: skip
        return pipeline

    def tiny_vae(self) -> AutoencoderTiny | None:
        """The speed policy's tiny autoencoder for fast decode, loaded on first use; None if none is at hand."""
        if not self.speed.tiny_decoder or self._tiny_vae is not None:
            return self._tiny_vae
        with self._load_lock:
            if self._tiny_vae is None:
                try:
                    vae = load_pretrained(AutoencoderTiny.from_pretrained, self.speed.tiny_decoder, self.preset,
                                          "vae_tiny", dtype=self.policy.dtype, use_safetensors=True)  # fmt: skip
                except PresetUnavailable as error:
                    log.warning("fast decode off for %s: %s", self.preset.name, error)
                    return None
                layout = memory_format("vae", self.speed.channels_last)
                vae = vae.to(self.policy.device, memory_format=layout).eval()
                if "vae_tiny" in self.speed.openvino:
                    openvino_runtime.install(vae.decoder, TINY_DECODER)
                self._tiny_vae = vae
        return self._tiny_vae

    def scheduler(self, role: str, name: str | None):
        """The role's sampler `name` (None: the model's own), built once and reused under the role's lock: every
        pipeline call's `set_timesteps` resets its state (building one anew cost 0.7 ms a call)."""
        key = (role, name)
        if key not in self._schedulers:
            self._schedulers[key] = make_scheduler(name, self.scheduler_configs[role])
        return self._schedulers[key]

    def lock_for(self, role: str) -> threading.RLock:
        return self.instruct_lock if role == "instruct_edit" else self.lock

    def run(self, role: str, args: dict, *, steps: int, guidance: float, size: tuple[int, int], num_images: int,
            seed: int, scheduler: str | None, adapters: dict[str, float], fast_decode: bool | None,
            reference_scale: float | None, control: JobControl) -> RunOutput:  # fmt: skip
        """Call the role's pipeline under its lock with these adapters, sampler and decoder (`fast_decode` None: the
        tiny autoencoder on CPU), and the IP-Adapter reference image in `args` at `reference_scale`.

        A failure leaves the pipeline usable: adapter state is re-applied by the next request, and out-of-memory
        empties the device cache and says what to lower.
        """
        pipeline = self.pipeline(role)
        wanted = fast_decode if fast_decode is not None else self.policy.device == "cpu"
        tiny = self.tiny_vae() if wanted else None  # loaded outside the lock on first use
        reference = nullcontext() if reference_scale is None else self.reference.active(pipeline, reference_scale)
        with self.lock_for(role), reference:
            adapters_decoder = None
            if role != "instruct_edit":  # instruct edit takes no adapters and leaves the shared modules' graphs as set
                self._release_shared_adapters()
                adapters_decoder = self.adapters.apply(pipeline, adapters)
                for graph in stand_ins(pipeline):  # traced, compiled or int8; a request's own LoRA adapters run eagerly
                    graph.enabled = not any(adapters.values())
                args = self.prompts.substitute(pipeline, args, adapters, guided=guidance > 1)
            decoder = adapters_decoder or tiny
            if decoder is not None:
                args = dict(args, output_type="latent")
            pipeline.scheduler = self.scheduler(role, scheduler)
            call = dict(args, num_inference_steps=steps, guidance_scale=guidance, num_images_per_prompt=num_images,
                        generator=generators(seed, num_images), callback_on_step_end=control.callback(steps))  # fmt: skip
            unet_graph = graph_of(pipeline.unet)
            unet_calls = unet_graph.calls if unet_graph else 0
            shape = (role, *size, num_images, guidance > 1)
            try:
                output, compile_wait = self._first_call(pipeline, shape, control, lambda: pipeline(**call))
            except torch.OutOfMemoryError as error:
                self.adapters.reset()
                empty_device_cache()
                raise OutOfMemory(
                    "The device ran out of memory: lower the image size or the number of images and try again."
                ) from error
            except Exception:
                self.adapters.reset()
                raise
            if control.cancel.is_set():
                raise JobCancelled("The job was cancelled.")
            ran_graph = unet_graph is not None and unet_graph.calls > unet_calls
            if any(graph.building for graph in stand_ins(pipeline)):
                control.report(BUILDING)
            images = output.images if decoder is None else self._decode(pipeline, decoder, output.images)
        metadata = {
            "model": self.preset.sources()["instruct_edit" if role == "instruct_edit" else "text_to_image"],
            **({"structure_model": self.preset.structure} if role.startswith("structure") else {}),
            "scheduler": scheduler or self.scheduler_configs[role]["_class_name"],
            "attention": self.attention,
            "decoder": "adapters" if adapters_decoder else "tiny" if decoder is not None else "full",
            "unet": unet_graph.kind if ran_graph else "float",  # "traced", "compiled" or "int8" when a graph of it ran
            "device": self.policy.device,
            "dtype": self.policy.key[1],
            "speed_policy": self.speed.as_metadata(),
        }
        return RunOutput(images=images, metadata=metadata, compile_wait=compile_wait)

    def _release_shared_adapters(self) -> None:
        """Deactivate the sharing preset's adapters (call under `lock`): its text-encoder LoRAs act on ours too."""
        if self.shared:
            self.shared.adapters.apply(self.shared.base, {})

    @staticmethod
    def _decode(pipeline, decoder, latents: torch.Tensor) -> list[Image.Image]:
        with torch.no_grad():
            decoded = decoder.decode(latents.to(decoder.dtype) / decoder.config.scaling_factor).sample
        return pipeline.image_processor.postprocess(decoded.float(), output_type="pil")

    def _first_call(self, pipeline, shape: tuple, control: JobControl, run) -> tuple[object, float | None]:
        """`run()` and, when the pipeline's UNet is under `torch.compile` (on CUDA) and has not yet run at this shape,
        the seconds it waited (compiling, or reading Inductor's caches, and the run); says so to `control` first and
        survives a broken cache (`compile_cache.guarded_call`). On CPU nothing is compiled on a request's path: the
        graph stand-ins build their graphs in the background (`models.graphs`)."""
        unet = getattr(pipeline, "unet", None)
        if not getattr(unet, "_compiled_call_impl", None) or (id(unet), shape) in self._warm:
            return run(), None
        control.report(COMPILING)
        started = time.perf_counter()
        # a library that neither loads nor compiles leaves its shape eager by itself (`compile_ahead`)
        output = compile_cache.guarded_call(run, lambda: setattr(unet, "_compiled_call_impl", None))
        self._warm.add((id(unet), shape))
        waited = time.perf_counter() - started
        log.info("first compiled call of %s at %s: %.1fs", self.preset.name, shape, waited)
        return output, waited
