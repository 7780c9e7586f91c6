"""A user's first session, timed as they live it: six requests on a plain SD-Turbo-architecture folder (random
weights) with TAESD in the hub cache, by plain diffusers and by Depict from an empty compile cache (first start) and
again (second start), each in a fresh process, in one run. JSON lines and a table.

    python -m bench.session [--out bench/results] [--keep DIR]

The requests: text -> image 512x512, again with a new prompt, a batch of 2, 768x512, regenerate keeping the layout
(img2img, strength 0.5) and inpaint. Plain diffusers is what a user would run instead: the folder's fp32 pipeline,
full VAE, img2img and inpainting from `from_pipe`. Depict eager (`DEPICT_COMPILE=off`) is the yardstick of "no
request waits more than twice its eager time". Random weights: the pictures are noise; their cost is the real one.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    StableDiffusionPipeline,
)
from PIL import Image

from bench.architectures import build, write_hub_cache_taesd
from bench.machine import machine_facts
from models import Engine
from models.graphs import CLIP_TEXT, UNET, Positional, wait_for_builds
from models.metrics import psnr, ssim

STEPS = 1  # SD-Turbo
TURBO = {"steps": STEPS, "guidance": 0.0}  # what a user sets for a plain folder (its defaults are diffusers': 25, 7.5)
KEEP_LAYOUT = 0.5
REQUESTS = (  # name, prompt, width, height, images
    ("512x512", "a lighthouse on a cliff at dusk", 512, 512, 1),
    ("512x512, a new prompt", "a bowl of ramen on a wooden table", 512, 512, 1),
    ("512x512, batch of 2", "a red fox in fresh snow", 512, 512, 2),
    ("768x512", "a panorama of a mountain lake", 768, 512, 1),
)
REGENERATE = "a lighthouse on a cliff at dawn"
BUILDS_AFTER = "background builds still running after the last request"  # not a request: left out of the session
INPAINT = "a full moon"


def mask(size: tuple[int, int]) -> Image.Image:
    """White (repaint) over the upper middle of the picture."""
    width, height = size
    region = Image.new("L", size, 0)
    region.paste(255, (width // 4, 0, 3 * width // 4, height // 2))
    return region


def run_plain(folder: Path) -> list[tuple[str, float]]:
    """The session through plain diffusers: the folder's pipeline in fp32 with its full VAE."""
    started = time.perf_counter()
    base = AutoPipelineForText2Image.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    base.set_progress_bar_config(disable=True)
    img2img, inpaint = AutoPipelineForImage2Image.from_pipe(base), AutoPipelineForInpainting.from_pipe(base)
    times = [("load", time.perf_counter() - started)]
    first = None
    for name, prompt, width, height, count in REQUESTS:
        started = time.perf_counter()
        images = base(prompt, width=width, height=height, num_images_per_prompt=count, num_inference_steps=STEPS,
                      guidance_scale=0.0).images  # fmt: skip
        times.append((name, time.perf_counter() - started))
        first = first or images[0]
    started = time.perf_counter()  # img2img needs int(steps * strength) >= 1: the steps Depict raises it to
    img2img(REGENERATE, image=first, strength=1 - KEEP_LAYOUT, num_inference_steps=round(STEPS / (1 - KEEP_LAYOUT)),
            guidance_scale=0.0)  # fmt: skip
    times.append(("regenerate, keep layout", time.perf_counter() - started))
    started = time.perf_counter()
    inpaint(INPAINT, image=first, mask_image=mask(first.size), width=first.width, height=first.height,
            num_inference_steps=STEPS, guidance_scale=0.0)  # fmt: skip
    times.append(("inpaint", time.perf_counter() - started))
    return times


def run_depict(folder: Path) -> list[tuple[str, float]]:
    """The same session through Depict's engine, as the app calls it."""
    started = time.perf_counter()
    engine = Engine(preset=str(folder))
    engine.load()
    times = [("load", time.perf_counter() - started)]
    first = None
    for name, prompt, width, height, count in REQUESTS:
        started = time.perf_counter()
        result = engine.text_to_image(prompt, width=width, height=height, num_images=count, seed=0, **TURBO)
        times.append((name, time.perf_counter() - started))
        first = first or result.images[0]
    started = time.perf_counter()
    engine.regenerate(first, REGENERATE, keep_layout=KEEP_LAYOUT, seed=0, **TURBO)
    times.append(("regenerate, keep layout", time.perf_counter() - started))
    started = time.perf_counter()
    engine.inpaint(first, mask(first.size), INPAINT, seed=0, **TURBO)
    times.append(("inpaint", time.perf_counter() - started))
    started = time.perf_counter()
    wait_for_builds()  # the user keeps the app open: what this start queued is built for the next requests and start
    times.append((BUILDS_AFTER, time.perf_counter() - started))
    return times


