"""README cards for the bundled model folders."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.machine import machine_facts


def hardware() -> str:
    """The GPU, else the CPU model with the flags that decide what runs fast, and the torch threads."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    facts = machine_facts()
    return f"{facts['cpu']} ({', '.join(facts['flags']) or 'no AVX-512'}), {facts['torch_threads']} threads"


def write_model_card(folder: str | Path, title: str, summary: str, facts: dict) -> None:
    """Write `README.md` in a model folder: what it is, how it was trained and how good it is."""
    lines = [f"# {title}", "", summary, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value if isinstance(value, str) else json.dumps(value)} |" for key, value in facts.items()]
    Path(folder, "README.md").write_text("\n".join(lines) + "\n")
