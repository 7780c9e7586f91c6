"""Structure-guided regenerate and style transfer on the bundled world: quality against img2img and a fresh image,
and time per image against plain diffusers on the same models.

Quality: new renders, the description with one attribute (colour, background or shape) changed, regenerated through
the engine with `structure`, with img2img at each `keep_layout` of a grid, and fresh. The judge says whether the edit
applied and every other attribute stayed (`all`); `box_iou` is how well the shape keeps the original's place. Two
seeds (neither used in training or in the tests). Style transfer: new plain renders redrawn in each style at two
strengths, with and without the content's edges guiding it (`score_style_transfer`: style judged right, content
kept, `box_iou`).

    python -m bench.structure [--count 300] [--only speed|regenerate|style_transfer|hub_size] [--out bench/results]

`--only hub_size` times structure at SD 1.5's size (random weights) against plain diffusers: minutes, GBs.

Prints JSON lines and writes (or, with `--only`, updates) `structure.json` with the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
from PIL import Image

from bench.architectures import build
from bench.machine import machine_facts
from bench.upscale import median_seconds
from models import Engine
from models.graphs import wait_for_builds
from models.presets import BUNDLED_DIR, preset_from_folder
from models.shapes import render
from models.shapes.styles import STYLES
from models.structure import edge_map
from training.evaluate import score_structure, score_style_transfer

SEEDS = (80_000, 90_000)
KEEP_LAYOUTS = (0.3, 0.5, 0.7)
STRENGTHS = (0.6, 0.9)  # style transfer's default, and one that redraws nearly everything
CAPTION = "a large red star on the left on a white background"


def quality(engine: Engine, count: int) -> list[dict]:
    """`score_structure` for structure, each img2img strength and fresh, on each seed."""
    ways = {"structure 1.0": {"structure": 1.0},
            **{f"img2img keep_layout {k}": {"keep_layout": k} for k in KEEP_LAYOUTS}, "fresh": {}}  # fmt: skip
    rows = []
    for seed in SEEDS:
        for name, options in ways.items():
            def regenerate(original, description, image_seed, options=options):
                return engine.regenerate(original, description, seed=image_seed, **options).images[0]

            row = {"way": name, "seed": seed, "count": count, **score_structure(regenerate, count, seed)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def style_transfer_quality(engine: Engine, count: int) -> list[dict]:
    """`score_style_transfer` per style, strength and seed, without and with the content's edges guiding it."""
    rows = []
    for seed in SEEDS:
        for strength in STRENGTHS:
            for structure in (0.0, 1.0):
                for style in STYLES:
                    def transfer(content, caption, image_seed, style=style, strength=strength, structure=structure):
                        return engine.style_transfer(content, style=style, strength=strength, structure=structure,
                                                     seed=image_seed).images[0]  # fmt: skip

                    scores = score_style_transfer(transfer, style, count, seed)
                    row = {"strength": strength, "structure": structure, "seed": seed, "count": count, **scores,
                           "style": style, "style_right": scores["style"]}  # fmt: skip
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    return rows