class OpenVinoAlone:
    """What a user of the OpenVINO runtime alone runs (FastSD CPU's path): the folder's text encoder, UNet and a decoder
    converted with `openvino.convert_model` and compiled for the CPU (LATENCY hint; OpenVINO picks the precision),
    driven by the folder's tokenizer and scheduler: no prompt cache, no policy of Depict's."""

    def __init__(self, folder: Path, decoder: torch.nn.Module, size: tuple[int, int] = (512, 512)):
        pipeline = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
        self.tokenizer, self.scheduler = pipeline.tokenizer, pipeline.scheduler
        self.scale = pipeline.vae.config.scaling_factor
        width, height = size
        self.latent_shape = (1, 4, height // 8, width // 8)
        core = openvino.Core()
        started = time.perf_counter()
        ids = self.tokenizer("a", padding="max_length", max_length=self.tokenizer.model_max_length,
                             return_tensors="pt").input_ids  # fmt: skip
        with torch.no_grad():
            text = pipeline.text_encoder(ids)[0]
            models = {
                "text": (Positional(pipeline.text_encoder, pipeline.text_encoder.forward, CLIP_TEXT), (ids,)),
                "unet": (Positional(pipeline.unet, pipeline.unet.forward, UNET),
                         (torch.randn(self.latent_shape), torch.tensor(999.0), text)),
                "decoder": (decoder, (torch.randn(self.latent_shape),)),
            }  # fmt: skip
            self.compiled = {name: core.compile_model(static(module, example), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
                             for name, (module, example) in models.items()}  # fmt: skip
        self.convert_s = time.perf_counter() - started
        self.parts = PartTimes()

    def __call__(self, prompt: str, seed: int = 0) -> np.ndarray:
        """The decoded picture of `prompt` (1 step)."""
        ids = self.tokenizer(prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="np").input_ids  # fmt: skip
        with self.parts("text encoder"):
            text = self.compiled["text"](ids)[0]
        self.scheduler.set_timesteps(STEPS)
        generator = torch.Generator("cpu").manual_seed(seed)
        latents = torch.randn(self.latent_shape, generator=generator) * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            sample = self.scheduler.scale_model_input(latents, t)
            with self.parts("UNet"):
                noise = self.compiled["unet"]([sample.numpy(), np.array(t, dtype=np.float32), text])[0]
            latents = self.scheduler.step(torch.from_numpy(noise), t, latents).prev_sample
        with self.parts("decoder"):
            return self.compiled["decoder"]([(latents / self.scale).numpy()])[0]


class PartTimes:
    """Seconds spent in each named part of a call, summed until `take`: `with parts(name):` around a part, or
    `watch(name, module)` for a torch module's forward (hooks, so a graph stand-in's run is timed too)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        started = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def watch(self, name: str, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(lambda *_: self._started.__setitem__(name, time.perf_counter()))
        module.register_forward_hook(lambda *_: self.seconds.__setitem__(
            name, self.seconds.get(name, 0.0) + time.perf_counter() - self._started[name]))

    def take(self, calls: int, label: str) -> list[tuple[str, float]]:
        """Rows of each part's seconds per call over the last `calls` calls; starts counting again."""
        rows = [(f"{label}, {name} per image", seconds / calls) for name, seconds in self.seconds.items()]
        self.seconds = {}
        return rows


def static(module: torch.nn.Module, example: tuple):
    """`module` converted to OpenVINO and reshaped to its example's static shapes, as a runtime user (FastSD CPU's
    `reshape`) compiles it: a model left with dynamic shapes runs slower on the CPU plugin."""
    model = openvino.convert_model(module.eval(), example_input=example)
    model.reshape({port.get_any_name(): list(t.shape) for port, t in zip(model.inputs, example)})
    return model


def run_steady(folder: Path, repeats: int = 7) -> list[tuple[str, float]]:
    """At 512x512, 1 step, with TAESD and with the full VAE: the OpenVINO runtime alone (conversion, then a warm-up) and
    Depict (after `Engine.warm`) in one process, their calls alternating over the same new prompts, so that a machine
    whose speed drifts (15% between runs here) moves both alike; the median of each."""
    engine = Engine(preset=str(folder))
    loaded, parts = engine.load(), PartTimes()
    wait_for_builds()  # the builds a load starts: tracing in two threads at once fails torch's trace check
    pipeline = loaded.pipeline("text_to_image")
    parts.watch("text encoder", pipeline.text_encoder)
    parts.watch("UNet", pipeline.unet)
    decoders = (("TAESD", AutoencoderTiny.from_pretrained("madebyollin/taesd").decoder, True),
                ("full VAE", AutoencoderKL.from_pretrained(folder / "vae").decoder, False))  # fmt: skip
    times = []
    for label, decoder, fast in decoders:
        runtime = OpenVinoAlone(folder, decoder)
        times.append((f"OpenVINO alone, {label}: convert and compile", runtime.convert_s))
        runtime("a warm-up")
        generate = functools.partial(engine.text_to_image, fast_decode=fast, **TURBO)
        engine.warm(guidance=0.0)
        generate("a warm-up")
        engine.warm(guidance=0.0)  # the decoder's graph, built from the call before
        parts.watch(f"decoder ({label})", loaded.tiny_vae().decoder if fast else pipeline.vae.decoder)
        runtime.parts.take(1, "")
        parts.take(1, "")
        seconds = {"OpenVINO alone": [], "Depict": []}
        for index in range(repeats):
            prompt = f"{REQUESTS[0][1]}, take {index}"
            for name, run in (("OpenVINO alone", runtime), ("Depict", generate)):
                started = time.perf_counter()
                run(prompt)
                seconds[name].append(time.perf_counter() - started)
        times += [(f"{name}, {label}: 512x512", statistics.median(values)) for name, values in seconds.items()]
        times += runtime.parts.take(repeats, f"OpenVINO alone, {label}") + parts.take(repeats, f"Depict, {label}")
        del runtime
        gc.collect()
    return times


def median_s(generate, repeats: int) -> float:
    """The median seconds of `generate(prompt)` over `repeats` new prompts."""
    seconds = []
    for index in range(repeats):
        started = time.perf_counter()
        generate(f"{REQUESTS[0][1]}, take {index}")
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


UNSEEN = (("a harbour with fishing boats at sunrise", 11), ("an old library with tall shelves", 23))  # prompt, seed


def run_int8(folder: Path, repeats: int = 7) -> list[tuple[str, float]]:
    """Depict at 512x512, 1 step, with TAESD and with the full VAE, on OpenVINO with float models
    (`DEPICT_QUANTIZE=off`) and NNCF's hybrid int8 UNet and VAE decoder (`int8`), both loaded and warm in one process,
    their calls alternating over the same new prompts: the median of each, and each int8 image's PSNR/SSIM against
    the float one on prompts and seeds no calibration or other bench uses."""
    engines = {}
    for label, mode in (("float", "off"), ("hybrid int8", "int8")):
        os.environ["DEPICT_QUANTIZE"] = mode  # read when the model loads
        engines[label] = Engine(preset=str(folder))
        engines[label].warm(guidance=0.0)
        engines[label].text_to_image("a warm-up", fast_decode=False, **TURBO)
        engines[label].warm(guidance=0.0)  # the full VAE decoder's graph, built from the call before
    rows = []
    for decoder, fast in (("TAESD", True), ("full VAE", False)):
        seconds = {label: [] for label in engines}
        for index in range(repeats):
            for label, engine in engines.items():
                started = time.perf_counter()
                engine.text_to_image(f"{REQUESTS[0][1]}, take {index}", fast_decode=fast, **TURBO)
                seconds[label].append(time.perf_counter() - started)
        rows += [(f"Depict, {label}, {decoder}: 512x512", statistics.median(times)) for label, times in seconds.items()]
        for prompt, seed in UNSEEN:
            int8, floating = (engines[label].text_to_image(prompt, seed=seed, fast_decode=fast, **TURBO).images[0]
                              for label in ("hybrid int8", "float"))  # fmt: skip
            case = f"hybrid int8, {decoder}, '{prompt}' seed {seed}"
            rows += [(f"{case}: PSNR against float, dB", psnr(int8, floating)),
                     (f"{case}: SSIM against float", ssim(int8, floating))]  # fmt: skip
    return rows


RUNNERS = {"plain": run_plain, "depict": run_depict, "steady": run_steady, "int8": run_int8}


def session(runner: str, folder: Path, env: dict) -> dict[str, float]:
    """One session in a fresh process: request name -> seconds."""
    command = [sys.executable, "-m", "bench.session", "--run", runner, "--folder", str(folder)]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{runner} session failed:\n{done.stderr[-3000:]}")
    last = done.stdout.strip().splitlines()[-1]
    print(f"{runner} {env.get('DEPICT_COMPILE', '')}: {last}", file=sys.stderr, flush=True)
    return dict(json.loads(last))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--keep", type=Path, help="build the model folder here and keep it for later runs (default: a "
                        "temp folder); the compile cache starts empty at every run")  # fmt: skip
    parser.add_argument("--run", choices=RUNNERS, help=argparse.SUPPRESS)  # one session, in this process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--int8", action="store_true", help="only the float against hybrid int8 comparison")
    parser.add_argument("--sessions-only", action="store_true", help="the four sessions, not the steady state")
    parser.add_argument("--steady-only", action="store_true", help="the steady state, not the sessions")
    args = parser.parse_args(argv)
    if args.run:
        times = RUNNERS[args.run](args.folder)
        print(json.dumps([(name, round(seconds, 4)) for name, seconds in times]), flush=True)
        return []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        folder = build("sd-turbo", root / "sd-turbo") / "text_to_image"  # a plain folder: no preset.json
        env = {"HF_HUB_CACHE": str(write_hub_cache_taesd(root / "hub")), "HF_HUB_OFFLINE": "1",
               "DEPICT_COMPILE_CACHE": str(Path(scratch) / "compile_cache")}  # fmt: skip
        if args.int8:
            return write_rows([{"row": name, "value": value} for name, value in session("int8", folder, env).items()],
                              args.out / "int8_hybrid.jsonl")
        rows = []
        if not args.steady_only:
            rows += report_sessions({
                "plain diffusers": session("plain", folder, env),
                "Depict, first start": session("depict", folder, env),  # the compile cache starts empty
                "Depict, second start": session("depict", folder, env),
                "Depict eager": session("depict", folder, {**env, "DEPICT_COMPILE": "off"}),
            }, args.out)  # fmt: skip
        if not args.sessions_only:
            rows += report_steady(session("steady", folder, env), args.out)
    return rows


def write_rows(rows: list[dict], path: Path) -> list[dict]:
    """`rows` as JSON lines at `path`, each with the machine's facts; printed too."""
    facts = machine_facts()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as stream:
        for row in rows:
            stream.write(json.dumps({**row, "machine": facts}) + "\n")
    print(f"machine: {json.dumps(facts)}")
    for row in rows:
        print(json.dumps(row))
    return rows


def report_sessions(sessions: dict[str, dict[str, float]], out: Path) -> list[dict]:
    """Rows per request and the session totals, printed and written to `out/session.jsonl`."""
    plain, eager = sessions["plain diffusers"], sessions["Depict eager"]
    rows = []
    for name in plain:
        row = {"request": name, **{label: times[name] for label, times in sessions.items()}}
        for label in ("Depict, first start", "Depict, second start"):
            row[f"{label} / eager"] = round(sessions[label][name] / eager[name], 2)
        rows.append(row)
    totals = {label: round(sum(times[name] for name in plain), 1) for label, times in sessions.items()}
    rows.append({"request": "session", **totals,
                 **{f"speed-up, {label}": round(totals["plain diffusers"] / totals[label], 2) for label in totals},
                 BUILDS_AFTER: sessions["Depict, first start"][BUILDS_AFTER]})  # fmt: skip
    write_rows(rows, out / "session.jsonl")
    labels = list(sessions)
    print("| request | " + " | ".join(labels) + " | first / eager | second / eager |")
    print("|---" * (len(labels) + 3) + "|")
    for row in rows[:-1]:
        cells = [f"{row[label]:.1f} s" for label in labels]
        ratios = [f"{row[f'{label} / eager']:.2f}x" for label in ("Depict, first start", "Depict, second start")]
        print(f"| {row['request']} | " + " | ".join(cells + ratios) + " |")
    session_row = rows[-1]
    speedups = [f"{session_row[f'speed-up, {label}']:.2f}x" for label in labels]
    print("| **session** | " + " | ".join(f"{session_row[label]:.1f} s ({s})" for label, s in zip(labels, speedups))
          + " | | |")
    print(f"first start: {BUILDS_AFTER}: {session_row[BUILDS_AFTER]:.0f} s")
    return rows


def report_steady(steady: dict[str, float], out: Path) -> list[dict]:
    """Warm Depict against the OpenVINO runtime alone, 512x512, 1 step, TAESD and the full VAE, printed and written to
    `out/steady_state.jsonl`."""
    rows = []
    for label in ("TAESD", "full VAE"):
        alone, depict = steady[f"OpenVINO alone, {label}: 512x512"], steady[f"Depict, {label}: 512x512"]
        rows.append({"request": f"steady state 512x512, 1 step, {label}", "OpenVINO alone": alone, "Depict": depict,
                     "speed-up": round(alone / depict, 2),
                     "OpenVINO alone, convert and compile": steady[f"OpenVINO alone, {label}: convert and compile"]})
    parts = {name: seconds for name, seconds in steady.items() if name.endswith(" per image")}
    rows.append({"request": "where a warm 512x512 image's time goes (s per image)", **parts})
    write_rows(rows, out / "steady_state.jsonl")
    for row in rows[:-1]:
        print(f"{row['request']}: OpenVINO alone {row['OpenVINO alone']:.2f} s, Depict {row['Depict']:.2f} s "
              f"({row['speed-up']:.2f}x; OpenVINO's conversion {row['OpenVINO alone, convert and compile']:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
