"""Samplers a request may pick by name, built from the loaded model's own scheduler config."""

from __future__ import annotations

import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)

SCHEDULERS = {
    "dpm++": (DPMSolverMultistepScheduler, {}),
    # Karras spacing starts from the largest sigma, infinite on a zero-terminal-SNR schedule (the bundled models'):
    # there it spends nearly every step on pure noise, so it runs on the schedule as it was before the rescale
    "dpm++ karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True, "rescale_betas_zero_snr": False}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler a": (EulerAncestralDiscreteScheduler, {}),
    "ddim": (DDIMScheduler, {"clip_sample": False}),  # its default clips predictions to [-1, 1]: ruinous for latents
    "unipc": (UniPCMultistepScheduler, {}),
    "lcm": (LCMScheduler, {}),
}
# A1111's sampler names, for reading its PNG metadata.
A1111_NAMES = {"dpm++ 2m": "dpm++", "dpm++ 2m karras": "dpm++ karras", "euler a": "euler a", "euler": "euler",
               "ddim": "ddim", "unipc": "unipc", "lcm": "lcm"}  # fmt: skip


def check_scheduler(name: str | None) -> None:
    if name is not None and name not in SCHEDULERS:
        raise ValueError(f"`scheduler` must be one of {', '.join(SCHEDULERS)}; got {name!r}.")


def make_scheduler(name: str | None, model_config: dict):
    """A fresh scheduler: the named one, or the model's own when `name` is None."""
    if name is None:
        return getattr(diffusers, model_config["_class_name"]).from_config(model_config)
    cls, overrides = SCHEDULERS[name]
    return cls.from_config(model_config, **overrides)
