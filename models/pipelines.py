"""The pipeline cache: one loaded base pipeline per preset, task pipelines derived from it sharing its weights.

Keyed by the frozen tuple (preset, role, device, dtype). img2img and inpainting come from `from_pipe` (no second
copy of any weight); the instruct-edit pipeline reuses the base VAE and text encoder when the preset says they
match. Whole presets are evicted least-recently-used first.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import (
    AutoencoderTiny,
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DDPMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    UNet2DConditionModel,
)

from . import compile_cache, hub, quantize
from .adapters import AdapterCatalog, AdapterState
from .captioner import Captioner
from .control import JobControl
from .devices import DevicePolicy, configure_pipeline, memory_format, pin_execution_device
from .errors import PresetUnavailable
from .graphs import graph_of
from .presets import Preset, hub_reachable, is_available
from .prompt_cache import PromptCache
from .reference import ReferenceAdapter
from .schedulers import make_scheduler
from .settings import adapters_dir, max_loaded_presets
from .speed import decide

log = logging.getLogger(__name__)

ROLES = ("text_to_image", "image_to_image", "inpaint", "instruct_edit", "captioner")
# Weights only from safetensors, no code from the model folder, no safety checker model.
_PIPELINE_LOAD_OPTIONS = {"use_safetensors": True, "trust_remote_code": False, "safety_checker": None,
                          "feature_extractor": None, "requires_safety_checker": False}  # fmt: skip
SPEED_ADAPTER = "speed"
COMPILING = ("Compiling the model for this image size: the first image on this machine waits for it, "
             "later starts read what it compiled.")  # fmt: skip


def load_pretrained(loader, source: str, preset: Preset, role: str, **kwargs):
    """`loader(source, ...)` from a local folder or the hub cache, downloading the preset's files first when the hub
    answers; a `PresetUnavailable` naming what to do otherwise."""
    local_only = Path(source).is_dir() or is_available(source)
    if not local_only and not hub_reachable():
        raise PresetUnavailable(preset.unavailable_message(role))
    needed = hub.files(preset, fp16=kwargs.get("variant") == "fp16").get(source) if not local_only else None
    try:
        if needed:
            hub.download(source, needed)
            local_only = True
        return loader(source, local_files_only=local_only, **kwargs)
    except Exception as error:  # whatever stops a load, the user is told which preset and what to do
        detail = f" ({type(error).__name__}: {str(error)[:200]})" if local_only else ""
        raise PresetUnavailable(preset.unavailable_message(role, detail)) from error


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
        self._load_lock = threading.Lock()
        self._pipelines: dict[tuple, object] = {}
        self._tiny_vae: AutoencoderTiny | None = None
        self._schedulers: dict[tuple, object] = {}  # (role, sampler name) -> scheduler, see `scheduler`
        self._warm: set[tuple] = set()  # (UNet, shape) pairs whose compiled forward has run
        self.load_seconds: dict[str, float] = {}
        self.compile_seconds: dict[tuple, float] = {}  # first compiled call per (role, shape), compile included
        self.prompts = PromptCache()
        started = time.perf_counter()
        self.base = self._load_student(shared) if shared else load_pretrained(
            AutoPipelineForText2Image.from_pretrained, preset.text_to_image, preset, "text_to_image",
            dtype=policy.dtype, variant=hub.variant(preset.text_to_image, policy.dtype), **_PIPELINE_LOAD_OPTIONS,
        )  # fmt: skip
        self.speed = decide(self.base, preset, replace(policy, dtype_chosen=True) if shared else policy)
        self.policy = policy = replace(policy, dtype=self.speed.torch_dtype)
        if self.speed.compile:
            compile_cache.prepare()
        int8 = self.speed.quantize == "int8"
        self.attention = configure_pipeline(self.base, policy, self.speed.compile and not int8,  # int8: its own graph
                                            self.speed.channels_last, self.speed.traced)
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

    def release_shared_adapters(self) -> None:
        """Deactivate the sharing preset's adapters (call under `lock`): its text-encoder LoRAs act on ours too."""
        if self.shared:
            self.shared.adapters.apply(self.shared.base, {})

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
        if role in ("image_to_image", "inpaint"):
            auto = AutoPipelineForImage2Image if role == "image_to_image" else AutoPipelineForInpainting
            pipeline = auto.from_pipe(self.base)
            pipeline.set_progress_bar_config(disable=True)
            pin_execution_device(pipeline, self.policy)
            return pipeline
        if role == "instruct_edit":
            return self._build_instruct()
        if role == "captioner":
            if self.shared:
                return self.shared.pipeline("captioner")
            if not self.preset.captioner:
                raise PresetUnavailable(f"Preset '{self.preset.name}' has no captioning model.")
            return load_pretrained(Captioner, self.preset.captioner, self.preset, "captioner", policy=self.policy)
        raise ValueError(f"Unknown pipeline role {role!r}; roles are {', '.join(ROLES)}.")

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
            **_PIPELINE_LOAD_OPTIONS,
        )  # fmt: skip
        configure_pipeline(pipeline, self.policy, self.speed.compile, self.speed.channels_last, self.speed.traced)
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
                self._tiny_vae = vae.to(self.policy.device, memory_format=layout).eval()
        return self._tiny_vae

    def first_call(self, pipeline, shape: tuple, control: JobControl, run, extras: dict):
        """`run()`; when the pipeline's compiled UNet has not yet run at this shape, say that the request waits for
        compilation, time it (`extras["compile_wait"]`, seconds: compiling, or loading the compiled library or
        cache, and the run) and survive a broken `torch.compile` cache (`compile_cache.guarded_call`)."""
        unet = getattr(pipeline, "unet", None)
        graph = graph_of(unet) if unet is not None else None
        packaged = graph is not None and graph.kind == "compiled" and graph.enabled
        if not (packaged or getattr(unet, "_compiled_call_impl", None)) or (id(unet), shape) in self._warm:
            return run()
        control.report(COMPILING)
        started = time.perf_counter()
        # a library that neither loads nor compiles leaves its shape eager by itself (`compile_ahead`)
        output = compile_cache.guarded_call(run, lambda: setattr(unet, "_compiled_call_impl", None))
        self._warm.add((id(unet), shape))
        self.compile_seconds[shape] = extras["compile_wait"] = time.perf_counter() - started
        log.info("first compiled call of %s at %s: %.1fs", self.preset.name, shape, self.compile_seconds[shape])
        return output

    def scheduler(self, role: str, name: str | None):
        """The role's sampler `name` (None: the model's own), built once and reused under the role's lock: every
        pipeline call's `set_timesteps` resets its state (building one anew cost 0.7 ms a call)."""
        key = (role, name)
        if key not in self._schedulers:
            self._schedulers[key] = make_scheduler(name, self.scheduler_configs[role])
        return self._schedulers[key]

    def lock_for(self, role: str) -> threading.RLock:
        return self.instruct_lock if role == "instruct_edit" else self.lock


