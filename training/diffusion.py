"""The bundled text-to-image family's diffusion parts, shared by its training, distillation and pruning scripts: the
noise schedule, the text encoder and UNet shapes, latents of rendered scenes, the denoising loss, and a smaller UNet
started from a larger one's weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel

from models.shapes.styles import PLAIN

from .data import prepare_scenes, to_model_range
from .tokenizer import MAX_LENGTH

# Zero terminal SNR (with v-prediction): at the last timestep the model sees pure noise, so it must take the
# layout from the caption. With SD's default schedule a 64px scene survives faintly at t=999, and a first run
# learned to read the position from that trace instead of from the text (position judged at chance, 26%).
NOISE = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
         "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "steps_offset": 1}  # fmt: skip
FINGERPRINT_SCENES = 32  # scenes whose captions and latents name a latents cache


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


def teacher_key(key: str, removed_stages: int) -> str:
    """The teacher parameter a student parameter starts from: up block i is the teacher's up block i + removed."""
    if key.startswith("up_blocks."):
        _, index, rest = key.split(".", 2)
        return f"up_blocks.{int(index) + removed_stages}.{rest}"
    return key


def init_from_teacher(student: UNet2DConditionModel, teacher: UNet2DConditionModel, removed_stages: int) -> float:
    """Copy every teacher tensor whose place and shape the student shares; the share of student weights copied."""
    source = teacher.state_dict()
    state = student.state_dict()
    copied = 0
    for key, value in state.items():
        match = source.get(teacher_key(key, removed_stages))
        if match is not None and match.shape == value.shape:
            state[key] = match.clone()
            copied += value.numel()
    student.load_state_dict(state)
    return copied / sum(v.numel() for v in state.values())
