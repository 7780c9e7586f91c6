"""Loading a preset's weights: from a local folder or the hub cache, downloading the preset's files first when the
hub answers. Weights only from safetensors, no code from the model folder, no safety checker model."""

from __future__ import annotations

from pathlib import Path

from . import hub
from .errors import PresetUnavailable
from .presets import Preset, hub_reachable, is_available

PIPELINE_LOAD_OPTIONS = {"use_safetensors": True, "trust_remote_code": False, "safety_checker": None,
                         "feature_extractor": None, "requires_safety_checker": False}  # fmt: skip


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
