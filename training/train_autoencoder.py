"""Train the bundled `AutoencoderKL`: 64x64 RGB <-> 16x16x4 latents of the shapes world.

    python -m training.train_autoencoder --out runs/autoencoder

The text-to-image script then ships it (with this card) as the `vae` of its pipeline folder.
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import AutoencoderKL

from .common import (
    EMA,
    command_line,
    optimizer_step,
    resume_run,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .data import prepare_scenes, tensor_psnr, to_model_range
from .model_card import hardware, write_model_card


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="runs/autoencoder", work_dir="runs/vae", steps=4000, batch_size=32, lr=2e-3,
                             data=20000, tiny={"scenes": 64})
    parser.add_argument("--crop", type=int, default=32, help="train on random crops this big for the first 3/4")
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    return parser.parse_args(argv)


def build_autoencoder() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        mid_block_add_attention=False,
    )


def random_crops(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A crop per image, aligned to the 4-pixel latent grid."""
    cells = (batch.shape[-1] - size) // 4 + 1
    corners = torch.randint(0, cells, (len(batch), 2), generator=generator) * 4
    return torch.stack([img[:, y : y + size, x : x + size] for img, (y, x) in zip(batch, corners.tolist())])


def training_loss(vae: AutoencoderKL, images: torch.Tensor, kl_weight: float) -> torch.Tensor:
    posterior = vae.encode(images).latent_dist
    reconstruction = vae.decode(posterior.sample()).sample
    error = reconstruction - images
    return error.abs().mean() + error.pow(2).mean() + kl_weight * posterior.kl().mean()


@torch.no_grad()
def evaluate(vae: AutoencoderKL, images: torch.Tensor) -> tuple[float, float]:
    """PSNR (dB) of mean-latent reconstructions, and the latents' standard deviation."""
    latents = vae.encode(images).latent_dist.mean
    return tensor_psnr(vae.decode(latents).sample, images), float(latents.std())


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    images, _ = prepare_scenes(args.scenes, seed=args.seed)
    held_out, _ = prepare_scenes(256, seed=args.seed + 1)
    held_out = to_model_range(held_out)
    vae = build_autoencoder()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    ema = EMA(vae, decay=0.999)
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, {"vae": vae, "ema": ema.module}, optimizer, args.seed, args.steps, "autoencoder"
    )
    for step in progress:
        batch = to_model_range(images[torch.randint(0, len(images), (args.batch_size,), generator=generator)])
        if step < args.steps * 3 // 4:
            batch = random_crops(batch, args.crop, generator)
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=100, total=args.steps)
        loss = training_loss(vae, batch, args.kl_weight)
        optimizer_step(loss, optimizer, {ema: vae}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            quality, _ = evaluate(ema.module, held_out[:64])
            progress.write(f"step {step + 1}: held-out PSNR {quality:.2f} dB")
            checkpoints.save(step + 1, {"vae": vae, "ema": ema.module}, optimizer, {"elapsed": time.time() - began})
    final = ema.module
    quality, latent_std = evaluate(final, held_out)
    final.register_to_config(scaling_factor=round(1.0 / latent_std, 5))
    final.save_pretrained(args.out)
    write_model_card(
        args.out,
        "Depict bundled autoencoder (shapes world)",
        "An `AutoencoderKL` mapping 64x64 RGB images of the shapes world to 16x16x4 latents.",
        {
            "command": command_line("training.train_autoencoder", argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch size": args.batch_size,
            "data": f"{args.scenes} rendered scenes (seed {args.seed}); {args.crop}px crops for 3/4 of the steps",
            "wall time (s)": round(time.time() - began),
            "hardware": hardware(),
            "held-out PSNR (dB, 256 scenes)": round(quality, 2),
            "parameters": sum(p.numel() for p in final.parameters()),
        },
    )
    print(f"saved {args.out}: PSNR {quality:.2f} dB, latent std {latent_std:.3f}")


if __name__ == "__main__":
    main()
