"""Depict's engine: cached diffusers pipelines behind one job per tab. Never imports gradio.

The names below are imported on first use (PEP 562): `from models import hub` or `python -m models.hub` does not pay
for diffusers and the pipelines (~10 s on 2 cores), which only the engine needs.
"""

from __future__ import annotations

import importlib

_HOMES = {"Engine": ".engine", "JobControl": ".control", "JobCancelled": ".errors", "OutOfMemory": ".errors",
          "PresetUnavailable": ".errors", "Result": ".result"}  # fmt: skip
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value
