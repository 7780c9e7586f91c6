"""Train a style LoRA for the bundled UNet: the same captions, drawn in one of the world's rendering styles.

Saved in diffusers' LoRA format (`load_lora_weights` reads it) as `<out>/<style>.safetensors`:

    python -m models.shapes.train_style_lora --style striped --out models/bundled/styles
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from .evaluate import score_style_transfer
from .model_card import hardware
from .styles import STYLES
from .train_text_to_image import NOISE, diffusion_loss, encode_scenes, tokenize
from .training import command_line, optimizer_step, resume_run, set_seed, set_warmup_cosine_lr, training_parser

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1", "conv2", "ff.net.0.proj", "ff.net.2"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/styles", work_dir="runs/styles", steps=800, batch_size=32,
                             lr=2e-3, data=8000, checkpoint_every=200)
    parser.add_argument("--style", required=True, choices=STYLES)
    parser.add_argument("--base", default="models/bundled/text_to_image", help="the bundled text-to-image folder")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--eval-count", type=int, default=100, help="style transfers judged at the end")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.scenes, args.batch_size, args.checkpoint_every, args.eval_count = 2, 16, 4, 1, 2
    return args


def lora_config(rank: int) -> LoraConfig:
    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    base = StableDiffusionPipeline.from_pretrained(args.base, safety_checker=None, requires_safety_checker=False)
    base.set_progress_bar_config(disable=True)
    vae, text_encoder, unet = base.vae.requires_grad_(False), base.text_encoder.requires_grad_(False), base.unet
    unet.requires_grad_(False)
    config = lora_config(args.rank)
    unet.add_adapter(config)
    params = [p for p in unet.parameters() if p.requires_grad]
    work_dir = Path(args.work_dir, args.style)
    cache = work_dir / f"latents-{args.scenes}-{args.seed}.safetensors"
    latents, captions = encode_scenes(vae, args.scenes, args.seed, cache, style=args.style)
    input_ids = tokenize(base.tokenizer, captions)
    empty_ids = tokenize(base.tokenizer, [""])
    noise_scheduler = DDPMScheduler(**NOISE)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    checkpoints, state, generator, began, progress = resume_run(
        work_dir, {"unet": unet}, optimizer, args.seed, args.steps, f"style {args.style}"
    )
    unet.train()
    for step in progress:
        index = torch.randint(0, len(latents), (args.batch_size,), generator=generator)
        ids = input_ids[index].clone()
        ids[torch.rand(args.batch_size, generator=generator) < 0.1] = empty_ids
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=50, total=args.steps)
        loss = diffusion_loss(unet, text_encoder, noise_scheduler, latents[index], ids, 0.0, generator)
        optimizer_step(loss, optimizer, {}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, {"unet": unet}, optimizer, {"elapsed": time.time() - began})
    unet.eval()
    wall = round(time.time() - began)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    # peft's key names as they are: `convert_state_dict_to_diffusers` renames only the attention LoRAs, and
    # `load_lora_weights` then silently drops them when conv LoRAs sit beside them (diffusers 0.42)
    lora = {key: value.half() for key, value in get_peft_model_state_dict(unet).items()}
    StableDiffusionPipeline.save_lora_weights(
        args.out,
        unet_lora_layers=lora,
        unet_lora_adapter_metadata=config.to_dict(),
        weight_name=f"{args.style}.safetensors",
    )
    img2img = StableDiffusionImg2ImgPipeline(**base.components)
    img2img.set_progress_bar_config(disable=True)

    def transfer(content, caption, seed):
        generator = torch.Generator().manual_seed(seed)
        return img2img(caption, image=content, strength=0.6, num_inference_steps=8, guidance_scale=4.0,
                       generator=generator).images[0]  # fmt: skip

    scores = score_style_transfer(transfer, args.style, args.eval_count, seed=20_000)
    record = {
        "command": command_line("models.shapes.train_style_lora", argv),
        "seed": args.seed,
        "steps": args.steps,
        "batch size": args.batch_size,
        "rank": args.rank,
        "data": f"{args.scenes} scenes rendered {args.style} (seed {args.seed})",
        "wall time (s)": wall,
        "hardware": hardware(),
        "style transfer judged (strength 0.6, 8 steps, guidance 4)": scores,
    }
    Path(args.out, f"{args.style}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"saved {args.out}/{args.style}.safetensors: {scores}")


if __name__ == "__main__":
    main()
