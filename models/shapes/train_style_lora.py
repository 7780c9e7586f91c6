"""Train a style adapter for the bundled preset: a UNet LoRA and a decoder LoRA, in one diffusers LoRA file.

The UNet LoRA learns the same captions drawn in one of the world's rendering styles, and learns to carry a plain
picture's latents (noised as img2img noises them) to the same scene's styled latents, so style transfer keeps
the content. The decoder LoRA teaches the autoencoder's decoder to draw that style sharply from styled latents
(the shared decoder, trained on plain scenes, smooths stripes, dots and blocks away; an edge loss keeps the
style's hard edges where pixel losses alone would blur them). Saved as
`<out>/<style>.safetensors`: `unet.*` keys in diffusers' format (`load_lora_weights` reads them and ignores the
rest) and `vae.*` keys that `AdapterState` loads into a decoder used only while the adapter is active:

    python -m models.shapes.train_style_lora --style striped --out models/bundled/styles
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..presets import preset_from_folder
from .data import prepare_scenes, to_model_range
from .evaluate import score_style_transfer
from .model_card import hardware
from .styles import PLAIN, STYLES
from .train_text_to_image import NOISE, diffusion_loss, encode_scenes, tokenize
from .training import command_line, optimizer_step, resume_run, set_seed, set_warmup_cosine_lr, training_parser

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1", "conv2", "ff.net.0.proj", "ff.net.2"]
DECODER_PREFIX = "vae"  # the file's decoder LoRA keys start with `vae.`
TRANSFER_TIMESTEPS = (200, 800)  # the noise levels img2img starts from at the strengths people use


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/styles", work_dir="runs/styles", steps=800, batch_size=32,
                             lr=2e-3, data=8000, checkpoint_every=200)
    parser.add_argument("--style", required=True, choices=STYLES)
    parser.add_argument("--base", default="models/bundled/text_to_image", help="the bundled text-to-image folder")
    parser.add_argument("--preset", default="models/bundled",
                        help="the preset whose style-transfer settings the final check uses")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--transfer-share", type=float, default=0.5,
                        help="share of each batch noised from the plain picture and denoised to the styled one")
    parser.add_argument("--decoder-steps", type=int, default=400)
    parser.add_argument("--decoder-rank", type=int, default=8)
    parser.add_argument("--decoder-scenes", type=int, default=3000)
    parser.add_argument("--edge-weight", type=float, default=8.0, help="weight of the decoder's edge loss")
    parser.add_argument("--eval-count", type=int, default=100, help="style transfers judged at the end")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.scenes, args.batch_size, args.checkpoint_every, args.eval_count = 2, 16, 4, 1, 2
        args.decoder_steps, args.decoder_scenes = 2, 8
    return args


def lora_config(rank: int) -> LoraConfig:
    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)


def decoder_lora_config(vae, rank: int) -> LoraConfig:
    """Every convolution of the decoder, and the conv that feeds it."""
    targets = ["post_quant_conv", *(f"decoder.{n}" for n, m in vae.decoder.named_modules() if isinstance(m, torch.nn.Conv2d))]
    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets)


def transfer_loss(unet, text_encoder, noise_scheduler, plain, styled, input_ids, generator) -> torch.Tensor:
    """v-prediction loss for img2img: noise the plain latents, ask for the velocity that leads to the styled ones."""
    noise = torch.randn(plain.shape, generator=generator)
    timesteps = torch.randint(*TRANSFER_TIMESTEPS, (len(plain),), generator=generator)
    noisy = noise_scheduler.add_noise(plain, noise, timesteps)
    alpha = noise_scheduler.alphas_cumprod[timesteps].sqrt().view(-1, 1, 1, 1)
    sigma = (1 - alpha**2).sqrt()
    target = (alpha * noisy - styled) / sigma  # v such that the predicted clean latents are `styled`
    return F.mse_loss(unet(noisy, timesteps, text_encoder(input_ids)[0]).sample, target)


def train_unet_lora(args, base, work_dir: Path) -> None:
    vae, text_encoder, unet = base.vae, base.text_encoder, base.unet
    config = lora_config(args.rank)
    unet.add_adapter(config)
    params = [p for p in unet.parameters() if p.requires_grad]
    styled, captions = encode_scenes(vae, args.scenes, args.seed, work_dir / f"latents-{args.scenes}-{args.seed}.safetensors",
                                     style=args.style)  # fmt: skip
    plain, _ = encode_scenes(vae, args.scenes, args.seed, work_dir / f"plain-{args.scenes}-{args.seed}.safetensors", style=PLAIN)
    input_ids = tokenize(base.tokenizer, captions)
    empty_ids = tokenize(base.tokenizer, [""])
    noise_scheduler = DDPMScheduler(**NOISE)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    checkpoints, _, generator, began, progress = resume_run(
        work_dir, {"unet": unet}, optimizer, args.seed, args.steps, f"style {args.style}"
    )
    unet.train()
    paired = round(args.batch_size * args.transfer_share)
    for step in progress:
        index = torch.randint(0, len(styled), (args.batch_size,), generator=generator)
        ids = input_ids[index].clone()
        ids[torch.rand(args.batch_size, generator=generator) < 0.1] = empty_ids
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=50, total=args.steps)
        loss = diffusion_loss(unet, text_encoder, noise_scheduler, styled[index[paired:]], ids[paired:], 0.0, generator)
        if paired:
            transfer = transfer_loss(unet, text_encoder, noise_scheduler, plain[index[:paired]], styled[index[:paired]],
                                     ids[:paired], generator)  # fmt: skip
            loss = (loss * (args.batch_size - paired) + transfer * paired) / args.batch_size
        optimizer_step(loss, optimizer, {}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, {"unet": unet}, optimizer, {"elapsed": time.time() - began})
    unet.eval()


def edge_error(error: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of the horizontal and vertical pixel differences: pixel losses alone let the decoder
    blur a style's hard edges (block borders, band edges) that its judge looks for."""
    return error.diff(dim=-1).abs().mean() + error.diff(dim=-2).abs().mean()


