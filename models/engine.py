"""The engine: the one object the UI, the CLI and the benchmarks talk to."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import diffusers
import transformers

from .adapters import AdapterCatalog
from .control import JobControl
from .devices import choose_policy
from .graphs import wait_for_builds
from .jobs import (
    Describe,
    DescribeParams,
    Inpaint,
    InpaintParams,
    InstructEdit,
    InstructEditParams,
    Regenerate,
    RegenerateParams,
    StyleTransfer,
    StyleTransferParams,
    TextToImage,
    TextToImageParams,
    Upscale,
    UpscaleParams,
)
from .pipelines import LoadedPreset, PipelineCache
from .presets import DEFAULT_PRESET, Preset, preset_from_folder, presets, sharing
from .result import Result
from .settings import adapters_dir
from .style_presets import style_presets

log = logging.getLogger(__name__)
WARM_PROMPT = "a picture"  # any prompt: a shape's graphs depend on sizes, not words


class Engine:
    """Cached pipelines for every job. Thread-safe; each call states its full settings.

    `preset` is an allow-listed name or (from the command line) a local preset folder, which joins the allow-list.
    Keyword options of each job are the fields of its params dataclass (`models.jobs`); `None` means the preset's
    default, and `control` reports progress and cancels.
    """

    def __init__(self, preset: str = DEFAULT_PRESET, device: str | None = None, dtype: str | None = None):
        self.registry: dict[str, Preset] = presets()
        if preset not in self.registry:
            if not Path(preset).is_dir():
                raise ValueError(f"`preset` must be one of {', '.join(self.registry)} or a model folder; got {preset!r}.")
            preset = self.register_folder(preset)
        self.default_preset = preset
        diffusers.utils.logging.disable_progress_bar()  # the engine logs each load with its time instead
        transformers.utils.logging.disable_progress_bar()
        self.policy = choose_policy(device, dtype)
        self.cache = PipelineCache(self.policy, self.registry)
        jobs = (TextToImage, Describe, Regenerate, StyleTransfer, Inpaint, InstructEdit, Upscale)
        self._jobs = {job.name: job(self.cache, self.preset) for job in jobs}

    def register_folder(self, folder: str | Path, name: str | None = None, **defaults) -> str:
        """Add a local model folder (with a `preset.json`, or a diffusers text-to-image folder) to the allow-list;
        `defaults` override its preset's fields (e.g. `steps=2`)."""
        local = sharing(replace(preset_from_folder(folder, name), **defaults), self.registry)
        self.registry[local.name] = local
        return local.name

    def preset(self, name: str | None = None) -> Preset:
        """The allow-listed preset of that name (the default for None); `ValueError` for any other name."""
        key = self.default_preset if name in (None, "") else name
        if not isinstance(key, str) or key not in self.registry:
            raise ValueError(f"`preset` must be one of {', '.join(self.registry)}; got {name!r}.")
        return self.registry[key]

    def load(self, preset: str | None = None) -> LoadedPreset:
        """Load a preset's base pipeline now (it is otherwise loaded on first use)."""
        return self.cache.get(self.preset(preset))

    def warm(self, preset: str | None = None, width: int | None = None, height: int | None = None,
             num_images: int = 1, guidance: float | None = None) -> dict:  # fmt: skip
        """Build every faster path of text -> image at this shape and guidance (None: the preset's) and return when
        they are ready: what runs there (`unet`: compiled, openvino, traced, int8 or float; `decoder`; the speed
        policy) and the seconds it took. Requests never wait for these builds (they run eagerly until a build is
        ready); a long batch and the benchmarks of warm speed call this first. Its two images take one step each (the
        graphs do not depend on the step count)."""
        started = time.perf_counter()
        options = {"preset": preset, "width": width, "height": height, "num_images": num_images, "steps": 1,
                   "guidance": guidance}  # fmt: skip
        self.text_to_image(WARM_PROMPT, **options)  # the first sight of each input signature starts its build
        wait_for_builds()
        ready = self.text_to_image(WARM_PROMPT, **options).metadata
        return {"unet": ready["unet"], "decoder": ready["decoder"], "speed_policy": ready["speed_policy"],
                "seconds": round(time.perf_counter() - started, 3)}

    def presets(self) -> list[dict]:
        """Every preset with whether its weights are here."""
        return [
            {"name": p.name, "label": p.label, "available": p.available(), "missing": p.missing(),
             "default": p.name == self.default_preset}  # fmt: skip
            for p in self.registry.values()
        ]

    def adapters(self, preset: str | None = None) -> list[str]:
        """Names of the LoRA adapters a request may use with this preset."""
        chosen = self.preset(preset)
        if not chosen.offers_adapters():
            return []
        folders = [Path(chosen.adapters_dir)] if chosen.adapters_dir else []
        return AdapterCatalog([*folders, adapters_dir()]).names()

    def text_to_image(self, prompt: str, control: JobControl | None = None, **options) -> Result:
        return self._jobs["text_to_image"](TextToImageParams(prompt=prompt, **options), control)

    def describe(self, image, preset: str | None = None, detail: str = "short") -> str:
        return self._jobs["describe"](DescribeParams(image=image, preset=preset, detail=detail)).metadata["description"]

    def regenerate(self, image, description: str, control: JobControl | None = None, **options) -> Result:
        return self._jobs["regenerate"](RegenerateParams(image=image, description=description, **options), control)

    def styles(self, preset: str | None = None) -> list[str]:
        """What style transfer takes as `style` on this preset: its style adapters, then the style presets."""
        adapters = self.adapters(preset)
        return [*adapters, *(name for name in style_presets() if name not in adapters)]

    def style_transfer(self, image, style: str | None = None, style_image=None, control: JobControl | None = None,
                       **options) -> Result:  # fmt: skip
        params = StyleTransferParams(image=image, style=style, style_image=style_image, **options)
        return self._jobs["style_transfer"](params, control)

    def inpaint(self, image, mask, prompt: str, control: JobControl | None = None, **options) -> Result:
        return self._jobs["inpaint"](InpaintParams(image=image, mask=mask, prompt=prompt, **options), control)

    def instruct_edit(self, image, instruction: str, control: JobControl | None = None, **options) -> Result:
        params = InstructEditParams(image=image, instruction=instruction, **options)
        return self._jobs["instruct_edit"](params, control)

    def upscale(self, image, scale: int = 2, preset: str | None = None, control: JobControl | None = None) -> Result:
        """`image` `scale` (2 or 4) times larger with the preset's super-resolution model."""
        return self._jobs["upscale"](UpscaleParams(image=image, scale=scale, preset=preset), control)
