"""Depict from the command line: the same engine as the app, for scripting and batch runs.

    python -m models generate "a small red star at the top on a blue background" --seed 3 --out star.png
    python -m models generate --prompts prompts.txt --out-dir out/
    python -m models describe picture.png
    python -m models regenerate picture.png [--description TEXT] [--keep-layout 0.5] --out again.png
    python -m models style picture.png --style NAME [--strength 0.6] --out styled.png
    python -m models inpaint picture.png --mask mask.png --prompt TEXT --out filled.png
    python -m models edit picture.png --instruction "make the circle green" --out edited.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from . import Engine, JobControl
from .metadata import save_png
from .presets import DEFAULT_PRESET


def _adapters(items: list[str]) -> dict[str, float]:
    pairs = (item.rpartition(":") if ":" in item else (item, "", "1") for item in items)
    return {name: float(weight) for name, _, weight in pairs}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models", description="Describe, generate and edit images.")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="preset name or local preset folder")
    jobs = parser.add_subparsers(dest="job", required=True)

    def job(name: str, help: str, image: bool = True) -> argparse.ArgumentParser:
        sub = jobs.add_parser(name, help=help)
        if image:
            sub.add_argument("image", help="input image")
        if name != "describe":
            sub.add_argument("--seed", type=int, default=0)
            sub.add_argument("--steps", type=int)
            sub.add_argument("--guidance", type=float)
            sub.add_argument("--scheduler")
            sub.add_argument("--negative-prompt", default="")
            sub.add_argument("--num-images", type=int, default=1)
            sub.add_argument("--out", default=f"{name}.png", help="output PNG (image i of a batch gets -i)")
            if name != "edit":
                sub.add_argument("--adapter", action="append", default=[], help="NAME[:WEIGHT], repeatable")
        return sub

    generate = job("generate", "text -> image", image=False)
    generate.add_argument("prompt", nargs="?", help="what to draw")
    generate.add_argument("--prompts", type=Path, help="a file with one prompt per line")
    generate.add_argument("--out-dir", type=Path, help="where batch outputs go (with --prompts)")
    generate.add_argument("--width", type=int)
    generate.add_argument("--height", type=int)
    job("describe", "image -> description")
    regenerate = job("regenerate", "describe, then make the image again")
    regenerate.add_argument("--description", help="default: the captioner's description")
    regenerate.add_argument("--keep-layout", type=float, default=0.0)
    style = job("style", "restyle with a style adapter")
    style.add_argument("--style", required=True)
    style.add_argument("--strength", type=float, default=0.6)
    inpaint = job("inpaint", "repaint the masked region")
    inpaint.add_argument("--mask", required=True)
    inpaint.add_argument("--prompt", required=True)
    edit = job("edit", "edit by instruction")
    edit.add_argument("--instruction", required=True)
    args = parser.parse_args(argv)
    if args.job == "generate" and not (args.prompt or args.prompts):
        parser.error("generate needs a prompt or --prompts FILE")
    return args


def _options(args) -> dict:
    options = {"seed": args.seed, "steps": args.steps, "guidance": args.guidance, "scheduler": args.scheduler,
               "negative_prompt": args.negative_prompt, "num_images": args.num_images}  # fmt: skip
    if hasattr(args, "adapter"):
        options["adapters"] = _adapters(args.adapter)
    return options


def _save(result, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(result.images):
        path = out if len(result.images) == 1 else out.with_name(f"{out.stem}-{index}{out.suffix}")
        paths.append(save_png(image, result.image_metadata(index), path))
    return paths


def _run(engine: Engine, args, options: dict, bar: tqdm):
    control = JobControl(on_step=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)))
    if args.job == "generate":
        return lambda prompt: engine.text_to_image(prompt, width=args.width, height=args.height, control=control,
                                                   **options)  # fmt: skip
    if args.job == "regenerate":
        description = args.description or engine.describe(args.image)
        return lambda _: engine.regenerate(args.image, description, keep_layout=args.keep_layout, control=control, **options)
    if args.job == "style":
        return lambda _: engine.style_transfer(args.image, args.style, strength=args.strength, control=control, **options)
    if args.job == "inpaint":
        return lambda _: engine.inpaint(args.image, args.mask, args.prompt, control=control, **options)
    return lambda _: engine.instruct_edit(args.image, args.instruction, control=control, **options)


def main(argv=None) -> int:
    args = parse_args(argv)
    engine = Engine(preset=args.preset)
    try:
        if args.job == "describe":
            print(engine.describe(args.image))
            return 0
        prompts = args.prompts.read_text().splitlines() if getattr(args, "prompts", None) else [getattr(args, "prompt", None)]
        prompts = [p for p in prompts if p is None or p.strip()]
        for index, prompt in enumerate(tqdm(prompts, desc="prompts", disable=len(prompts) == 1)):
            with tqdm(total=1, desc="steps", leave=False) as bar:
                result = _run(engine, args, _options(args), bar)(prompt)
            out = Path(args.out) if not getattr(args, "out_dir", None) else args.out_dir / f"{index:04d}.png"
            for path in _save(result, out):
                print(path)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
