"""What every bundled-model training script shares: seeds, EMA, LR schedule, safetensors checkpoints."""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from tqdm import tqdm

# every training script's smoke run (`--tiny`, CI): two steps of batch 4, a checkpoint after each
TINY = {"steps": 2, "batch_size": 4, "checkpoint_every": 1}
JUDGED_TINY = {"eval_every": 1, "eval_captions": 2}  # ... and for a script that judges while it trains: after each too


class TinyParser(argparse.ArgumentParser):
    """An argument parser with `--tiny`, a smoke run (CI): it sets the arguments named in `tiny` to those values and
    lowers those in `tiny_caps` to at most theirs (so that an explicit 0 still means none)."""

    def __init__(self, doc: str, tiny: dict, tiny_caps: dict | None = None):
        super().__init__(description=doc.splitlines()[0])
        self.tiny, self.tiny_caps = tiny, tiny_caps or {}

    def parse_known_args(self, args=None, namespace=None):
        parsed, rest = super().parse_known_args(args, namespace)
        if parsed.tiny:
            vars(parsed).update(self.tiny)
            vars(parsed).update({name: min(getattr(parsed, name), cap) for name, cap in self.tiny_caps.items()})
        return parsed, rest


def training_parser(doc: str, *, out: str, work_dir: str, steps: int, batch_size: int, lr: float, data: int,
                    tiny: dict, tiny_caps: dict | None = None, checkpoint_every: int = 500) -> TinyParser:  # fmt: skip
    """The arguments every training script takes; each script adds its own. `--tiny` sets `TINY` and then `tiny`
    (the script's data size and its own arguments), and caps `tiny_caps` (see `TinyParser`)."""
    overrides = {name: value for name, value in {**TINY, **tiny}.items() if name not in (tiny_caps or {})}
    parser = TinyParser(doc, overrides, tiny_caps)
    parser.add_argument("--out", default=out, help="where the trained model goes")
    parser.add_argument("--work-dir", default=work_dir, help="checkpoints (resumed from the latest)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--scenes", type=int, default=data, help="rendered training examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=checkpoint_every)
    parser.add_argument("--tiny", action="store_true", help="a two-step smoke run (CI)")
    return parser


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EMA:
    """Exponential moving average of a module's parameters, kept as a frozen copy of the module."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm up: early averages follow the weights
        for ema_param, param in zip(self.module.parameters(), module.parameters()):
            ema_param.lerp_(param, 1 - decay)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, averages: dict[EMA, torch.nn.Module],
                   step: int, max_grad_norm: float = 1.0) -> None:  # fmt: skip
    """Backward, clip, step, clear, then update each EMA from its module."""
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for ema, module in averages.items():
        ema.update(module, step)


def set_warmup_cosine_lr(optimizer: torch.optim.Optimizer, base_lr: float, step: int, warmup: int, total: int,
                        floor: float = 0.05) -> None:
    """Linear warm-up then cosine decay to `floor` times `base_lr`, set for `step`."""
    if step < warmup:
        factor = (step + 1) / warmup
    else:
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor


def median_ms(run, repeats: int) -> float:
    """Median milliseconds of `run()` over `repeats` calls, after 3 warm-up calls, without gradients."""
    times = []
    with torch.no_grad():
        for _ in range(repeats + 3):
            began = time.perf_counter()
            run()
            times.append(time.perf_counter() - began)
    return round(1000 * statistics.median(times[3:]), 2)


def command_line(module: str, argv) -> str:
    """The command that reproduces a run, for the model card."""
    return " ".join(["python -m", module, *(sys.argv[1:] if argv is None else argv)])


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value if torch.is_tensor(value) else torch.tensor(value)
        for index, entries in state["state"].items()
        for name, value in entries.items()
    }
    return tensors, state["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], param_groups: list) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": param_groups}


class Checkpoints:
    """`checkpoint-<step>/` folders of safetensors under a work dir, at most `limit` kept, resumable from the latest."""

    def __init__(self, work_dir: str | Path, limit: int = 2):
        self.work_dir = Path(work_dir)
        self.limit = limit

    def latest(self) -> Path | None:
        found = sorted(self.work_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        return found[-1] if found else None

    def save(self, step: int, modules: dict[str, torch.nn.Module], optimizer, extra: dict | None = None) -> Path:
        folder = self.work_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, module in modules.items():
            save_model(module, str(folder / f"{name}.safetensors"))
        tensors, groups = _flatten_optimizer(optimizer)
        save_file(tensors, folder / "optimizer.safetensors")
        info = {"step": step, "param_groups": groups, "saved_at": time.time(), **(extra or {})}
        (folder / "state.json").write_text(json.dumps(info, indent=1))
        for old in sorted(self.work_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[: -self.limit]:
            shutil.rmtree(old)
        return folder

    def resume(self, modules: dict[str, torch.nn.Module], optimizer) -> dict:
        """Load the latest checkpoint into `modules` and `optimizer`; its state dict, or {"step": 0}."""
        folder = self.latest()
        if folder is None:
            return {"step": 0}
        for name, module in modules.items():
            load_model(module, str(folder / f"{name}.safetensors"))
        info = json.loads((folder / "state.json").read_text())
        optimizer.load_state_dict(_unflatten_optimizer(load_file(folder / "optimizer.safetensors"), info["param_groups"]))
        return info


def save_unet_fp16(unet: torch.nn.Module, folder: str | Path) -> None:
    """Store a UNet in fp16 (half the bytes); diffusers loads it back as fp32 unless asked otherwise."""
    half = copy.deepcopy(unet).to(torch.float16)
    half.save_pretrained(Path(folder, "unet"))


def resume_run(work_dir: str | Path, modules: dict[str, torch.nn.Module], optimizer, seed: int, steps: int,
               desc: str, mininterval: float = 10) -> tuple[Checkpoints, dict, torch.Generator, float, tqdm]:  # fmt: skip
    """Pick a run up from its latest checkpoint: (checkpoints, saved state, a generator seeded for the resumed
    step, the run's start time less the time already spent, a progress bar from the resumed step)."""
    checkpoints = Checkpoints(work_dir)
    state = checkpoints.resume(modules, optimizer)
    start = state["step"]
    generator = torch.Generator().manual_seed(seed + start)
    began = time.time() - state.get("elapsed", 0.0)
    progress = tqdm(range(start, steps), initial=start, total=steps, desc=desc, mininterval=mininterval)
    return checkpoints, state, generator, began, progress
