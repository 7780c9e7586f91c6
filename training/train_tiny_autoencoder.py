"""Distil a text-to-image folder's `AutoencoderKL` into an `AutoencoderTiny` (TAESD's architecture). Shipped as a
preset's `vae_tiny/` (beside its preset.json, or inside a plain diffusers folder), the app's speed policy decodes
with it on CPU.

As TAESD is trained against SD's autoencoder: the tiny encoder learns the full encoder's scaled latent means, the
tiny decoder learns the full decoder's image from the same latents (posterior samples of rendered shapes-world
scenes, so it also sees latents a little off the means). Latents stay in the diffusion model's scaled space, so the
tiny autoencoder's scaling factor is 1, as TAESD's is. Quality: PSNR against the full decoder's image and the world's
judge on both decodes of held-out scenes.

    python -m training.train_tiny_autoencoder --teacher models/bundled/text_to_image --out runs/vae_tiny
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderTiny
from PIL import Image

from models.shapes import judge

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
from .data import prepare_scenes, tensor_psnr, to_model_range
from .evaluate import tally
from .model_card import hardware, write_model_card


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="runs/vae_tiny", work_dir="runs/tiny-vae", steps=2000, batch_size=32, lr=1e-3,
                             data=8192, tiny={"scenes": 16, "eval_scenes": 4})  # fmt: skip
    parser.add_argument("--teacher", default="models/bundled/text_to_image", help="a diffusers folder with `vae/`")
    parser.add_argument("--width", type=int, default=16, help="the tiny decoder's channels at every level")
    parser.add_argument("--eval-scenes", type=int, default=300)
    return parser.parse_args(argv)


def build_tiny(teacher: AutoencoderKL, width: int) -> AutoencoderTiny:
    """An `AutoencoderTiny` with the teacher's latent channels and downsampling: `width` channels in the decoder,
    twice that in the encoder (which the app's default path does not run)."""
    levels = len(teacher.config.block_out_channels)
    return AutoencoderTiny(
        latent_channels=teacher.config.latent_channels,
        encoder_block_out_channels=(2 * width,) * levels,  # TAESD's blocks keep one width per network
        num_encoder_blocks=(1,) * levels,
        decoder_block_out_channels=(width,) * levels,
        num_decoder_blocks=(2,) + (1,) * (levels - 1),
    )


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(np.ascontiguousarray(p)) for p in pixels]


@torch.no_grad()
def evaluate(tiny: AutoencoderTiny, teacher: AutoencoderKL, images: torch.Tensor, scenes) -> dict:
    """The tiny decoder against the full one on the full encoder's mean latents, and the tiny round trip."""
    scale = teacher.config.scaling_factor
    latents = teacher.encode(images).latent_dist.mean * scale
    full = teacher.decode(latents / scale).sample
    fast = tiny.decode(latents).sample
    round_trip = tiny.decode(tiny.encode(images).latents).sample
    return {
        "decoder PSNR vs full decoder (dB)": round(tensor_psnr(fast, full), 2),
        "full decoder PSNR vs render (dB)": round(tensor_psnr(full, images), 2),
        "tiny round trip PSNR vs render (dB)": round(tensor_psnr(round_trip, images), 2),
        "judged, full decoder": tally(zip(scenes, map(judge, to_pil(full)))),
        "judged, tiny decoder": tally(zip(scenes, map(judge, to_pil(fast)))),
    }


def decode_ms(decoder, latents: torch.Tensor, repeats: int = 30) -> float:
    return median_ms(lambda: decoder(latents), repeats)


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_seed(args.seed)
    torch.set_grad_enabled(True)
    teacher = AutoencoderKL.from_pretrained(Path(args.teacher, "vae"), use_safetensors=True).eval().requires_grad_(False)
    scale = teacher.config.scaling_factor
    images, _ = prepare_scenes(args.scenes, seed=args.seed)
    held_out, held_out_scenes = prepare_scenes(args.eval_scenes, seed=args.seed + 1)
    held_out = to_model_range(held_out)
    tiny = build_tiny(teacher, args.width)
    optimizer = torch.optim.AdamW(tiny.parameters(), lr=args.lr, weight_decay=0.0)
    ema = EMA(tiny, decay=0.995)
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, {"tiny": tiny, "ema": ema.module}, optimizer, args.seed, args.steps, "tiny autoencoder"
    )
    for step in progress:
        batch = to_model_range(images[torch.randint(0, len(images), (args.batch_size,), generator=generator)])
        with torch.no_grad():
            posterior = teacher.encode(batch).latent_dist
            latents = posterior.sample(generator) * scale
            target = teacher.decode(latents / scale).sample
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=100, total=args.steps)
        decoded = tiny.decode(latents).sample
        loss = (decoded - target).abs().mean() + F.mse_loss(tiny.encode(batch).latents, posterior.mean * scale)
        optimizer_step(loss, optimizer, {ema: tiny}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            psnr_now = evaluate(ema.module, teacher, held_out[:64], held_out_scenes[:64])
            progress.write(f"step {step + 1}: {psnr_now['decoder PSNR vs full decoder (dB)']} dB vs the full decoder")
            checkpoints.save(step + 1, {"tiny": tiny, "ema": ema.module}, optimizer, {"elapsed": time.time() - began})
    final = ema.module.eval()
    quality = evaluate(final, teacher, held_out, held_out_scenes)
    side = held_out.shape[-1] // 2 ** (len(teacher.config.block_out_channels) - 1)
    one = torch.randn(1, teacher.config.latent_channels, side, side)
    facts = {
        "command": command_line("training.train_tiny_autoencoder", argv),
        "teacher": f"{args.teacher}/vae", "seed": args.seed, "steps": args.steps, "batch size": args.batch_size,
        "learning rate": args.lr, "data": f"{args.scenes} rendered scenes (seed {args.seed}), posterior samples",
        "wall time (s)": round(time.time() - began), "hardware": hardware(),
        "decoder parameters": sum(p.numel() for p in final.decoder.parameters()),
        "full decoder parameters": sum(p.numel() for p in teacher.decoder.parameters()) +
        sum(p.numel() for p in teacher.post_quant_conv.parameters()),
        f"held-out ({args.eval_scenes} scenes, seed {args.seed + 1})": quality,
        "decode ms, batch 1 (tiny / full)": [decode_ms(final.decode, one), decode_ms(teacher.decode, one / scale)],
    }  # fmt: skip
    final.save_pretrained(args.out)
    write_model_card(args.out, "Depict tiny autoencoder (shapes world)",
                     f"An `AutoencoderTiny` distilled from `{args.teacher}/vae`; the app decodes with it on CPU.",
                     facts)  # fmt: skip
    print(f"saved {args.out}: {facts}")
    return facts


if __name__ == "__main__":
    main()
