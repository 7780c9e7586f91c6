"""The validators every job's `check_inputs` is made of: each raises `ValueError` naming the argument, the rule and
the bad value, before any model work."""

from __future__ import annotations

import math

from ..presets import Preset
from ..schedulers import check_scheduler
from ..settings import LIMITS

MAX_STRUCTURE = 2.0  # the ControlNet conditioning scale's upper bound (A1111 and diffusers' examples stay within it)


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


def check_sampling(params) -> None:
    """The fields of `SamplingParams`."""
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


def check_structure(structure, preset: Preset, keep_layout: float = 0.0) -> None:
    """`structure`, the ControlNet's conditioning scale (0: off): in range, on a preset that has a structure model, and
    not together with `keep_layout` (two ways of keeping the original; one at a time)."""
    check_range(structure, "structure", 0.0, MAX_STRUCTURE)
    if structure and not preset.structure:
        raise ValueError(f"{preset.without_structure()} Set `structure` to 0 or pick another preset.")
    if structure and keep_layout:
        raise ValueError("`structure` and `keep_layout` are two ways of keeping the original: set one of them to 0.")
