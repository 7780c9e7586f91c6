"""Tiny random-weight models in the folder layout of a preset (diffusers' `get_dummy_components` style).

They load through the same `from_pretrained` path as any preset; only their weights are random.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderTiny,
    DPMSolverMultistepScheduler,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
)
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from models.shapes import vocabulary
from models.upscaler import PixelShuffleUpscaler
from training.captioning import build_captioner, build_processor
from training.diffusion import NOISE, build_text_encoder, build_unet
from training.tokenizer import build_tokenizer
from training.train_autoencoder import build_autoencoder
from training.train_instruct_edit import save_instruct_folder

WIDTH = 32
LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _components(seed: int) -> dict:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocabulary())
    return {
        "vae": build_autoencoder(),
        "text_encoder": build_text_encoder(len(tokenizer), WIDTH, tokenizer),
        "tokenizer": tokenizer,
        "unet": build_unet((32, 64), WIDTH),
        "scheduler": DPMSolverMultistepScheduler(**NOISE, timestep_spacing="trailing", final_sigmas_type="zero"),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def save_lora(unet, folder: Path, name: str, seed: int, rank: int = 4, text_encoder=None) -> Path:
    """A random LoRA for `unet` (and `text_encoder`, when given) saved in diffusers' format as
    `folder/name.safetensors`."""
    torch.manual_seed(seed)
    layers = {}
    for prefix, module, targets in (("unet", unet, LORA_TARGETS), ("text_encoder", text_encoder, TEXT_LORA_TARGETS)):
        if module is not None:
            config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False)
            module.add_adapter(config, adapter_name=name)
            state = convert_state_dict_to_diffusers(get_peft_model_state_dict(module, adapter_name=name))
            layers |= {f"{prefix}_lora_layers": state, f"{prefix}_lora_adapter_metadata": config.to_dict()}
            delete = getattr(module, "delete_adapters", None) or module.delete_adapter  # diffusers' or transformers'
            delete(name)
    StableDiffusionPipeline.save_lora_weights(folder, weight_name=f"{name}.safetensors", **layers)
    return folder / f"{name}.safetensors"


def build_tiny_preset(folder: Path, adapters=("warm", "cool")) -> Path:
    """A complete preset folder: text-to-image, captioner, instruct-edit (sharing VAE and text encoder), LoRAs,
    an upscaler, and a tiny autoencoder (`vae_tiny/`, found by the speed policy)."""
    folder = Path(folder)
    components = _components(seed=0)
    pipeline = StableDiffusionPipeline(**components)
    pipeline.save_pretrained(folder / "text_to_image")

    torch.manual_seed(1)
    instruct = StableDiffusionInstructPix2PixPipeline(**{**components, "unet": build_unet((32, 64), WIDTH, in_channels=8)})
    save_instruct_folder(instruct, folder / "instruct_edit")  # VAE and text encoder come from the base

    torch.manual_seed(3)  # a TAESD-shaped autoencoder with the base VAE's 4x downsampling, for fast decode
    tiny = dict(encoder_block_out_channels=(16, 16, 16), decoder_block_out_channels=(16, 16, 16),
                num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1))  # fmt: skip
    AutoencoderTiny(**tiny).save_pretrained(folder / "vae_tiny")

    torch.manual_seed(2)
    processor = build_processor()
    build_captioner(processor, WIDTH).save_pretrained(folder / "captioner")
    processor.save_pretrained(folder / "captioner")

    torch.manual_seed(4)
    PixelShuffleUpscaler(scale=4, channels=8, layers=3).save(folder / "upscaler")

    (folder / "adapters").mkdir()
    for index, name in enumerate(adapters):  # the second one adapts the text encoder too
        text_encoder = components["text_encoder"] if index == 1 else None
        save_lora(components["unet"], folder / "adapters", name, seed=10 + index, text_encoder=text_encoder)

    spec = {
        "label": "Tiny random test preset", "text_to_image": "text_to_image", "captioner": "captioner",
        "upscaler": "upscaler",
        "instruct_edit": "instruct_edit", "instruct_shares_components": True, "adapters_dir": "adapters",
        "steps": 2, "guidance": 3.0, "style_guidance": 2.0, "width": 64, "height": 64,
    }  # fmt: skip
    (folder / "preset.json").write_text(json.dumps(spec, indent=1))
    return folder
