"""Structure-guided regenerate and style transfer on the bundled world: quality against img2img and a fresh image,
and time per image against plain diffusers on the same models.

Quality: new renders, the description with one attribute (colour, background or shape) changed, regenerated through
the engine with `structure`, with img2img at each `keep_layout` of a grid, and fresh. The judge says whether the edit
applied and every other attribute stayed (`all`); `box_iou` is how well the shape keeps the original's place. Two
seeds (neither used in training or in the tests). Style transfer: new plain renders redrawn in each style at two
strengths, with and without the content's edges guiding it (`score_style_transfer`: style judged right, content
kept, `box_iou`).

    python -m bench.structure [--count 300] [--only speed|regenerate|style_transfer] [--out bench/results]

Prints JSON lines and writes (or, with `--only`, updates) `structure.json` with the machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

from bench.machine import machine_facts
from bench.upscale import median_seconds
from models import Engine
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="new renders per seed (per style for style transfer)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=["speed", "regenerate", "style_transfer"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    engine = Engine("bundled")
    parts = {"speed": lambda: speed(engine, args.repeats), "quality": lambda: quality(engine, args.count),
             "style_transfer": lambda: style_transfer_quality(engine, args.count)}  # fmt: skip
    wanted = {"regenerate": "quality"}.get(args.only, args.only)
    report = {name: run() for name, run in parts.items() if wanted in (None, name)}
    if args.out:
        path = args.out / "structure.json"
        earlier = json.loads(path.read_text()) if args.only and path.is_file() else {}
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**earlier, **report, "machine": machine_facts()}, indent=1))


if __name__ == "__main__":
    main()
