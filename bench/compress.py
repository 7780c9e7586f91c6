"""Compression side by side, every row measured in one run: the 12-step teacher and its students.

    python -m bench.compress [--count 300] [--student NAME=FOLDER ...] [--out bench/results]
    python -m bench.compress --openvino      # bundled-fast as the app runs it, on OpenVINO float and hybrid int8

Per row: UNet parameters, MACs per pass and per image, UNet passes per image, median end-to-end latency of an
engine call (images returned; a new caption each call; the rows timed in turn over five rounds, so noise on a
shared machine falls on all alike), speed-up against the teacher, the judge's shares on
`--count` unseen captions for two caption seeds (all five attributes and each), PSNR/SSIM against the teacher's
image for the same caption and seed, and describe -> regenerate (fresh): the attributes of `--count` renders the
regenerated picture keeps. Writes `compress.jsonl` and `compress.png` (latency against judged all-five) under `--out`.

Where the engine decodes `bundled` or `bundled-fast` with a tiny autoencoder on CPU, a row decoding with the full one
(`fast_decode=False`) comes first; the first row's images are the PSNR/SSIM reference, and speed-ups are against the
teacher as the app runs it. With `--openvino` the rows are `bundled-fast` as the app runs it (the reference, and what
speed-ups are against) and on OpenVINO (`DEPICT_RUNTIME=openvino`) with float models and with NNCF's hybrid int8 UNet
(`DEPICT_QUANTIZE=int8`), each warm (`Engine.warm`) before it is timed; they go to `compress_openvino.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from unittest.mock import patch

from bench.machine import machine_facts
from models import Engine
from models.metrics import psnr, ssim
from models.presets import BUNDLED_DIR, BUNDLED_FAST_DIR
from models.shapes import judge, random_scenes
from training.charts import scatter_chart
from training.evaluate import score_regenerate, tally
from training.macs import unet_macs

ROOT = Path(__file__).resolve().parent.parent

PROMPT = "a small red star at the top on a blue background"
TEACHER = "bundled"
STUDENT = "bundled-fast"
OPENVINO_ROWS = {"OpenVINO float": {"DEPICT_RUNTIME": "openvino", "DEPICT_QUANTIZE": "off"},
                 "OpenVINO hybrid int8": {"DEPICT_RUNTIME": "openvino", "DEPICT_QUANTIZE": "int8"}}  # fmt: skip
LATENCY_CAPTIONS_SEED = 3000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="unseen captions per seed")
    parser.add_argument("--seeds", default="1000,2000", help="caption seeds (each a set of `--count` captions)")
    parser.add_argument("--student", action="append", default=[],
                        help="NAME=FOLDER[@STEPS] of a distilled student (a folder with preset.json), drawn in STEPS "
                             "passes (default: its preset's); repeatable")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=50, help="timed engine calls per row (median), in 5 rounds")
    parser.add_argument("--openvino", action="store_true",
                        help=f"only {STUDENT}, as the app runs it and on OpenVINO float and hybrid int8")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    return parser.parse_args(argv)


def loaded_under(engine: Engine, preset: str, env: dict[str, str]) -> None:
    """Load `preset` with `env` set (the speed policy reads it at load) and build its faster paths; `env` undone."""
    with patch.dict(os.environ, env):
        engine.load(preset)
        engine.warm(preset)


def openvino_specs(engine: Engine) -> list[tuple[str, str, dict]]:
    """`bundled-fast` as the app runs it, then per `OPENVINO_ROWS` its folder and its base's registered again (a
    student shares its base's text encoder and autoencoder, so each row has its own); each loaded and warm."""
    specs = [(STUDENT, STUDENT, {})]
    loaded_under(engine, STUDENT, {})
    for label, env in OPENVINO_ROWS.items():
        base = engine.register_folder(BUNDLED_DIR, f"{TEACHER}, {label}")
        name = engine.register_folder(BUNDLED_FAST_DIR, f"{STUDENT}, {label}", base=base)
        loaded_under(engine, name, env)
        specs.append((name, name, {}))
    return specs


def interleaved_latency_ms(engine: Engine, specs: list[tuple[str, str, dict]], repeats: int,
                           rounds: int = 5) -> dict[str, float]:
    """Median engine-call latency per row, the rows timed in turn over `rounds` rounds, so that a noisy spell on a
    shared machine falls on every row alike; a new caption every call, so the text encoder runs each time (no
    prompt-cache hits)."""
    scenes = random_scenes(repeats, LATENCY_CAPTIONS_SEED)
    times: dict[str, list[float]] = {name: [] for name, _, _ in specs}
    for name, preset, options in specs:
        engine.text_to_image(PROMPT, preset=preset, **options)  # warm-up: loads and runs once
    for chunk in range(rounds):
        for name, preset, options in specs:
            for seed in range(chunk, repeats, rounds):
                started = time.perf_counter()
                engine.text_to_image(scenes[seed].caption, preset=preset, seed=seed, **options)
                times[name].append(time.perf_counter() - started)
    return {name: round(1000 * statistics.median(values), 2) for name, values in times.items()}


