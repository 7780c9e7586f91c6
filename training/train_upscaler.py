"""Train the bundled super-resolution network (`models.upscaler.PixelShuffleUpscaler`) on the shapes world, 64 -> 256.

The renderer draws every scene at both sizes, so the network learns the true high-resolution picture, not a blurred
guess. Pairs: the 64x64 render (what the app makes) and the same scene rendered at 256x256; batches are crops around
edges (most pixels are flat, where bicubic is already exact, so random crops spend most of a batch on nothing to learn).
Loss MSE, EMA of the weights. (An earlier run with L1 stalled at bicubic, but so did MSE under the network's old
initialisation, so that run says nothing about L1; it was not tried again.) Quality on renders of scenes it never saw
(two seeds): PSNR/SSIM against the true render beside bicubic and Lanczos at 4x and 2x (2x: the network's 4x
box-filtered by 2, against the 128x128 render), and the world's judge reading the upscaled picture as it reads the
original.

    flock /tmp/depict-torch.lock nice -n 10 python -m training.train_upscaler --out models/bundled/upscaler
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.metrics import psnr, ssim
from models.shapes import IMAGE_SIZE, judge, random_attributes, render_attributes
from models.upscaler import PixelShuffleUpscaler, to_image, to_tensor

from .common import (
    EMA,
    command_line,
    median_ms,
    optimizer_step,
    resume_run,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .model_card import hardware, write_model_card

SCALE = 4
RESAMPLERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="runs/upscaler", work_dir="runs/upscaler-work", steps=10000, batch_size=16,
                             lr=2e-3, data=2048, tiny={"scenes": 8, "eval_scenes": 2, "crop": 16})  # fmt: skip
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--crop", type=int, default=32, help="low-resolution crop side of each training example")
    parser.add_argument("--eval-scenes", type=int, default=200, help="new scenes per held-out seed")
    return parser.parse_args(argv)


def prepare_pairs(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Render `count` random scenes at 64 and at 256 pixels a side.

    Returns:
        low: uint8 tensor (count, 3, 64, 64), the world's renders.
        high: uint8 tensor (count, 3, 256, 256), the same scenes drawn 4x larger.
        scenes: each pair's attributes.
    """
    rng = random.Random(seed)
    scenes = [(random_attributes(rng), rng.randrange(2**31)) for _ in range(count)]

    def stack(size: int) -> torch.Tensor:
        pixels = np.stack([np.asarray(render_attributes(scene, s, size)) for scene, s in scenes])
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()

    return stack(IMAGE_SIZE), stack(IMAGE_SIZE * SCALE), scenes


def edge_pixels(low: torch.Tensor) -> torch.Tensor:
    """(image, y, x) of every low-render pixel whose 3x3 neighbourhood is not one flat colour: the only places where
    bicubic is wrong (everywhere else the picture is flat and bicubic exact)."""
    pixels = low.float()
    spread = F.max_pool2d(pixels, 3, 1, 1) + F.max_pool2d(-pixels, 3, 1, 1)
    return (spread.amax(1) > 0).nonzero()


