"""Train the bundled instruction-edit model: an 8-channel UNet (InstructPix2Pix) on (before, edit, after) scenes.

It starts from the bundled text-to-image UNet (the extra input channels start at zero) and shares that
model's VAE and text encoder, so the folder holds only `unet/`, `scheduler/` and `model_index.json`:

    python -m training.train_instruct_edit --base models/bundled/text_to_image --out models/bundled/instruct_edit
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    DDPMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
)
from safetensors.torch import load_file, save_file
from transformers import BlipForConditionalGeneration, BlipProcessor

from models.shapes.grammar import random_attributes
from models.shapes.instructions import edited_caption, random_edit
from models.shapes.render import render_attributes

from .captioning import caption_batch
from .common import (
    EMA,
    command_line,
    optimizer_step,
    resume_run,
    save_unet_fp16,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .diffusion import NOISE, build_unet, encode_images, tokenize
from .evaluate import score_instruct_edit
from .model_card import hardware, write_model_card

SHARED = ("vae", "text_encoder", "tokenizer")


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/instruct_edit", work_dir="runs/instruct_edit", steps=2000,
                             batch_size=64, lr=5e-4, data=20000, tiny={"scenes": 16, "eval_count": 2})
    parser.add_argument("--base", default="models/bundled/text_to_image")
    parser.add_argument("--captioner", default="models/bundled/captioner", help="describes pictures in the final eval")
    parser.add_argument("--drop", type=float, default=0.05, help="share of samples without text, image, or both")
    parser.add_argument("--eval-count", type=int, default=100)
    return parser.parse_args(argv)


def instruct_unet(base_unet) -> torch.nn.Module:
    """The base UNet's weights in an 8-channel UNet; the image channels of `conv_in` start at zero."""
    config = base_unet.config
    unet = build_unet(tuple(config.block_out_channels), config.cross_attention_dim, in_channels=8)
    state = base_unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, torch.zeros_like(weight)], dim=1)
    unet.load_state_dict(state)
    return unet


@torch.no_grad()
def edit_pairs(vae, count: int, seed: int, cache: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(before latents unscaled, after latents scaled, edited captions) of `count` random edits, cached."""
    if cache.exists():
        stored = load_file(cache)
        return stored["before"], stored["after"], cache.with_suffix(".txt").read_text().splitlines()
    rng = random.Random(seed)
    before, after, prompts = [], [], []
    for _ in range(count):
        scene = random_attributes(rng)
        _, edit = random_edit(scene, rng)
        image_seed = rng.randrange(2**31)
        before.append(np.asarray(render_attributes(scene, image_seed)))
        after.append(np.asarray(render_attributes(edit.apply(scene), image_seed)))
        prompts.append(edit.apply(scene).caption)
    images = [torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).contiguous() for x in (before, after)]
    before_latents = encode_images(vae, images[0]) / vae.config.scaling_factor  # the pipeline's image latents
    after_latents = encode_images(vae, images[1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"before": before_latents.contiguous(), "after": after_latents.contiguous()}, cache)
    cache.with_suffix(".txt").write_text("\n".join(prompts))
    return before_latents, after_latents, prompts


def edit_loss(unet, text_encoder, noise_scheduler, before, after, input_ids, generator) -> torch.Tensor:
    noise = torch.randn(after.shape, generator=generator)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(after),), generator=generator)
    noisy = noise_scheduler.add_noise(after, noise, timesteps)
    target = noise_scheduler.get_velocity(after, noise, timesteps)
    prediction = unet(torch.cat([noisy, before], dim=1), timesteps, text_encoder(input_ids)[0]).sample
    return F.mse_loss(prediction, target)


def save_instruct_folder(pipeline: StableDiffusionInstructPix2PixPipeline, out: str) -> None:
    """Save without the components shared with the text-to-image folder."""
    pipeline.save_pretrained(out)
    for name in SHARED:
        shutil.rmtree(Path(out, name), ignore_errors=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    base = StableDiffusionPipeline.from_pretrained(args.base, safety_checker=None, requires_safety_checker=False)
    vae, text_encoder = base.vae.requires_grad_(False), base.text_encoder.requires_grad_(False)
    unet = instruct_unet(base.unet)
    before, after, prompts = edit_pairs(vae, args.scenes, args.seed, Path(args.work_dir, f"pairs-{args.scenes}-{args.seed}.safetensors"))
    input_ids = tokenize(base.tokenizer, prompts)
    empty_ids = tokenize(base.tokenizer, [""])
    noise_scheduler = DDPMScheduler(**NOISE)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    ema = EMA(unet, 0.999)
    modules = {"unet": unet, "ema_unet": ema.module}
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, modules, optimizer, args.seed, args.steps, "instruct-edit"
    )
    for step in progress:
        index = torch.randint(0, len(after), (args.batch_size,), generator=generator)
        ids, image = input_ids[index].clone(), before[index].clone()
        # InstructPix2Pix's two guidance scales need the model without text, without image, and without both
        draw = torch.rand(args.batch_size, generator=generator)
        ids[draw < 2 * args.drop] = empty_ids
        image[(draw >= args.drop) & (draw < 3 * args.drop)] = 0
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=200, total=args.steps)
        loss = edit_loss(unet, text_encoder, noise_scheduler, image, after[index], ids, generator)
        optimizer_step(loss, optimizer, {ema: unet}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, modules, optimizer, {"elapsed": time.time() - began})
    wall = round(time.time() - began)
    pipeline = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=base.tokenizer, unet=ema.module, scheduler=base.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    save_instruct_folder(pipeline, args.out)
    save_unet_fp16(ema.module, args.out)

    captioner = BlipForConditionalGeneration.from_pretrained(args.captioner).eval()
    processor = BlipProcessor.from_pretrained(args.captioner)

    def edit(image, instruction, seed):  # as the engine does it: describe, apply the instruction, draw
        prompt = edited_caption(caption_batch(captioner, processor, [image])[0], instruction)
        generator = torch.Generator().manual_seed(seed)
        return pipeline(prompt, image=image, num_inference_steps=12, guidance_scale=4.0, image_guidance_scale=1.5,
                        generator=generator).images[0]  # fmt: skip

    scores = score_instruct_edit(edit, args.eval_count, seed=30_000)
    write_model_card(
        args.out,
        "Depict bundled instruction-edit model (shapes world)",
        "A `StableDiffusionInstructPix2PixPipeline` UNet (8 input channels: noisy latents + the input image's "
        "latents) that shares the bundled text-to-image VAE and text encoder. It is conditioned on the edited "
        "caption: the engine describes the picture with the bundled captioner and applies the instruction "
        "(`make the star green`) to that description (`models/shapes/instructions.py`).",
        {
            "command": command_line("training.train_instruct_edit", argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch size": args.batch_size,
            "data": f"{args.scenes} (before, edit, after) render pairs (seed {args.seed}), "
            f"text/image/both dropped {args.drop:.0%} each",
            "initialised from": args.base,
            "wall time (s)": wall,
            "hardware": hardware(),
            "judged (captioner + edit, 12 steps, guidance 4, image guidance 1.5)": scores,
            "UNet parameters": sum(p.numel() for p in unet.parameters()),
        },
    )
    print(f"saved {args.out}: {scores}")


if __name__ == "__main__":
    main()
