"""Depict from the command line: the same engine as the app, for scripting and batch runs.

    python -m models generate "a small red star at the top on a blue background" --seed 3 --out star.png
    python -m models generate --prompts prompts.txt --out-dir out/
    python -m models describe picture.png
    python -m models regenerate picture.png [--description TEXT] [--keep-layout 0.5] --out again.png
    python -m models style picture.png --style NAME [--strength 0.6] --out styled.png
    python -m models inpaint picture.png --mask mask.png --prompt TEXT --out filled.png
    python -m models edit picture.png --instruction "make the circle green" --out edited.png
    python -m models upscale picture.png --scale 4 --out big.png

A batch (`--prompts FILE`, one prompt a line, or a folder of images in place of `picture.png`) is written to
`--out-dir`: files named by input index, and a `manifest.jsonl` with a line per file, or per input that failed (with
its error; the rest go on), appended as each input finishes. `--resume` skips the inputs the manifest already holds.
Under `accelerate launch` (or torchrun) its inputs are split across the processes, each on its own GPU (or CPU
processes without one), and each is made exactly once:

    accelerate launch --multi_gpu --num_processes 4 -m models generate --prompts prompts.txt --out-dir out/

Interactive requests from many people are served by Ray Serve replicas instead (`models/serve.py`):

    python -m models serve --replicas 2 --port 8000
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing, nullcontext
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm import tqdm

from . import Engine, JobControl
from .adapters import parse_adapters
from .graphs import builds_paused
from .manifest import ManifestWriter, finished, manifest_path, read_manifest, start_afresh, tidy
from .metadata import save_png
from .presets import DEFAULT_PRESET
from .text_files import decode, undecodable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
WARM_BATCH = 8  # prompts a process makes before waiting for the faster paths pays (`Engine.warm`)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models", description="Describe, generate and edit images.")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="preset name or local preset folder")
    jobs = parser.add_subparsers(dest="job", required=True)

    def job(name: str, help: str, image: bool = True) -> argparse.ArgumentParser:
        sub = jobs.add_parser(name, help=help)
        if image:
            sub.add_argument("image", help="input image, or a folder of images (a batch, with --out-dir)")
        sub.add_argument("--out-dir", type=Path, help="where a batch's files and its manifest.jsonl go")
        sub.add_argument("--resume", action="store_true", help="skip the inputs --out-dir's manifest holds as done")
        if name == "upscale":
            sub.add_argument("--out", default="upscale.png", help="output PNG")
        elif name != "describe":
            sub.add_argument("--seed", type=int, default=0)
            sub.add_argument("--steps", type=int)
            sub.add_argument("--guidance", type=float)
            sub.add_argument("--scheduler")
            sub.add_argument("--negative-prompt", default="")
            sub.add_argument("--num-images", type=int, default=1)
            sub.add_argument("--out", default=f"{name}.png", help="output PNG (image i of --num-images N gets -i)")
            if name != "edit":
                sub.add_argument("--adapter", action="append", default=[], help="NAME[:WEIGHT], repeatable")
        return sub

    generate = job("generate", "text -> image", image=False)
    generate.add_argument("prompt", nargs="?", help="what to draw")
    generate.add_argument("--prompts", type=Path, help="a file with one prompt per line (a batch, with --out-dir)")
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
    serve_parser(jobs.add_parser("serve", help="serve every job over HTTP from Ray Serve replicas"))
    upscale = job("upscale", "make the image 2x or 4x larger")
    upscale.add_argument("--scale", type=int, default=2, help="2 or 4")
    args = parser.parse_args(argv)
    if args.job == "serve":
        return args
    if args.job == "generate" and not (args.prompt or args.prompts):
        parser.error("generate needs a prompt or --prompts FILE")
    batch = args.prompts if args.job == "generate" else Path(args.image).is_dir()
    if batch and args.out_dir is None:
        parser.error("a batch (--prompts FILE or a folder of images) needs --out-dir DIR")
    if args.resume and not batch:
        parser.error("--resume continues a batch (--prompts FILE or a folder of images, with --out-dir DIR)")
    return args


def serve_parser(sub: argparse.ArgumentParser) -> None:
    gpus = torch.cuda.device_count()
    sub.add_argument("--host", default="127.0.0.1", help="where Ray Serve's HTTP proxy listens")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--replicas", type=int, default=max(gpus, 1), help="engine replicas (default: one per GPU)")
    sub.add_argument("--num-cpus", type=float, default=1.0, help="CPUs each replica reserves")
    sub.add_argument("--num-gpus", type=float, default=1.0 if gpus else 0.0, help="GPUs each replica reserves")
    sub.add_argument("--min-replicas", type=int, help="autoscale: at least this many replicas")
    sub.add_argument("--max-replicas", type=int, help="autoscale: at most this many replicas")


def serve_forever(args) -> int:
    """Deploy the Serve application and keep it up until interrupted."""
    from . import serve

    scale = {"replicas": args.replicas, "num_cpus": args.num_cpus, "num_gpus": args.num_gpus,
             "min_replicas": args.min_replicas, "max_replicas": args.max_replicas}  # fmt: skip
    url = serve.start(args.preset, args.host, args.port, **scale)
    print(f"Depict is served at {url} (POST /{', /'.join(serve.JOBS)}); Ctrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        serve.stop()


def _options(args) -> dict:
    options = {"seed": args.seed, "steps": args.steps, "guidance": args.guidance, "scheduler": args.scheduler,
               "negative_prompt": args.negative_prompt, "num_images": args.num_images}  # fmt: skip
    if hasattr(args, "adapter"):
        options["adapters"] = parse_adapters(",".join(args.adapter))
    return options


def _save(result, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(result.images):
        path = out if len(result.images) == 1 else out.with_name(f"{out.stem}-{index}{out.suffix}")
        paths.append(save_png(image, result.image_metadata(index), path))
    return paths


def _prompts_text(path: Path) -> str:
    """The prompts file's text. A line that is not UTF-8 is emptied (so skipped) with a warning naming it; a file that
    cannot be read ends the command with a sentence, not a traceback."""
    try:
        lines = decode(path.read_bytes()).split("\n")
    except OSError as error:
        raise SystemExit(f"error: prompts file {path} cannot be read ({error.strerror or error}).") from None
    for number, line in enumerate(lines, 1):
        if problem := undecodable(line):
            print(f"warning: prompts file {path} line {number} skipped: {problem}", file=sys.stderr)
            lines[number - 1] = ""
    return "\n".join(lines)


def _inputs(args) -> list[str]:
    """The prompts (generate) or image paths the command works through, in order."""
    if args.job == "generate":
        return [p for p in _prompts_text(args.prompts).split("\n") if p.strip()] if args.prompts else [args.prompt]
    folder = Path(args.image)
    if folder.is_dir():
        return [str(path) for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
    return [args.image]


def _job(engine: Engine, args, options: dict, control: JobControl):
    """The command's job as a function of one input (a prompt or an image path): a `Result`, or describe's text."""
    if args.job == "generate":
        return lambda prompt: engine.text_to_image(prompt, width=args.width, height=args.height, control=control,
                                                   **options)  # fmt: skip
    if args.job == "describe":
        return engine.describe
    if args.job == "regenerate":
        return lambda image: engine.regenerate(image, args.description or engine.describe(image),
                                               keep_layout=args.keep_layout, control=control, **options)  # fmt: skip
    if args.job == "style":
        return lambda image: engine.style_transfer(image, args.style, strength=args.strength, control=control, **options)
    if args.job == "inpaint":
        return lambda image: engine.inpaint(image, args.mask, args.prompt, control=control, **options)
    if args.job == "upscale":
        return lambda image: engine.upscale(image, scale=args.scale, control=control)
    return lambda image: engine.instruct_edit(image, args.instruction, control=control, **options)


def _out_path(args, index: int, item: str) -> Path:
    if args.out_dir is None:
        return Path(args.out)
    return args.out_dir / (f"{index:04d}.png" if args.job == "generate" else f"{index:04d}-{Path(item).stem}.png")


def _key(args) -> str:
    """The manifest field naming an input."""
    return "prompt" if args.job == "generate" else "image"


def _process(engine: Engine, args, index: int, item: str, rank: int, show_steps: bool) -> list[dict]:
    """Run one input: its manifest lines (one per file written, or one with its description or its error). Any
    failure (bad input, out of memory, a file that cannot be written) is its error line; the batch goes on."""
    record = {"index": index, _key(args): item, "process": rank}
    started = time.perf_counter()
    try:
        stepless = args.job in ("describe", "upscale")  # jobs without sampling steps or sampling options
        with tqdm(total=1, desc="steps", leave=False, disable=not show_steps or stepless) as bar:
            control = JobControl(on_step=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)))
            result = _job(engine, args, {} if stepless else _options(args), control)(item)
        seconds = round(time.perf_counter() - started, 3)
        if isinstance(result, str):
            return [{**record, "description": result, "seconds": seconds}]
        paths = _save(result, _out_path(args, index, item))
    except Exception as error:  # noqa: BLE001 - recorded in the manifest, the batch goes on
        message = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        return [{**record, "error": message}]
    return [{**record, "seed": result.image_metadata(i)["seed"], "file": path.name if args.out_dir else str(path),
             "seconds": seconds} for i, path in enumerate(paths)]  # fmt: skip


def _report(args, records: list[dict]) -> None:
    """Print each file (or description, or error) this run made."""
    for record in records:
        if "error" in record:
            print(f"error: {record['error']}", file=sys.stderr)
        elif "description" in record:
            print(f"{record['image']}\t{record['description']}" if args.out_dir else record["description"])
        else:
            print(args.out_dir / record["file"] if args.out_dir else record["file"])


def _to_do(args, state: PartialState, inputs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The inputs this run makes: all of them (a batch's manifest started afresh), or with `--resume` those its
    manifest does not hold as done. Every process reads the same list before any writes."""
    if args.out_dir is None:
        return inputs
    if state.is_main_process:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            start_afresh(args.out_dir)
    state.wait_for_everyone()
    done = finished(read_manifest(args.out_dir), _key(args)) if args.resume else set()
    state.wait_for_everyone()
    return [(index, item) for index, item in inputs if (index, item) not in done]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.job == "serve":
        return serve_forever(args)
    # the launcher's processes as one group: gloo on CPU (without `cpu=True` each CPU process would believe it is
    # alone and do all the work), NCCL with one GPU per process; a lone process without a launcher
    state = PartialState(cpu=not torch.cuda.is_available())
    one_gpu_each = state.num_processes > 1 and state.device.type == "cuda"
    engine = Engine(preset=args.preset, device=str(state.device) if one_gpu_each else None)
    inputs = _to_do(args, state, list(enumerate(_inputs(args))))
    records = []
    own_file = manifest_path(args.out_dir, state.process_index) if args.out_dir else None
    writer = closing(ManifestWriter(own_file)) if own_file else nullcontext()
    with writer as manifest, state.split_between_processes(inputs) as mine:
        shown = state.is_main_process
        long_batch = args.job == "generate" and len(mine) >= WARM_BATCH
        if long_batch:
            engine.warm(width=args.width, height=args.height, num_images=args.num_images, guidance=args.guidance)
        # a short run would not live to use a faster path: all eager, and its exit waits for no build
        with nullcontext() if long_batch else builds_paused():
            for index, item in tqdm(mine, desc="inputs", disable=not shown or len(inputs) == 1):
                made = _process(engine, args, index, item, state.process_index, show_steps=shown)
                if manifest is not None:
                    manifest.add(made)
                records += made
    records = sorted(gather_object(records), key=lambda record: record["index"])
    if state.is_main_process:
        _report(args, records)
        if args.out_dir is not None:
            tidy(args.out_dir, _key(args))
    state.destroy_process_group()
    return 2 if any("error" in record for record in records) else 0


if __name__ == "__main__":
    sys.exit(main())