def crops(low: torch.Tensor, high: torch.Tensor, edges: torch.Tensor, batch: int, side: int,
          generator: torch.Generator):  # fmt: skip
    """A batch of aligned crops in [0, 1], `side` pixels of the low render and 4x that of the high one, each around a
    random edge pixel (`edge_pixels`), shifted by up to a quarter of the side so edges fall anywhere in the crop."""
    pick = edges[torch.randint(0, len(edges), (batch,), generator=generator)]
    shift = torch.randint(-(side // 4), side // 4 + 1, (batch, 2), generator=generator)
    index, corner = pick[:, 0], (pick[:, 1:] - side // 2 + shift).clamp(0, IMAGE_SIZE - side)
    lows = [low[i, :, y:y + side, x:x + side] for i, (y, x) in zip(index.tolist(), corner.tolist())]
    highs = [high[i, :, SCALE * y:SCALE * (y + side), SCALE * x:SCALE * (x + side)]
             for i, (y, x) in zip(index.tolist(), corner.tolist())]  # fmt: skip
    return torch.stack(lows).float() / 255, torch.stack(highs).float() / 255


def upscaled(network: PixelShuffleUpscaler, image: Image.Image, scale: int) -> dict[str, Image.Image]:
    """`image` `scale`x larger by the network and by each plain resampler."""
    size = (image.width * scale, image.height * scale)
    with torch.no_grad():
        out = network(to_tensor(image))
    if scale != SCALE:
        out = F.avg_pool2d(out, SCALE // scale)
    return {"network": to_image(out), **{name: image.resize(size, kind) for name, kind in RESAMPLERS.items()}}


def evaluate(network: PixelShuffleUpscaler, count: int, seed: int) -> dict:
    """On `count` new scenes: mean PSNR/SSIM against the true render for each method at 4x and 2x, and how often the
    judge reads the network's 4x picture as it reads the original (all five attributes)."""
    network.eval()
    rng = random.Random(seed)
    figures: dict[str, list[float]] = {}
    same = 0
    for _ in range(count):
        scene, s = random_attributes(rng), rng.randrange(2**31)
        original = render_attributes(scene, s)
        for scale in (SCALE, 2):
            truth = render_attributes(scene, s, IMAGE_SIZE * scale)
            for name, image in upscaled(network, original, scale).items():
                figures.setdefault(f"{scale}x {name} PSNR (dB)", []).append(psnr(truth, image))
                figures.setdefault(f"{scale}x {name} SSIM", []).append(ssim(truth, image))
                if scale == SCALE and name == "network":
                    same += judge(image) == judge(original)
    result = {name: round(statistics.mean(values), 4 if "SSIM" in name else 2) for name, values in figures.items()}
    result[f"{SCALE}x over bicubic (dB)"] = round(result[f"{SCALE}x network PSNR (dB)"] -
                                                  result[f"{SCALE}x bicubic PSNR (dB)"], 2)  # fmt: skip
    result["judge reads the 4x as the original"] = f"{same}/{count}"
    return result


def upscale_ms(network: PixelShuffleUpscaler, repeats: int = 20) -> float:
    """Median milliseconds of one 64x64 -> 256x256 upscale, batch 1."""
    image = to_tensor(Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE)))
    return median_ms(lambda: network(image), repeats)


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_seed(args.seed)
    torch.set_grad_enabled(True)
    low, high, _ = prepare_pairs(args.scenes, seed=args.seed)
    edges = edge_pixels(low)
    network = PixelShuffleUpscaler(SCALE, args.channels, args.layers)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    ema = EMA(network, decay=0.999)
    modules = {"network": network, "ema": ema.module}
    checkpoints, state, generator, began, progress = resume_run(args.work_dir, modules, optimizer, args.seed,
                                                                args.steps, "upscaler")  # fmt: skip
    network.train()
    for step in progress:
        lows, highs = crops(low, high, edges, args.batch_size, args.crop, generator)
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=100, total=args.steps)
        loss = F.mse_loss(network(lows), highs)
        optimizer_step(loss, optimizer, {ema: network}, step)
        progress.set_postfix(loss=f"{loss.item():.2e}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, modules, optimizer, {"elapsed": time.time() - began})
    final = ema.module.eval()
    facts = {
        "command": command_line("training.train_upscaler", argv),
        "seed": args.seed, "steps": args.steps, "batch size": args.batch_size, "learning rate": args.lr,
        "data": f"{args.scenes} scenes (seed {args.seed}) rendered at 64 and 256, {args.crop}-pixel crops around edges",
        "wall time (s)": round(time.time() - began), "hardware": hardware(),
        "parameters": sum(p.numel() for p in final.parameters()),
        **{f"new scenes ({args.eval_scenes}, seed {seed})": evaluate(final, args.eval_scenes, seed)
           for seed in (args.seed + 1, args.seed + 2)},
        "ms per 64x64 -> 256x256 (batch 1, eager)": upscale_ms(final),
    }  # fmt: skip
    final.save(args.out)
    write_model_card(args.out, "Depict upscaler (shapes world)",
                     "An ESPCN-style network (convolutions at 64x64, a pixel shuffle, added to bicubic) that draws a "
                     "shapes-world picture 4x larger; 2x is its 4x box-filtered by 2. The app's `upscale` on the "
                     "bundled presets.", facts)  # fmt: skip
    print(f"saved {args.out}: {facts}")
    return facts


if __name__ == "__main__":
    main()
