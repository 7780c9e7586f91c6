"""Upscaling speed: the bundled network through the engine against PIL's bicubic and Lanczos, and the hub's diffusion
x4 upscaler's architecture (random weights: latency does not depend on their values) per tile, tiled and plain.

    python -m bench.upscale [--repeats 5] [--x4]

Prints JSON lines (seconds per image and per output megapixel), then the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image

from bench.machine import machine_facts
from models import Engine
from models.shapes import render
from models.tiles import starts
from models.upscaler import DiffusionUpscaler

# stabilityai/stable-diffusion-x4-upscaler's sizes (its original config: 256 channels x (1, 2, 2, 4), 7 input channels
# for 4 latent + 3 image ones, noise level as a class label, cross-attention over a 1024-wide text encoder; a 3-level
# autoencoder with 4 latent channels)
X4_UNET = {"in_channels": 7, "out_channels": 4, "block_out_channels": (256, 512, 512, 1024), "layers_per_block": 2,
           "down_block_types": ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
           "up_block_types": ("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",), "attention_head_dim": 8,
           "cross_attention_dim": 1024, "num_class_embeds": 1000, "only_cross_attention": (True, True, True, False),
           "use_linear_projection": True, "sample_size": 128}  # fmt: skip
X4_VAE = {"block_out_channels": (128, 256, 512), "layers_per_block": 2, "latent_channels": 4,
          "down_block_types": ("DownEncoderBlock2D",) * 3, "up_block_types": ("UpDecoderBlock2D",) * 3}  # fmt: skip


def median_seconds(call, repeats: int) -> float:
    call()  # the first call pays for allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def line(name: str, seconds: float, output: tuple[int, int], **extra) -> dict:
    megapixels = output[0] * output[1] / 1e6
    row = {"name": name, "output": f"{output[0]}x{output[1]}", "seconds": round(seconds, 4),
           "seconds_per_megapixel": round(seconds / megapixels, 4), **extra}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def bundled(repeats: int) -> list[dict]:
    """The engine's `upscale` on the bundled preset (64 -> 256 and 128 -> 512) beside PIL's resamplers."""
    engine = Engine("bundled")
    rows = []
    for side, scale in ((64, 4), (64, 2), (128, 4)):
        picture = render("a small red star at the top on a blue background", seed=1).resize((side, side))
        out = (side * scale, side * scale)
        result = engine.upscale(picture, scale=scale)
        rows.append(line(f"depict bundled {scale}x", median_seconds(lambda: engine.upscale(picture, scale=scale),
                                                                     repeats), out,
                         policy=result.metadata["speed_policy"]["reasons"]))  # fmt: skip
        for resampler in ("BICUBIC", "LANCZOS"):
            kind = getattr(Image.Resampling, resampler)
            rows.append(line(f"PIL {resampler.lower()} {scale}x", median_seconds(lambda: picture.resize(out, kind),
                                                                                 repeats), out))  # fmt: skip
    return rows


@torch.inference_mode()
def x4_architecture() -> list[dict]:
    """One UNet pass and one decode of a tile at the x4 upscaler's sizes, and what a 512x512 picture's 4x costs tiled
    (`DiffusionUpscaler`'s tiles and steps) and untiled (one pass over the whole picture, when memory allows)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**X4_UNET).eval()
    vae = AutoencoderKL(**X4_VAE).eval()
    tile = DiffusionUpscaler.TILE
    text = torch.randn(1, 77, 1024)
    sample = torch.randn(1, 7, tile, tile)
    step = median_seconds(lambda: unet(sample, 10, text, class_labels=torch.tensor([20])), 1)
    decode = median_seconds(lambda: vae.decode(torch.randn(1, 4, tile, tile)), 1)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    count = len(starts(512, tile, DiffusionUpscaler.OVERLAP)) ** 2
    per_tile = DiffusionUpscaler.STEPS * step + decode
    rows = [line("x4 architecture, one 128x128 tile (UNet step)", step, (4 * tile, 4 * tile)),
            line("x4 architecture, one 128x128 tile (decode to 512x512)", decode, (4 * tile, 4 * tile)),
            line(f"x4 tiled, 512x512 -> 2048x2048 ({count} tiles x ({DiffusionUpscaler.STEPS} steps + decode))",
                 count * per_tile, (2048, 2048), estimated_from="the two lines above", peak_rss_gb=round(peak_gb, 1))]
    return rows  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--x4", action="store_true", help="also time the x4 upscaler's architecture (minutes)")
    args = parser.parse_args(argv)
    report = {"bundled": bundled(args.repeats), "x4": x4_architecture() if args.x4 else [],
              "machine": machine_facts()}  # fmt: skip
    print(json.dumps(report["machine"]))
    return report


if __name__ == "__main__":
    main()
