"""The machine a benchmark ran on: CPU model and the flags that decide what runs fast (bf16, int8)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

FLAGS = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def machine_facts() -> dict:
    """CPU model, which of `FLAGS` it exposes, core and torch thread counts, torch version."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return {"cpu": model or platform.processor() or platform.machine(), "flags": [f for f in FLAGS if f in flags],
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}  # fmt: skip
