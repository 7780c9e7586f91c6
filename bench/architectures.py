"""Real model architectures with random weights, built from their published configs into local folders.

Latency does not depend on weight values, so these time SD-Turbo (SD 2.1 UNet, OpenCLIP-H text encoder, SD VAE)
and SD 1.5 (+ an LCM-LoRA-shaped adapter) without downloading anything. Each folder is a diffusers pipeline
plus a `vae_tiny/` (TAESD-shaped `AutoencoderTiny`) and a `preset.json`, so Depict's engine serves it as a preset
(bf16, compile and the tiny decoder chosen by its speed policy, `models/speed.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from transformers import CLIPTextConfig, CLIPTextModel

from bench.hub_snapshot import snapshot
from models.shapes.grammar import vocabulary
from training.tokenizer import build_tokenizer

# stabilityai/sd-turbo and runwayml/stable-diffusion-v1-5 unet/config.json (the fields that differ from defaults)
_UNET = {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "sample_size": 64,
         "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
         "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3}  # fmt: skip
UNETS = {
    "sd-turbo": {**_UNET, "attention_head_dim": (5, 10, 20, 20), "cross_attention_dim": 1024, "use_linear_projection": True},
    "sd15": {**_UNET, "attention_head_dim": 8, "cross_attention_dim": 768},
}
TEXT_ENCODERS = {  # OpenCLIP ViT-H/14 text tower (SD 2.x) and CLIP ViT-L/14 (SD 1.x)
    "sd-turbo": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 23,
                 "projection_dim": 512, "hidden_act": "gelu"},
    "sd15": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
             "projection_dim": 768, "hidden_act": "quick_gelu"},
}  # fmt: skip
VAE = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4, "sample_size": 512,
       "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
       "scaling_factor": 0.18215}  # fmt: skip
_NOISE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
LCM_LORA_RANK = 64
LCM_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                    "conv1", "conv2", "time_emb_proj"]  # fmt: skip
PRESETS = {  # how each is run: SD-Turbo 1 step without guidance, SD 1.5 + LCM 4 steps
    "sd-turbo": {"steps": 1, "guidance": 0.0},
    "sd15": {"steps": 4, "guidance": 1.0,
             "speed_adapter": "lcm_lora:pytorch_lora_weights.safetensors"},
}


def _text_encoder(name: str, vocab_size: int) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=77, **TEXT_ENCODERS[name]))


@torch.no_grad()
def build(name: str, folder: str | Path) -> Path:
    """Write `name` (`sd-turbo` or `sd15`) with random weights to `folder` (kept if already there)."""
    folder = Path(folder)
    if (folder / "preset.json").is_file():
        return folder
    torch.manual_seed(0)
    tokenizer = build_tokenizer(vocabulary(), max_length=77)
    scheduler = (EulerDiscreteScheduler(**_NOISE, timestep_spacing="trailing") if name == "sd-turbo"
                 else LCMScheduler(**_NOISE))  # fmt: skip
    pipeline = StableDiffusionPipeline(
        vae=AutoencoderKL(**VAE), text_encoder=_text_encoder(name, 49408), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**UNETS[name]), scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.save_pretrained(folder / "text_to_image")
    AutoencoderTiny().save_pretrained(folder / "vae_tiny")
    preset = {"label": f"{name} architecture, random weights", "text_to_image": "text_to_image",
              "width": 512, "height": 512, **PRESETS[name]}  # fmt: skip
    if name == "sd15":
        unet = pipeline.unet
        unet.add_adapter(LoraConfig(r=LCM_LORA_RANK, lora_alpha=LCM_LORA_RANK, target_modules=LCM_LORA_TARGETS,
                                    init_lora_weights="gaussian"))  # fmt: skip
        StableDiffusionPipeline.save_lora_weights(folder / "lcm_lora", unet_lora_layers=get_peft_model_state_dict(unet))
        preset["speed_adapter"] = str(folder / "lcm_lora") + ":pytorch_lora_weights.safetensors"
    (folder / "preset.json").write_text(json.dumps(preset, indent=1))
    return folder


def write_hub_cache_taesd(cache: str | Path) -> Path:
    """A hub cache (`HF_HUB_CACHE`) holding madebyollin/taesd, full size with random weights, as the hub lays it out."""
    AutoencoderTiny().save_pretrained(snapshot(Path(cache), "madebyollin/taesd"))
    return Path(cache)
