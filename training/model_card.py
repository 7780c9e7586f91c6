"""README cards for the bundled model folders."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def write_model_card(folder: str | Path, title: str, summary: str, facts: dict) -> None:
    """Write `README.md` in a model folder: what it is, how it was trained and how good it is."""
    lines = [f"# {title}", "", summary, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value if isinstance(value, str) else json.dumps(value)} |" for key, value in facts.items()]
    Path(folder, "README.md").write_text("\n".join(lines) + "\n")