def speed(engine: Engine, repeats: int) -> list[dict]:
    """Seconds per structure-guided 64x64 image: the engine (new prompt each call) against diffusers'
    `StableDiffusionControlNetPipeline` on the same folders at the same steps and guidance."""
    preset = preset_from_folder(BUNDLED_DIR)
    original = render(CAPTION, 1)
    colours = iter(["red", "green", "blue", "yellow", "purple", "orange", "white", "black"] * 100)
    engine.regenerate(original, CAPTION, structure=1.0)  # loads the structure pipeline
    depict = round(median_seconds(lambda: engine.regenerate(original, CAPTION.replace("red", next(colours)),
                                                            structure=1.0), repeats), 4)  # fmt: skip
    controlnet = ControlNetModel.from_pretrained(preset.structure)
    plain = StableDiffusionControlNetPipeline.from_pretrained(preset.text_to_image, controlnet=controlnet,
                                                              safety_checker=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    edges = edge_map(original)
    diffusers_seconds = round(median_seconds(lambda: plain(CAPTION, image=edges, num_inference_steps=preset.steps,
                                                           guidance_scale=preset.guidance), repeats), 4)  # fmt: skip
    rows = [{"way": "Depict structure regenerate", "seconds": depict, "steps": preset.steps},
            {"way": "plain diffusers StableDiffusionControlNetPipeline", "seconds": diffusers_seconds,
             "steps": preset.steps},
            {"way": "speed-up", "ratio": round(diffusers_seconds / depict, 2)}]  # fmt: skip
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def hub_size_speed(root: Path, repeats: int) -> list[dict]:
    """Seconds per structure-guided 512x512 image at `sd15-lcm`'s size and settings: SD 1.5's architecture with
    random weights and its LCM-LoRA (`bench.architectures`), a ControlNet made from its UNet (the architecture of
    `lllyasviel/control_v11p_sd15_canny`), a new prompt each call; through the engine (its first call, and warm once
    its graphs are built) and through plain diffusers' fp32 `StableDiffusionControlNetPipeline` with the LCM-LoRA fused,
    on the same folders. Run it with TAESD in the hub cache (`HF_HUB_CACHE`), as `bench.session` does."""
    folder = build("sd15", root / "sd15")
    controlnet_dir = root / "controlnet-sd15"
    if not (controlnet_dir / "config.json").is_file():
        unet = UNet2DConditionModel.from_pretrained(folder / "text_to_image" / "unet")
        ControlNetModel.from_unet(unet).save_pretrained(controlnet_dir)
    original = render(CAPTION, 1).resize((512, 512), Image.Resampling.NEAREST)
    prompts = iter(f"{CAPTION}, take {index}" for index in range(1000))
    engine = Engine("bundled")
    preset = engine.preset(engine.register_folder(folder, "sd15-size", structure=str(controlnet_dir)))

    def depict():
        return engine.regenerate(original, next(prompts), structure=1.0, preset=preset.name)

    started = time.perf_counter()
    first = depict()
    first_s = time.perf_counter() - started
    wait_for_builds()
    warm = median_seconds(depict, repeats)
    warm_unet = depict().metadata["unet"]
    plain = StableDiffusionControlNetPipeline.from_pretrained(folder / "text_to_image", controlnet=ControlNetModel.
                                                              from_pretrained(controlnet_dir), safety_checker=None,
                                                              requires_safety_checker=False)  # fmt: skip
    source, _, weight_name = preset.speed_adapter.partition(":")
    plain.load_lora_weights(source, weight_name=weight_name)
    plain.fuse_lora()
    plain.set_progress_bar_config(disable=True)
    edges = edge_map(original)
    diffusers_seconds = median_seconds(lambda: plain(next(prompts), image=edges, num_inference_steps=preset.steps,
                                                     guidance_scale=preset.guidance), repeats)  # fmt: skip
    rows = [{"way": "Depict structure regenerate, SD 1.5 size, first call", "seconds": round(first_s, 3),
             "unet": first.metadata["unet"], "steps": preset.steps},
            {"way": "Depict structure regenerate, SD 1.5 size, warm", "seconds": round(warm, 3), "unet": warm_unet},
            {"way": "plain diffusers StableDiffusionControlNetPipeline fp32, LCM-LoRA fused, SD 1.5 size",
             "seconds": round(diffusers_seconds, 3)},
            {"way": "speed-up, warm", "ratio": round(diffusers_seconds / warm, 2)}]  # fmt: skip
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="new renders per seed (per style for style transfer)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=["speed", "regenerate", "style_transfer", "hub_size"])
    parser.add_argument("--keep", type=Path, help="build the SD 1.5-size folders here (`--only hub_size`; default: a "
                        "temp folder)")  # fmt: skip
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    engine = Engine("bundled")
    scratch = tempfile.TemporaryDirectory()
    parts = {"speed": lambda: speed(engine, args.repeats), "quality": lambda: quality(engine, args.count),
             "style_transfer": lambda: style_transfer_quality(engine, args.count),
             "hub_size": lambda: hub_size_speed(args.keep or Path(scratch.name), min(args.repeats, 3))}  # fmt: skip
    wanted = {"regenerate": "quality"}.get(args.only, args.only)
    with scratch:
        report = {name: run() for name, run in parts.items() if wanted in (None, name) and
                  (name != "hub_size" or wanted == "hub_size")}  # minutes and GBs: only when asked for
    if args.out:
        path = args.out / "structure.json"
        earlier = json.loads(path.read_text()) if args.only and path.is_file() else {}
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**earlier, **report, "machine": machine_facts()}, indent=1))


if __name__ == "__main__":
    main()
