"""Depict's engine: cached diffusers pipelines behind one job per tab. Never imports gradio."""

from .control import JobControl
from .engine import Engine
from .errors import JobCancelled, OutOfMemory, PresetUnavailable
from .result import Result

__all__ = ["Engine", "JobCancelled", "JobControl", "OutOfMemory", "PresetUnavailable", "Result"]
