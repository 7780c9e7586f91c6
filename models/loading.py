"""Loading a preset's weights: from a local folder or the hub cache, downloading first whatever of the preset's files
the cache lacks when the hub answers. Weights only from safetensors, no code from the model folder, no safety checker
model."""

from __future__ import annotations

from pathlib import Path

from . import hub
from .errors import PresetUnavailable
from .presets import Preset, hub_reachable, is_available

PIPELINE_LOAD_OPTIONS = {"use_safetensors": True, "trust_remote_code": False, "safety_checker": None,
                         "feature_extractor": None, "requires_safety_checker": False}  # fmt: skip


def needed_files(source: str, preset: Preset, fp16: bool) -> list[str] | None:
    """The files `preset` loads from the hub repo `source` (every file its model needs when the preset does not
    list the repo: a local folder's tiny decoder); None for a local folder or a repo outside the allow-list."""
    if Path(source).is_dir():
        return None
    listed = hub.files(preset, fp16).get(source)
    return hub.repo_files(source, fp16) if listed is None and source in hub.REPOS else listed


def load_pretrained(loader, source: str, preset: Preset, role: str, **kwargs):
    """`loader(source, ...)` from a local folder or the hub cache. The preset's files of a hub repo are checked one by
    one and those the cache lacks are downloaded first when the hub answers; a `PresetUnavailable` naming what to do
    otherwise."""
    needed = needed_files(source, preset, kwargs.get("variant") == "fp16")
    local_only = needed is not None or Path(source).is_dir() or is_available(source)
    if not local_only and not hub_reachable():
        raise PresetUnavailable(preset.unavailable_message(role))
    try:
        absent = hub.fetch_missing(source, needed) if needed else []
        if absent:
            shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
            raise PresetUnavailable(preset.unavailable_message(role, f" (the hub cache lacks {shown})"))
        return loader(source, local_files_only=local_only, **kwargs)
    except PresetUnavailable:
        raise
    except Exception as error:  # whatever stops a load, the user is told which preset and what to do
        detail = f" ({type(error).__name__}: {str(error)[:200]})" if local_only else ""
        raise PresetUnavailable(preset.unavailable_message(role, detail)) from error
