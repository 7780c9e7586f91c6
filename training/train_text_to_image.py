"""Train the bundled text-to-image model: a small CLIP text encoder and UNet on the shapes world's latents.

Writes a complete `StableDiffusionPipeline` folder (with the autoencoder trained before):

    python -m training.train_text_to_image --vae runs/autoencoder --out models/bundled/text_to_image
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

from models.shapes.grammar import vocabulary

from .common import (
    EMA,
    JUDGED_TINY,
    command_line,
    optimizer_step,
    resume_run,
    save_unet_fp16,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .diffusion import NOISE, build_text_encoder, build_unet, diffusion_loss, encode_scenes, tokenize
from .evaluate import score_generator
from .model_card import hardware, write_model_card
from .tokenizer import build_tokenizer


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/text_to_image", work_dir="runs/text_to_image", steps=6000,
                             batch_size=64, lr=1e-3, data=40000, tiny={"scenes": 32, **JUDGED_TINY})
    parser.add_argument("--vae", default="runs/autoencoder", help="the trained autoencoder folder (its card is kept)")
    parser.add_argument("--channels", default="32,64,128", help="UNet block_out_channels")
    parser.add_argument("--text-width", type=int, default=128)
    parser.add_argument("--cfg-dropout", type=float, default=0.1, help="share of captions replaced by the empty prompt")
    parser.add_argument("--snr-gamma", type=float, default=0.0, help="min-SNR loss weighting (0: plain v-MSE)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-captions", type=int, default=100)
    return parser.parse_args(argv)


def make_pipeline(vae, text_encoder, tokenizer, unet) -> StableDiffusionPipeline:
    scheduler = DPMSolverMultistepScheduler(**NOISE, timestep_spacing="trailing", final_sigmas_type="zero")
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def judge_pipeline(pipeline, count: int, seed: int, steps: int = 8, guidance: float = 4.0) -> dict[str, float]:
    """Share of `count` random captions whose image the judge reads right, per attribute and for all five."""

    def generate(captions: list[str], chunk_seed: int):
        generator = torch.Generator().manual_seed(chunk_seed)
        return pipeline(captions, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                        generator=generator).images  # fmt: skip

    return score_generator(generate, count, seed)


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    vae = AutoencoderKL.from_pretrained(args.vae).eval().requires_grad_(False)
    tokenizer = build_tokenizer(vocabulary())
    text_encoder = build_text_encoder(len(tokenizer), args.text_width, tokenizer)
    unet = build_unet(tuple(int(c) for c in args.channels.split(",")), args.text_width)
    noise_scheduler = DDPMScheduler(**NOISE)
    latents, captions = encode_scenes(vae, args.scenes, args.seed, args.work_dir)
    input_ids = tokenize(tokenizer, captions)
    empty_ids = tokenize(tokenizer, [""])
    optimizer = torch.optim.AdamW([*unet.parameters(), *text_encoder.parameters()], lr=args.lr, weight_decay=0.01)
    ema_unet, ema_text = EMA(unet, 0.999), EMA(text_encoder, 0.999)
    modules = {"unet": unet, "text_encoder": text_encoder, "ema_unet": ema_unet.module, "ema_text_encoder": ema_text.module}
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, modules, optimizer, args.seed, args.steps, "text-to-image"
    )
    history = state.get("history", [])
    for step in progress:
        index = torch.randint(0, len(latents), (args.batch_size,), generator=generator)
        ids = input_ids[index].clone()
        ids[torch.rand(args.batch_size, generator=generator) < args.cfg_dropout] = empty_ids
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=500, total=args.steps)
        loss = diffusion_loss(unet, text_encoder, noise_scheduler, latents[index], ids, args.snr_gamma, generator)
        optimizer_step(loss, optimizer, {ema_unet: unet, ema_text: text_encoder}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            scores = judge_pipeline(make_pipeline(vae, ema_text.module, tokenizer, ema_unet.module), args.eval_captions, seed=10_000)
            history.append({"step": step + 1, **scores})
            progress.write(f"step {step + 1}: judged {scores}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            extra = {"elapsed": time.time() - began, "history": history}
            checkpoints.save(step + 1, modules, optimizer, extra)
    pipeline = make_pipeline(vae, ema_text.module, tokenizer, ema_unet.module)
    pipeline.save_pretrained(args.out)
    save_unet_fp16(ema_unet.module, args.out)
    if Path(args.vae, "README.md").is_file():
        shutil.copy(Path(args.vae, "README.md"), Path(args.out, "vae", "README.md"))
    final = history[-1] if history else {}
    write_model_card(
        args.out,
        "Depict bundled text-to-image model (shapes world)",
        "A `StableDiffusionPipeline` (small CLIP text encoder, UNet on 16x16x4 latents, v-prediction, "
        "DPM-Solver++ with trailing timesteps) trained with classifier-free-guidance dropout on the shapes world.",
        {
            "command": command_line("training.train_text_to_image", argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch size": args.batch_size,
            "learning rate": args.lr,
            "data": f"{args.scenes} rendered scenes (seed {args.seed}), captions dropped {args.cfg_dropout:.0%} of the time",
            "wall time (s)": round(time.time() - began),
            "hardware": hardware(),
            "judged (last eval, 8 steps, guidance 4)": final,
            "UNet parameters": sum(p.numel() for p in unet.parameters()),
            "text encoder parameters": sum(p.numel() for p in text_encoder.parameters()),
        },
    )
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
