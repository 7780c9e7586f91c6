"""Teach the bundled autoencoder's decoder to draw the rendering styles; the encoder stays frozen.

The first autoencoder saw only plain scenes, so its decoder smooths stripes, dots, thin outlines and pixel
blocks away (its reconstructions of styled renders are judged in style 0-78% of the time). With the encoder
frozen, every latent the text-to-image model and the style LoRAs were trained on keeps its meaning; only the
pictures decoded from them get sharper. Writes the fine-tuned autoencoder over `--out`:

    python -m models.shapes.train_style_decoder  # runs/autoencoder -> models/bundled/text_to_image/vae
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import AutoencoderKL

from .data import prepare_scenes, to_model_range
from .model_card import hardware, write_model_card
from .styles import PLAIN, STYLES, judge_style
from .train_autoencoder import evaluate
from .training import EMA, command_line, optimizer_step, resume_run, set_seed, set_warmup_cosine_lr, training_parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/text_to_image/vae", work_dir="runs/style_decoder",
                             steps=1500, batch_size=32, lr=5e-4, data=4000)  # fmt: skip
    parser.add_argument("--vae", default="runs/autoencoder", help="the autoencoder to start from (train_autoencoder's)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.scenes, args.batch_size, args.checkpoint_every = 2, 10, 4, 1
    return args


def styled_scenes(count: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """`count` scenes in each of plain and the styles (uint8), with each image's style."""
    images, styles = [], []
    for offset, style in enumerate((PLAIN, *STYLES)):
        batch, _ = prepare_scenes(count, seed + offset, style)
        images.append(batch)
        styles += [style] * count
    return torch.cat(images), styles


@torch.no_grad()
def style_kept(vae: AutoencoderKL, images: torch.Tensor, styles: list[str]) -> dict[str, float]:
    """Per style: share of reconstructions (mean latents) still judged in their style."""
    from PIL import Image

    decoded = vae.decode(vae.encode(to_model_range(images)).latent_dist.mean).sample
    pixels = ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    verdicts = [judge_style(Image.fromarray(p)) == s for p, s in zip(pixels, styles)]
    return {s: round(sum(v for v, t in zip(verdicts, styles) if t == s) / styles.count(s), 3) for s in dict.fromkeys(styles)}


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    vae = AutoencoderKL.from_pretrained(args.vae)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    images, _ = styled_scenes(args.scenes, args.seed)
    held_out, held_styles = styled_scenes(max(2, args.scenes // 20), args.seed + 100)
    before = style_kept(vae, held_out, held_styles)
    params = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema = EMA(vae, decay=0.995)
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, {"vae": vae, "ema": ema.module}, optimizer, args.seed, args.steps, "style decoder"
    )
    for step in progress:
        batch = to_model_range(images[torch.randint(0, len(images), (args.batch_size,), generator=generator)])
        with torch.no_grad():
            latents = vae.encode(batch).latent_dist.mean
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=50, total=args.steps)
        error = vae.decode(latents).sample - batch
        loss = error.abs().mean() + error.pow(2).mean()
        optimizer_step(loss, optimizer, {ema: vae}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, {"vae": vae, "ema": ema.module}, optimizer, {"elapsed": time.time() - began})
    final = ema.module
    after = style_kept(final, held_out, held_styles)
    plain = held_out[[i for i, s in enumerate(held_styles) if s == PLAIN]]
    quality, _ = evaluate(final, to_model_range(plain))
    final.save_pretrained(args.out)
    write_model_card(
        args.out,
        "Depict bundled autoencoder (shapes world)",
        "An `AutoencoderKL` mapping 64x64 RGB images of the shapes world to 16x16x4 latents: trained on plain "
        "scenes (`python -m models.shapes.train_autoencoder`, 4000 steps, 36.7 dB), then its decoder fine-tuned on "
        "plain and styled scenes with the encoder frozen (this card).",
        {
            "command": command_line("models.shapes.train_style_decoder", argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch size": args.batch_size,
            "data": f"{args.scenes} scenes per style (plain, {', '.join(STYLES)}), seed {args.seed}",
            "wall time (s)": round(time.time() - began),
            "hardware": hardware(),
            "reconstructions judged in their style, before": before,
            "reconstructions judged in their style, after": after,
            "held-out PSNR on plain scenes (dB)": round(quality, 2),
        },
    )
    print(f"saved {args.out}: style kept {before} -> {after}, plain PSNR {quality:.2f} dB")


if __name__ == "__main__":
    main()