class PipelineCache:
    """Loaded presets, least recently used evicted first once more than `max_loaded_presets()` are held.

    A preset with a `base` is loaded beside its base (which loads first and is never evicted before it)."""

    def __init__(self, policy: DevicePolicy, registry: dict[str, Preset] | None = None):
        self.policy = policy
        self.registry = registry or {}
        self._loaded: OrderedDict[str, LoadedPreset] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, preset: Preset) -> LoadedPreset:
        with self._lock:
            if preset.name in self._loaded:
                self._loaded.move_to_end(preset.name)
                return self._loaded[preset.name]
            loading = self._loading.setdefault(preset.name, threading.Lock())
        shared = self.get(self.registry[preset.base]) if preset.base else None
        with loading:  # one loader per preset; others wait for it
            with self._lock:
                if preset.name in self._loaded:
                    return self._loaded[preset.name]
            entry = LoadedPreset(preset, shared.policy if shared else self.policy, shared)
            with self._lock:
                self._loaded[preset.name] = entry
                self._evict()
            return entry

    def _evict(self) -> None:
        """Drop least recently used presets (call under `_lock`), never one that a loaded preset shares."""
        shared = {entry.preset.base for entry in self._loaded.values()}
        for name in list(self._loaded)[:-1]:  # never the one just loaded
            if len(self._loaded) <= max(1, max_loaded_presets()):
                break
            if name not in shared:
                del self._loaded[name]
                log.info("evicted preset %s", name)
                self.empty_device_cache()

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    @staticmethod
    def empty_device_cache() -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
