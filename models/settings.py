"""Every limit and default of the app in one place, each overridable by an environment variable.

The UI's slider bounds and each job's `check_inputs` read the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


@dataclass(frozen=True)
class Limits:
    """Per-request caps (env: `DEPICT_MAX_SIDE`, `DEPICT_MAX_STEPS`, ...)."""

    max_side: int = field(default_factory=lambda: _env_int("DEPICT_MAX_SIDE", 1024))
    min_side: int = 8
    max_steps: int = field(default_factory=lambda: _env_int("DEPICT_MAX_STEPS", 100))
    max_images: int = field(default_factory=lambda: _env_int("DEPICT_MAX_IMAGES", 8))
    max_guidance: float = field(default_factory=lambda: _env_float("DEPICT_MAX_GUIDANCE", 30.0))
    max_adapter_weight: float = 2.0
    max_prompt_chars: int = field(default_factory=lambda: _env_int("DEPICT_MAX_PROMPT_CHARS", 2000))
    max_seed: int = 2**32 - 1
    max_upload_bytes: int = field(default_factory=lambda: _env_int("DEPICT_MAX_UPLOAD_MB", 20) * 2**20)
    max_image_pixels: int = field(default_factory=lambda: _env_int("DEPICT_MAX_IMAGE_PIXELS", 4096 * 4096))


def adapters_dir() -> Path:
    """The user's LoRA folder (env `DEPICT_ADAPTERS`, default `./adapters`)."""
    return Path(os.environ.get("DEPICT_ADAPTERS", "adapters"))


def outputs_dir() -> Path | None:
    """Where the app keeps every image it makes (env `DEPICT_OUTPUTS`, default `./outputs`); None when it keeps none:
    `DEPICT_OUTPUTS=off`, or unset on Hugging Face Spaces."""
    value = os.environ.get("DEPICT_OUTPUTS") or ("off" if os.environ.get("SPACE_ID") else "outputs")
    return None if value.lower() == "off" else Path(value)


def styles_file() -> Path:
    """The user's style presets (env `DEPICT_STYLES`, default `./styles.csv`), read beside the shipped ones."""
    return Path(os.environ.get("DEPICT_STYLES", "styles.csv"))


def max_loaded_presets() -> int:
    """How many presets stay loaded before the least recently used one is evicted."""
    return _env_int("DEPICT_MAX_LOADED_PRESETS", 2)


def large_unet_parameters() -> int:
    """UNets with at least this many parameters are large enough for bf16 and compile to pay (env
    `DEPICT_LARGE_UNET`; SD-sized UNets hold ~860M, the bundled ones ~5M)."""
    return _env_int("DEPICT_LARGE_UNET", 100_000_000)


def _env_mode(name: str, modes: tuple[str, ...]) -> str:
    """An `auto|...|off` switch; `1`/`true`/`yes` read as the first non-auto mode, `0`/`false`/`no` as off."""
    value = os.environ.get(name, "auto").strip().lower() or "auto"
    value = {"1": modes[1], "true": modes[1], "yes": modes[1], "0": "off", "false": "off", "no": "off"}.get(value, value)
    if value not in modes:
        raise ValueError(f"`{name}` must be one of {', '.join(modes)}, got {value!r}.")
    return value


def compile_mode() -> str:
    """`DEPICT_COMPILE`: auto (large UNets compiled, small ones traced on CPU), on (every UNet compiled) or off
    (no compile, no traced graphs, no compile cache)."""
    return _env_mode("DEPICT_COMPILE", ("auto", "on", "off"))


def quantize_mode() -> str:
    """`DEPICT_QUANTIZE`: auto (float until int8 is measured faster at SD size with its compile cached), int8 (every
    plain UNet on CPU) or off."""
    return _env_mode("DEPICT_QUANTIZE", ("auto", "int8", "off"))


def compile_cache_dir() -> Path:
    """Where compiled kernels and graphs are kept across starts (env `DEPICT_COMPILE_CACHE`, default
    `./compile_cache`, git-ignored)."""
    return Path(os.environ.get("DEPICT_COMPILE_CACHE", "compile_cache"))


LIMITS = Limits()
