"""Depict against plain diffusers, measured side by side in one run: JSON lines, a table and a PNG bar chart.

    python -m bench.speed [--repeats 5] [--skip-architectures] [--out bench/results]

Every figure is the median of `--repeats` runs after one warm-up; each ratio compares two figures taken in the
same run (baseline / Depict: above 1 means Depict is faster).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import psutil
import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image, ImageDraw
from transformers import AutoProcessor, BlipForConditionalGeneration

from bench.architectures import build, write_hub_cache_taesd
from bench.machine import machine_facts
from models import Engine
from models.metrics import psnr
from models.shapes import parse, random_scenes, region_mask, render
from models.shapes.instructions import edited_caption

ROOT = Path(__file__).resolve().parent.parent

PROMPT = "a small red star at the top on a blue background"
CONTENT = "a large green circle in the center on a white background"


def median_ms(run, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1)


def row(name: str, depict_ms: float, baseline_ms: float | None = None, **extra) -> dict:
    entry = {"name": name, "depict_ms": depict_ms, "baseline_ms": baseline_ms, **extra}
    if baseline_ms:
        entry["speedup"] = round(baseline_ms / depict_ms, 2)
    print(json.dumps(entry), flush=True)
    return entry


def _plain(cls, folder: Path, **components):
    pipeline = cls.from_pretrained(folder, safety_checker=None, requires_safety_checker=False, **components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def bundled_jobs(repeats: int) -> list[dict]:
    """Each job on the bundled preset through the engine, beside the same diffusers pipeline called directly."""
    engine = Engine()
    preset = engine.preset()
    steps, guidance = preset.steps, preset.guidance
    content = render(CONTENT, seed=1)
    mask = region_mask(parse(CONTENT), 1)
    base = _plain(StableDiffusionPipeline, Path(preset.text_to_image))
    img2img = StableDiffusionImg2ImgPipeline(**base.components)
    inpaint = StableDiffusionInpaintPipeline(**base.components)
    shared = {name: base.components[name] for name in ("vae", "text_encoder", "tokenizer")}
    instruct = _plain(StableDiffusionInstructPix2PixPipeline, Path(preset.instruct_edit), **shared)
    captioner = BlipForConditionalGeneration.from_pretrained(preset.captioner).eval()
    processor = AutoProcessor.from_pretrained(preset.captioner)
    base.load_lora_weights(preset.adapters_dir, weight_name="striped.safetensors", adapter_name="striped")
    base.disable_lora()
    common = {"num_inference_steps": steps, "guidance_scale": guidance}

    def plain_describe():
        with torch.no_grad():
            tokens = captioner.generate(**processor(images=content, return_tensors="pt"), max_new_tokens=16)
        return processor.batch_decode(tokens, skip_special_tokens=True)

    def plain_style():
        base.enable_lora()
        img2img(CONTENT, image=content, strength=0.6, **common)
        base.disable_lora()

    jobs = {
        "text_to_image": (lambda: engine.text_to_image(PROMPT, seed=0),
                          lambda: base(PROMPT, height=64, width=64, **common)),
        "describe": (lambda: engine.describe(content), plain_describe),
        "regenerate (keep layout 0.5)": (lambda: engine.regenerate(content, CONTENT, keep_layout=0.5, seed=0),
                                          lambda: img2img(CONTENT, image=content, strength=0.5, **common)),
        "style_transfer": (lambda: engine.style_transfer(content, style="striped", prompt=CONTENT, seed=0), plain_style),
        "inpaint": (lambda: engine.inpaint(content, mask, PROMPT, seed=0),
                    lambda: inpaint(PROMPT, image=content, mask_image=mask, height=64, width=64, **common)),
        "instruct_edit": (lambda: engine.instruct_edit(content, "make the circle blue", seed=0),
                          lambda: instruct(edited_caption(CONTENT, "make the circle blue"), image=content,
                                           image_guidance_scale=preset.image_guidance, **common)),
    }  # fmt: skip
    rows = [row(f"bundled {name}", median_ms(ours, repeats), median_ms(plain, repeats))
            for name, (ours, plain) in jobs.items()]  # fmt: skip
    one = median_ms(lambda: engine.text_to_image(PROMPT, seed=0), repeats) / 1000
    eight = median_ms(lambda: engine.text_to_image(PROMPT, seed=0, num_images=8), repeats) / 1000
    rows.append(row("bundled images/s (batch 8 vs 1)", round(1000 * eight, 1), round(8000 * one, 1),
                    images_per_second={"batch_1": round(1 / one, 2), "batch_8": round(8 / eight, 2)}))  # fmt: skip
    return rows


def cold_start() -> dict:
    """Process start to the first bundled image, in a fresh interpreter."""
    code = "from models import Engine; Engine().text_to_image('a small red star at the top on a blue background')"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return row("bundled cold start (process -> first image)", round(1000 * (time.perf_counter() - started), 1))


def cache_and_adapters(repeats: int) -> list[dict]:
    """Switching tabs and styles on a loaded preset: no load, no new weights."""
    engine = Engine()
    loaded = engine.load()
    rss = psutil.Process().memory_info().rss
    derived = median_ms(lambda: [loaded.pipeline(role) for role in ("image_to_image", "inpaint")], repeats, warmup=0)
    added = psutil.Process().memory_info().rss - rss
    styles = engine.adapters()
    for style in styles:  # load each file once
        loaded.adapters.apply(loaded.base, {style: 1.0})
    switches = []
    for _ in range(repeats):
        for style in styles:
            started = time.perf_counter()
            loaded.adapters.apply(loaded.base, {style: 1.0})
            switches.append(time.perf_counter() - started)
    return [
        row("tab switch (derive img2img + inpaint on a loaded preset)", derived, memory_added_mb=round(added / 2**20, 1)),
        row("style adapter switch", round(1000 * statistics.median(switches), 2), adapters=styles),
    ]


def engine_run(preset: str | Path, repeats: int, env: dict | None = None, **flags) -> dict:
    """`python -m bench.engine_run` in a fresh process: what a start of the app pays, and its later images."""
    command = [sys.executable, "-m", "bench.engine_run", str(preset), "--repeats", str(repeats)]
    for key, value in flags.items():
        command += [f"--{key}", str(value)]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, check=True, capture_output=True,
                          text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def new_prompts():
    """A new prompt for every timed call: the same prompt each time would be served by Depict's prompt cache, while
    plain diffusers encodes it every time (not what a user sending new prompts lives)."""
    return (f"{PROMPT}, take {index}" for index in itertools.count())


def architecture(name: str, folder: Path, repeats: int) -> list[dict]:
    """A 512x512 image of a real architecture (random weights): plain diffusers fp32 against Depict's engine on the
    preset folder (first start with an empty compile cache, then a second start), and Depict in fp32 eager (what
    the policy's choice is worth on this CPU); PSNR of the policy's image against the fp32 one, same seed."""
    build(name, folder)
    preset = json.loads((folder / "preset.json").read_text())
    call = {"num_inference_steps": preset["steps"], "guidance_scale": preset["guidance"], "height": 512, "width": 512}
    plain = _plain(StableDiffusionPipeline, folder / "text_to_image")
    if "speed_adapter" in preset:
        source, _, weight_name = preset["speed_adapter"].partition(":")
        plain.load_lora_weights(source, weight_name=weight_name, adapter_name="speed")
    prompts = new_prompts()
    baseline = median_ms(lambda: plain(next(prompts), **call), repeats)
    del plain
    cache = {"DEPICT_COMPILE_CACHE": str(folder / "compile_cache")}
    first = engine_run(folder, repeats, cache, save=folder / "policy.png")
    second = engine_run(folder, 1, cache)
    fp32 = engine_run(folder, 1, {**cache, "DEPICT_COMPILE": "off"}, dtype="float32", save=folder / "fp32.png")
    quality = round(psnr(Image.open(folder / "policy.png"), Image.open(folder / "fp32.png")), 1)
    title = f"{name} architecture 512x512, {preset['steps']} step(s)"
    return [
        row(title, first["median_ms"], baseline, depict={**first, "psnr_vs_fp32_db": quality}),
        row(f"{title}: the policy's choice vs Depict fp32 eager", first["median_ms"], fp32["median_ms"], fp32=fp32),
        row(f"{title}: waiting for the built paths, second start (vs first)", round(1000 * second["warm_s"], 1),
            round(1000 * first["warm_s"], 1), first_start=first, second_start=second),
    ]  # fmt: skip


def plain_folder(folder: Path, baseline_ms: float, repeats: int) -> list[dict]:
    """The SD-Turbo-architecture pipeline folder on its own (no preset.json, no vae_tiny/), run at the preset's
    call (1 step, no guidance, 512x512): with no tiny autoencoder anywhere, then with madebyollin/taesd in the local
    hub cache, against the same plain diffusers fp32 figure."""
    rows = []
    hubs = {"no tiny autoencoder anywhere": folder / "hub_empty",
            "madebyollin/taesd in the hub cache": write_hub_cache_taesd(folder / "hub_taesd")}  # fmt: skip
    for label, hub_cache in hubs.items():
        hub_cache.mkdir(exist_ok=True)
        env = {"DEPICT_COMPILE_CACHE": str(folder / "compile_cache"), "HF_HUB_CACHE": str(hub_cache),
               "HF_HUB_OFFLINE": "1"}  # fmt: skip
        facts = engine_run(folder / "text_to_image", repeats, env, steps=1, guidance=0.0, size=512)
        rows.append(row(f"plain sd-turbo-architecture folder, {label}", facts["median_ms"], baseline_ms, depict=facts))
    return rows


def first_call_s(engine: Engine) -> float:
    """A new engine's first image in seconds, loading included (it runs eagerly while its graphs are built)."""
    started = time.perf_counter()
    engine.text_to_image(PROMPT, seed=0)
    return time.perf_counter() - started


def precision_and_compile(repeats: int, prompts: int = 5) -> list[dict]:
    """The bundled preset as the policy runs it (fp32, traced graphs) against eager, bf16 (time, PSNR against fp32
    on the same seeds) and compiled (`DEPICT_COMPILE=on`: an AOTInductor package, compile time, then steady latency):
    the evidence for what the engine picks on its own."""
    traced = Engine(dtype="float32")
    traced_first_s = first_call_s(traced)
    traced_warm_s = traced.warm()["seconds"]
    reference_ms = median_ms(lambda: traced.text_to_image(PROMPT, seed=0), repeats)
    with mock.patch.dict(os.environ, {"DEPICT_COMPILE": "off"}):  # read while engines load
        eager = Engine(dtype="float32")
        eager_ms = median_ms(lambda: eager.text_to_image(PROMPT, seed=0), repeats)
    bf16 = Engine(dtype="bfloat16")
    bf16_ms = median_ms(lambda: bf16.text_to_image(PROMPT, seed=0), repeats)
    captions = [s.caption for s in random_scenes(prompts, seed=1000)]
    quality = [psnr(traced.text_to_image(c, seed=i).images[0], bf16.text_to_image(c, seed=i).images[0])
               for i, c in enumerate(captions)]  # fmt: skip
    with mock.patch.dict(os.environ, {"DEPICT_COMPILE": "on"}):
        compiled = Engine(dtype="float32")
        first_call_s(compiled)
        compiled_warm_s = compiled.warm()["seconds"]
        compiled_ms = median_ms(lambda: compiled.text_to_image(PROMPT, seed=0), repeats)
    return [
        row("bundled text_to_image traced graphs, the default (vs eager)", reference_ms, eager_ms,
            first_call_s=round(traced_first_s, 2), tracing_s=round(traced_warm_s, 2)),
        row("bundled text_to_image bf16 (vs fp32 traced)", bf16_ms, reference_ms,
            psnr_vs_fp32_db={"min": round(min(quality), 1), "median": round(statistics.median(quality), 1)}),
        row("bundled text_to_image compiled package (vs traced)", compiled_ms, reference_ms,
            compile_s=round(compiled_warm_s, 1)),
    ]  # fmt: skip


def unet_probe(folder: Path, repeats: int) -> list[dict]:
    """One SD-Turbo-architecture UNet step at 512x512 per layout and dtype: what the engine's CPU policy rests on."""
    latents, text = torch.randn(1, 4, 64, 64), torch.randn(1, 77, 1024)
    rows, reference = [], None
    for label, dtype, layout in (("fp32", torch.float32, torch.contiguous_format),
                                 ("fp32 channels_last", torch.float32, torch.channels_last),
                                 ("bf16 channels_last", torch.bfloat16, torch.channels_last)):  # fmt: skip
        unet = UNet2DConditionModel.from_pretrained(folder / "text_to_image" / "unet", torch_dtype=dtype)
        unet = unet.to(memory_format=layout).eval()
        with torch.no_grad():
            ms = median_ms(lambda: unet(latents.to(dtype), 999, text.to(dtype)), repeats)
        reference = reference or ms
        rows.append(row(f"probe: sd-turbo UNet step 512x512, {label}", ms, reference))
        del unet
    return rows


def bar_chart(rows: list[dict], path: Path) -> None:
    """Speed-ups (baseline / Depict) as horizontal bars."""
    rows = [r for r in rows if r.get("speedup")]
    width, bar_height, label_width = 900, 28, 420
    image = Image.new("RGB", (width, 40 + bar_height * len(rows)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), "Depict speed-up over plain diffusers (same run, median of repeats)", fill="black")
    top = max(r["speedup"] for r in rows)
    for index, entry in enumerate(rows):
        y = 35 + index * bar_height
        length = int((width - label_width - 80) * entry["speedup"] / top)
        draw.text((10, y + 6), entry["name"][:60], fill="black")
        draw.rectangle((label_width, y + 4, label_width + length, y + bar_height - 4), fill=(70, 110, 220))
        draw.text((label_width + length + 6, y + 6), f"{entry['speedup']:.2f}x", fill="black")
    image.save(path)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-architectures", action="store_true", help="only the bundled preset (about a minute)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), **machine_facts()}), flush=True)
    rows = [*bundled_jobs(args.repeats), cold_start(), *cache_and_adapters(args.repeats),
            *precision_and_compile(args.repeats)]
    if not args.skip_architectures:
        with tempfile.TemporaryDirectory() as temp:
            turbo = architecture("sd-turbo", Path(temp) / "sd-turbo", args.repeats)
            rows += turbo + plain_folder(Path(temp) / "sd-turbo", turbo[0]["baseline_ms"], args.repeats)
            rows += architecture("sd15", Path(temp) / "sd15", args.repeats)
            rows += unet_probe(Path(temp) / "sd-turbo", repeats=3)
    machine = machine_facts()
    (out / "speed.jsonl").write_text("".join(json.dumps({**r, "machine": machine}) + "\n" for r in rows))
    bar_chart(rows, out / "speed.png")
    print("\n| benchmark | Depict ms | baseline ms | speed-up |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['depict_ms']} | {r.get('baseline_ms') or ''} | {r.get('speedup', '')} |")
    return rows


if __name__ == "__main__":
    main()
