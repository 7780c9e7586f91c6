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
    value = os.environ.get("DEPICT_OUTPUTS") or ("off" if on_spaces() else "outputs")
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


def runtime_mode() -> str:
    """`DEPICT_RUNTIME`: auto (OpenVINO for large models on CPU, torch elsewhere), openvino (for every model on CPU) or
    torch (never OpenVINO)."""
    return _env_mode("DEPICT_RUNTIME", ("auto", "openvino", "torch"))


def compile_cache_dir() -> Path:
    """Where compiled kernels and graphs are kept across starts (env `DEPICT_COMPILE_CACHE`, default
    `./compile_cache`, git-ignored)."""
    return Path(os.environ.get("DEPICT_COMPILE_CACHE", "compile_cache"))


def compile_cache_bytes() -> int:
    """The compile cache's disk budget (env `DEPICT_COMPILE_CACHE_GB`, default 8): least recently used libraries beyond
    it are removed."""
    return int(_env_float("DEPICT_COMPILE_CACHE_GB", 8.0) * 2**30)


def device_choice() -> str | None:
    """`DEPICT_DEVICE` (`cpu`, `cuda`, `cuda:1`); None: CUDA when present, else the CPU."""
    return os.environ.get("DEPICT_DEVICE") or None


def dtype_choice() -> str | None:
    """`DEPICT_DTYPE` (`float32`, `bfloat16`, `float16`); None: the speed policy decides per model."""
    return os.environ.get("DEPICT_DTYPE") or None


def memory_switch(name: str, automatic: bool) -> bool:
    """A memory option (`DEPICT_SLICING`, `DEPICT_VAE_TILING`, `DEPICT_CPU_OFFLOAD`): auto (`automatic`, chosen from
    free memory), or on/off (`1`/`true`/`yes`/`on` read as on)."""
    value = os.environ.get(name, "auto").lower()
    return automatic if value == "auto" else value in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` set: never ask the hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_endpoint() -> str:
    """The hub's address (`HF_ENDPOINT`, as huggingface_hub reads it)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def on_spaces() -> bool:
    """Running on Hugging Face Spaces (`SPACE_ID` set)."""
    return bool(os.environ.get("SPACE_ID"))


def queue_size() -> int:
    """Requests the app's queue holds before it turns new ones away (`DEPICT_QUEUE_SIZE`)."""
    return _env_int("DEPICT_QUEUE_SIZE", 64)


def launch_defaults() -> dict:
    """The app's flags as set by the environment: `DEPICT_HOST`, `DEPICT_PORT` (or `GRADIO_SERVER_PORT`),
    `DEPICT_SHARE`, `DEPICT_PRESET`, `DEPICT_AUTH` (logins separated by commas, as given: the app refuses a value
    that names none), `DEPICT_MCP` (serve the jobs as MCP tools too), `DEPICT_BACKEND` (a `python -m models serve`
    deployment's URL)."""
    env = os.environ.get
    return {
        "host": env("DEPICT_HOST") or ("0.0.0.0" if on_spaces() else "127.0.0.1"),
        "port": int(env("DEPICT_PORT") or env("GRADIO_SERVER_PORT") or 7860),
        "share": env("DEPICT_SHARE", "") in ("1", "true", "yes"),
        "mcp": env("DEPICT_MCP", "") in ("1", "true", "yes"),
        "backend": env("DEPICT_BACKEND") or None,
        "preset": env("DEPICT_PRESET") or None,
        "auth": env("DEPICT_AUTH") or None,
    }


LIMITS = Limits()