def train_decoder_lora(args, vae, work_dir: Path) -> LoraConfig:
    """Fit a LoRA on the decoder so that styled latents (slightly noised) decode to the styled render."""
    config = decoder_lora_config(vae, args.decoder_rank)
    vae.add_adapter(config)
    params = [p for p in vae.parameters() if p.requires_grad]
    images, _ = prepare_scenes(args.decoder_scenes, args.seed + 1, args.style)
    with torch.no_grad():
        latents = torch.cat([vae.encode(to_model_range(chunk)).latent_dist.mean for chunk in images.split(500)])
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    checkpoints, _, generator, began, progress = resume_run(
        work_dir, {"vae": vae}, optimizer, args.seed, args.decoder_steps, f"decoder {args.style}"
    )
    vae.train()
    for step in progress:
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        wobble = 0.05 * torch.randn(latents[index].shape, generator=generator)  # the UNet's latents are never exact
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=20, total=args.decoder_steps)
        error = vae.decode(latents[index] + wobble).sample - to_model_range(images[index])
        loss = error.abs().mean() + error.pow(2).mean() + args.edge_weight * edge_error(error)
        optimizer_step(loss, optimizer, {}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.decoder_steps:
            checkpoints.save(step + 1, {"vae": vae}, optimizer, {"elapsed": time.time() - began})
    vae.eval()
    return config


def save_adapter(folder: str, name: str, unet, unet_config: LoraConfig, vae) -> Path:
    """One diffusers LoRA file: the UNet part through `save_lora_weights`, the decoder part beside it (fp16)."""
    # peft's key names as they are: `convert_state_dict_to_diffusers` renames only the attention LoRAs, and
    # `load_lora_weights` then silently drops them when conv LoRAs sit beside them (diffusers 0.42)
    lora = {key: value.half() for key, value in get_peft_model_state_dict(unet).items()}
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=lora, unet_lora_adapter_metadata=unet_config.to_dict(),
                                              weight_name=f"{name}.safetensors")  # fmt: skip
    path = Path(folder, f"{name}.safetensors")
    with safe_open(path, "pt") as stored:
        metadata = stored.metadata()
    decoder = {f"{DECODER_PREFIX}.{key}": value.half() for key, value in get_peft_model_state_dict(vae).items()}
    save_file({**load_file(path), **decoder}, path, metadata=metadata)
    return path


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    base = StableDiffusionPipeline.from_pretrained(args.base, safety_checker=None, requires_safety_checker=False)
    base.set_progress_bar_config(disable=True)
    for module in (base.vae, base.text_encoder, base.unet):
        module.requires_grad_(False)
    work_dir = Path(args.work_dir, args.style)
    began = time.time()
    train_unet_lora(args, base, work_dir)
    unet_seconds = round(time.time() - began)
    decoder_config = train_decoder_lora(args, base.vae, work_dir / "decoder")
    wall = round(time.time() - began)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = save_adapter(args.out, args.style, base.unet, lora_config(args.rank), base.vae)
    img2img = StableDiffusionImg2ImgPipeline(**base.components)
    img2img.set_progress_bar_config(disable=True)
    preset = preset_from_folder(args.preset)
    steps, guidance = preset.steps, preset.default_guidance("style_transfer")

    def transfer(content, caption, seed):
        generator = torch.Generator().manual_seed(seed)
        return img2img(caption, image=content, strength=0.6, num_inference_steps=steps, guidance_scale=guidance,
                       generator=generator).images[0]  # fmt: skip

    scores = score_style_transfer(transfer, args.style, args.eval_count, seed=20_000)
    record = {
        "command": command_line("models.shapes.train_style_lora", argv),
        "seed": args.seed,
        "steps": {"unet": args.steps, "decoder": args.decoder_steps},
        "batch size": args.batch_size,
        "rank": {"unet": args.rank, "decoder": args.decoder_rank},
        "decoder targets": len(decoder_config.target_modules),
        "decoder loss": f"L1 + L2 + {args.edge_weight:g} x edge (L1 of pixel differences)",
        "data": f"{args.scenes} scenes rendered plain and {args.style} (seed {args.seed}); decoder: "
                f"{args.decoder_scenes} {args.style} scenes (seed {args.seed + 1})",
        "wall time (s)": {"unet": unet_seconds, "total": wall},
        "hardware": hardware(),
        f"style transfer judged (strength 0.6, {steps} steps, guidance {guidance:g})": scores,
    }
    Path(args.out, f"{args.style}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"saved {path}: {scores}")


if __name__ == "__main__":
    main()
