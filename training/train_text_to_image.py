"""Train the bundled text-to-image model: a small CLIP text encoder and UNet on the shapes world's latents.

Writes a complete `StableDiffusionPipeline` folder (with the autoencoder trained before):

    python -m training.train_text_to_image --vae runs/autoencoder --out models/bundled/text_to_image
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel

from models.shapes.grammar import vocabulary
from models.shapes.styles import PLAIN

from .common import (
    EMA,
    command_line,
    judged_tiny_run,
    optimizer_step,
    resume_run,
    save_unet_fp16,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .data import prepare_scenes, to_model_range
from .evaluate import score_generator
from .model_card import hardware, write_model_card
from .tokenizer import MAX_LENGTH, build_tokenizer

# Zero terminal SNR (with v-prediction): at the last timestep the model sees pure noise, so it must take the
# layout from the caption. With SD's default schedule a 64px scene survives faintly at t=999, and a first run
# learned to read the position from that trace instead of from the text (position judged at chance, 26%).
NOISE = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
         "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "steps_offset": 1}  # fmt: skip
FINGERPRINT_SCENES = 32  # scenes whose captions and latents name a latents cache


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/text_to_image", work_dir="runs/text_to_image", steps=6000,
                             batch_size=64, lr=1e-3, data=40000)
    parser.add_argument("--vae", default="runs/autoencoder", help="the trained autoencoder folder (its card is kept)")
    parser.add_argument("--channels", default="32,64,128", help="UNet block_out_channels")
    parser.add_argument("--text-width", type=int, default=128)
    parser.add_argument("--cfg-dropout", type=float, default=0.1, help="share of captions replaced by the empty prompt")
    parser.add_argument("--snr-gamma", type=float, default=0.0, help="min-SNR loss weighting (0: plain v-MSE)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-captions", type=int, default=100)
    args = parser.parse_args(argv)
    if args.tiny:
        judged_tiny_run(args, scenes=32)
    return args


def build_text_encoder(vocab_size: int, width: int, tokenizer) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=width,
            intermediate_size=2 * width,
            projection_dim=width,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_LENGTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_unet(channels: tuple[int, ...], cross_attention_dim: int, in_channels: int = 4) -> UNet2DConditionModel:
    """The bundled UNet shape (in_channels=8 for instruct-edit: noisy latents + the input image's latents)."""
    levels = len(channels)
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=16,
    )


@torch.no_grad()
def encode_images(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (n, 3, 64, 64) -> scaled mean latents (n, 4, 16, 16)."""
    latents = torch.cat([vae.encode(to_model_range(chunk)).latent_dist.mean for chunk in images.split(500)])
    return latents * vae.config.scaling_factor


@torch.no_grad()
def encode_scenes(vae: AutoencoderKL, count: int, seed: int, cache_dir: Path, style: str = PLAIN) -> tuple[torch.Tensor, list[str]]:
    """Scaled mean latents (count, 4, 16, 16) and captions of `count` scenes in `style`, cached in `cache_dir`.

    The cache's name carries a fingerprint of a few scenes' captions and latents, so a change to the
    renderer, the grammar or the autoencoder starts a fresh cache instead of reusing stale latents.
    """
    sample_images, sample_scenes = prepare_scenes(FINGERPRINT_SCENES, seed, style)
    digest = hashlib.sha256(encode_images(vae, sample_images).numpy().round(3).tobytes())
    digest.update("\n".join(scene.caption for scene in sample_scenes).encode())
    cache = Path(cache_dir, f"{style}-{count}-{seed}-{digest.hexdigest()[:12]}.safetensors")
    if cache.exists():
        return load_file(cache)["latents"], cache.with_suffix(".txt").read_text().splitlines()
    images, scenes = prepare_scenes(count, seed, style)
    latents = encode_images(vae, images)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": latents.contiguous()}, cache)
    captions = [s.caption for s in scenes]
    cache.with_suffix(".txt").write_text("\n".join(captions))
    return latents, captions


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt").input_ids


def diffusion_loss(unet, text_encoder, noise_scheduler, latents, input_ids, snr_gamma, generator,
                   max_timestep: int | None = None) -> torch.Tensor:  # fmt: skip
    """v-prediction MSE on timesteps below `max_timestep` (default: all), min-SNR weighted when `snr_gamma` > 0
    (that weighting zeroes the pure-noise timestep)."""
    noise = torch.randn(latents.shape, generator=generator)
    highest = max_timestep or noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, highest, (len(latents),), generator=generator)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = noise_scheduler.get_velocity(latents, noise, timesteps)
    prediction = unet(noisy, timesteps, text_encoder(input_ids)[0]).sample
    if snr_gamma <= 0:
        return F.mse_loss(prediction, target)
    alphas = noise_scheduler.alphas_cumprod[timesteps]
    snr = alphas / (1 - alphas)
    weight = snr.clamp(max=snr_gamma) / (snr + 1)
    return (weight * F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))).mean()


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