def drawn(engine: Engine, preset: str, options: dict, captions: list[str], seed: int) -> list:
    return [engine.text_to_image(caption, preset=preset, seed=seed + i, **options).images[0]
            for i, caption in enumerate(captions)]  # fmt: skip


def measure(engine: Engine, name: str, preset: str, options: dict, seeds: list[int], count: int,
            reference: dict) -> dict:  # fmt: skip
    """One row but its latency; `reference` holds the teacher's images per seed (filled in by the first row)."""
    chosen = engine.preset(preset)
    unet = engine.load(preset).base.unet
    passes = chosen.steps * (2 if chosen.guidance > 1 else 1)  # classifier-free guidance runs a second pass
    decoder = engine.text_to_image(PROMPT, preset=preset, **options).metadata["decoder"]
    row = {"name": name, "preset": preset, "steps": chosen.steps, "decoder": decoder,
           "unet_parameters": sum(p.numel() for p in unet.parameters()), "macs_per_pass": unet_macs(unet),
           "passes_per_image": passes}  # fmt: skip
    row["macs_per_image"] = row["macs_per_pass"] * passes
    fidelity = {"psnr": [], "ssim": []}
    for seed in seeds:
        scenes = random_scenes(count, seed)
        images = drawn(engine, preset, options, [s.caption for s in scenes], seed)
        reference.setdefault(seed, images)
        row[f"judged_seed_{seed}"] = tally((scene, judge(image)) for scene, image in zip(scenes, images))
        fidelity["psnr"] += [psnr(a, b) for a, b in zip(reference[seed], images)]
        fidelity["ssim"] += [ssim(a, b) for a, b in zip(reference[seed], images)]
    row["psnr_vs_teacher"] = round(statistics.mean(fidelity["psnr"]), 2)
    row["ssim_vs_teacher"] = round(statistics.mean(fidelity["ssim"]), 4)
    row["regenerate_kept"] = score_regenerate(engine, count, seeds[0], preset=preset, **options)
    return row


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["DEPICT_MAX_LOADED_PRESETS"] = str(8 + len(args.student))  # every row and base stays loaded
    engine = Engine(preset=TEACHER)
    specs = openvino_specs(engine) if args.openvino else []
    for name in (TEACHER, *(n for n in (STUDENT,) if n in engine.registry)) if not args.openvino else ():
        if engine.load(name).speed.tiny_decoder:  # the engine decodes fast on CPU: the full decoder beside it
            specs.append((f"{name} (full decoder)", name, {"fast_decode": False}))
        specs.append((name, name, {}))
    for spec in args.student:
        name, _, folder = spec.partition("=")
        folder, _, steps = folder.partition("@")
        specs.append((name, engine.register_folder(folder, name, **({"steps": int(steps)} if steps else {})), {}))
    seeds = [int(s) for s in args.seeds.split(",")]
    latency = interleaved_latency_ms(engine, specs, args.repeats)
    baseline = STUDENT if args.openvino else TEACHER  # as the app runs it
    reference: dict[int, list] = {}
    rows = []
    for name, preset, options in specs:
        row = {**measure(engine, name, preset, options, seeds, args.count, reference), "latency_ms": latency[name]}
        row["speedup"] = round(latency[baseline] / row["latency_ms"], 2)
        rows.append({**row, "machine": machine_facts()})
        print(json.dumps(rows[-1]), flush=True)
    if args.openvino:
        (out / "compress_openvino.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(markdown_table(rows, seeds))
        return rows
    (out / "compress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    points = [{"x": r["latency_ms"], "y": r[f"judged_seed_{seeds[0]}"]["all"], "label": r["name"]} for r in rows]
    scatter_chart(points, out / "compress.png", f"Teacher and students: latency against judged all-five "
                  f"({args.count} captions, seed {seeds[0]})", "median end-to-end ms", "judged all five")  # fmt: skip
    print(markdown_table(rows, seeds))
    return rows


def markdown_table(rows: list[dict], seeds: list[int]) -> str:
    head = ("| model | decoder | UNet params | MACs/pass | passes | MACs/image | median ms | speed-up | "
            + " | ".join(f"all five (seed {s})" for s in seeds) + " | size / colour / shape / position / background "
            "| PSNR / SSIM vs teacher | describe → regenerate kept |")  # fmt: skip
    lines = [head, "|" + "---|" * (11 + len(seeds))]
    for r in rows:
        first = r[f"judged_seed_{seeds[0]}"]
        each = " / ".join(f"{first[k]:.1%}" for k in ("size", "color", "shape", "position", "background"))
        judged = " | ".join(f"{r[f'judged_seed_{s}']['all']:.1%}" for s in seeds)
        lines.append(f"| {r['name']} | {r['decoder']} | {r['unet_parameters'] / 1e6:.2f} M | {r['macs_per_pass'] / 1e6:.1f} M | "
                     f"{r['passes_per_image']} | {r['macs_per_image'] / 1e6:.0f} M | {r['latency_ms']} | "
                     f"{r['speedup']}x | {judged} | {each} | {r['psnr_vs_teacher']} dB / {r['ssim_vs_teacher']} | "
                     f"{r['regenerate_kept']['all']:.1%} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
