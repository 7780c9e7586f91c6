"""Architecture search for the few-step student: random search over UNet configs, each measured on this CPU; the
fastest front is distilled briefly from the teacher (`training.distill`) and judged.

Search space: 2 or 3 stages of widths from {16, 32, 48, 64, 96, 128} (non-decreasing), 1 or 2 layers per block,
cross-attention on every stage but the first, on the up path only, or nowhere, 4 or 8 attention heads, a mid block
or none. Random search (seeded) rather than evolutionary: each short distillation run costs minutes on 2 CPU cores,
so only a handful of candidates can be trained and mutation has too few generations to pay. The front is chosen
before training, from MACs against parameters (capacity); training then reads its quality, and the chart plots it
against the latency measured here.

    python -m training.search --count 16 --train 4 --out runs/search
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from .charts import scatter_chart
from .common import TinyParser
from .macs import unet_macs

WIDTHS = (16, 32, 48, 64, 96, 128)


def parse_args(argv=None) -> argparse.Namespace:
    parser = TinyParser(__doc__, tiny={"count": 3, "train": 1, "steps": 2, "scenes": 8, "repeats": 2})
    parser.add_argument("--teacher", default="models/bundled/text_to_image")
    parser.add_argument("--count", type=int, default=16, help="candidates measured (the teacher's shape included)")
    parser.add_argument("--train", type=int, default=4, help="candidates of the front distilled and judged")
    parser.add_argument("--steps", type=int, default=600, help="distillation steps per trained candidate")
    parser.add_argument("--samples-dir", default="runs/distill/samples", help="the teacher's cached samples")
    parser.add_argument("--scenes", type=int, default=6144, help="teacher samples the candidates learn from")
    parser.add_argument("--out", default="runs/search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=20, help="timed passes per candidate")
    parser.add_argument("--tiny", action="store_true", help="a smoke run (CI)")
    return parser.parse_args(argv)


def random_config(rng: random.Random, base: dict) -> dict:
    """One point of the search space, as a `UNet2DConditionModel` config built on the teacher's."""
    levels = rng.choice((2, 3))
    widths = sorted(rng.choice(WIDTHS) for _ in range(levels))
    attention = rng.choice(("both", "up", "none"))
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D" if attention == "both" else "DownBlock2D"] * (levels - 1)
    up = ["CrossAttnUpBlock2D" if attention != "none" else "UpBlock2D"] * (levels - 1) + ["UpBlock2D"]
    return {**base, "block_out_channels": widths, "layers_per_block": rng.choice((1, 2)), "down_block_types": down,
            "up_block_types": up, "attention_head_dim": rng.choice((4, 8)),
            "mid_block_type": rng.choice(("UNetMidBlock2DCrossAttn", None)) if attention != "none" else None}  # fmt: skip


def describe(config: dict) -> str:
    attention = "up" if config["down_block_types"][-1] == "DownBlock2D" else "both"
    attention = attention if config["up_block_types"][0].startswith("CrossAttn") else "none"
    mid = "+mid" if config["mid_block_type"] else ""
    widths = "-".join(str(w) for w in config["block_out_channels"])
    return f"{widths} L{config['layers_per_block']} attn:{attention}/{config['attention_head_dim']}h{mid}"


@torch.inference_mode()
def median_latency_ms(unet: UNet2DConditionModel, repeats: int) -> float:
    """Median of `repeats` single passes at batch 1 after three warm-up passes."""
    config = unet.config
    sample = torch.randn(1, config.in_channels, config.sample_size, config.sample_size)
    context = torch.randn(1, 16, config.cross_attention_dim)
    timestep = torch.tensor([999])
    times = []
    for index in range(repeats + 3):
        started = time.perf_counter()
        unet(sample, timestep, context)
        if index >= 3:
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def measure(config: dict, repeats: int) -> dict:
    unet = UNet2DConditionModel.from_config(config).eval()
    return {"name": describe(config), "parameters": sum(p.numel() for p in unet.parameters()),
            "macs": unet_macs(unet), "latency_ms": median_latency_ms(unet, repeats), "config": config}  # fmt: skip


def candidates(base: dict, count: int, seed: int) -> list[dict]:
    """The teacher's own shape and `count - 1` distinct random configs."""
    rng = random.Random(seed)
    found = {describe(base): base}
    for _ in range(1000 * count):
        if len(found) >= count:
            break
        config = random_config(rng, base)
        found.setdefault(describe(config), config)
    return list(found.values())


def front(rows: list[dict], count: int) -> list[dict]:
    """Up to `count` rows of the Pareto front (fewer MACs, more parameters), spread over its MACs range. MACs, not
    the measured latency, so that a rerun on a busy machine picks the same candidates (and resumes their runs)."""
    ordered = sorted(rows, key=lambda r: (r["macs"], -r["parameters"]))
    pareto, most = [], -1
    for row in ordered:
        if row["parameters"] > most:
            pareto.append(row)
            most = row["parameters"]
    if len(pareto) <= count:
        return pareto
    step = (len(pareto) - 1) / (count - 1) if count > 1 else 0
    return [pareto[round(i * step)] for i in range(count)]


def distilled(args: argparse.Namespace, config_path: Path, folder: Path) -> dict:
    """Distil the candidate `config_path` from the teacher with `python -m training.distill` (its own process, as a
    person would run it) into `folder`; the run's facts (`distillation.json`)."""
    subprocess.run([
        sys.executable, "-m", "training.distill", "--teacher", args.teacher, "--student", str(config_path),
        "--init-from-teacher", "--steps", str(args.steps), "--eval-every", str(args.steps), "--scenes", str(args.scenes),
        "--samples-dir", args.samples_dir, "--out", str(folder), "--work-dir", f"{folder}-work",
        *(["--tiny"] if args.tiny else []),
    ], check=True)  # fmt: skip
    return json.loads((folder / "distillation.json").read_text())


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = dict(UNet2DConditionModel.load_config(Path(args.teacher, "unet")))
    rows = [measure(config, args.repeats) for config in candidates(base, args.count, args.seed)]
    for index, row in enumerate(front([r for r in rows if r["config"] != base], args.train)):
        name = f"candidate-{index}"
        config_path = out / f"{name}.json"
        config_path.write_text(json.dumps(row["config"], indent=1))
        judged = distilled(args, config_path, out / name)["judged during training (100 captions, seed 10000)"][-1]
        row.update(trained=name, distill_steps=args.steps, judged_1_step=judged["1-step"], judged_2_step=judged["2-step"])
    (out / "candidates.json").write_text(json.dumps(rows, indent=1) + "\n")
    trained = [r for r in rows if "trained" in r]
    points = [{"x": r["latency_ms"], "y": r["judged_1_step"]["all"], "label": r["name"]} for r in trained]
    scatter_chart(points, out / "search.png", f"Searched students after {args.steps} distillation steps",
                  "median UNet pass, batch 1 (ms)", "judged all five, 1 pass")  # fmt: skip
    print(json.dumps([{k: v for k, v in r.items() if k != "config"} for r in rows]))
    return rows


if __name__ == "__main__":
    main()
