"""Depict's engine on one preset in a fresh process, so that what a start pays (load, compile or reading the compile
cache) is measured as a user's next start pays it: prints one JSON line.

    python -m bench.engine_run PRESET [--repeats 5] [--dtype float32] [--save image.png]

`load_s`: engine start to the preset loaded; `first_s`: the first image (it never waits for a compile: faster paths
are built in the background); `warm_s`: `Engine.warm` at that shape, the wait for those builds (compiling, or reading
what an earlier start compiled); `median_ms`: later images, on the built paths.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.speed import PROMPT, median_ms, new_prompts
from models import Engine


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="a preset name or folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", help="fixed dtype (default: the speed policy's)")
    parser.add_argument("--save", help="write the seed-0 image here")
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument("--guidance", type=float, help="default: the preset's")
    parser.add_argument("--size", type=int, help="width and height (default: the preset's)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    engine = Engine(preset=args.preset, dtype=args.dtype)
    engine.load()
    load_s = time.perf_counter() - started
    call = {"seed": 0, "steps": args.steps, "guidance": args.guidance, "width": args.size, "height": args.size}
    started = time.perf_counter()
    first = engine.text_to_image(PROMPT, **call)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    warmed = engine.warm(width=args.size, height=args.size, guidance=args.guidance)
    warm_s = time.perf_counter() - started
    prompts = new_prompts()
    later_ms = median_ms(lambda: engine.text_to_image(next(prompts), **call), args.repeats, warmup=0) if args.repeats else None
    if args.save:
        first.images[0].save(args.save)
    meta = first.metadata
    facts = {"load_s": round(load_s, 1), "first_s": round(first_s, 1),
             "warm_s": round(warm_s, 1), "unet": warmed["unet"],
             "median_ms": later_ms,
             "dtype": meta["dtype"], "decoder": meta["decoder"], "attention": meta["attention"],
             "compile": meta["speed_policy"]["compile"], "tiny_decoder": meta["speed_policy"]["tiny_decoder"],
             "reasons": meta["speed_policy"]["reasons"]}  # fmt: skip
    print(json.dumps(facts), flush=True)
    return facts


if __name__ == "__main__":
    main()
