"""A faithful offline Hugging Face hub cache: every hub source of every preset, small and random.

Each repo is written as `huggingface_hub` lays out a download: `models--{org}--{name}/refs/main` (the commit hash, no
trailing newline) and `snapshots/{hash}/...` with the real repo's file names, subfolders, fp16 variants, tokenizer
files and class names. Configs are the real ones scaled down (widths, layers), so the weights are tiny and random;
everything the real repos hold beyond what a preset needs (ONNX exports, `.bin` duplicates, single-file checkpoints)
is left out. `build_hub_cache(root)` writes them all; point `HF_HUB_CACHE` at `root`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    ControlNetModel,
    DDIMScheduler,
    DDPMScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import save_file
from transformers import (
    BartConfig,
    BartTokenizer,
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte alphabet (CLIP's and BART's BPE)
from transformers.models.florence2.configuration_florence2 import Florence2VisionConfig

from bench.hub_snapshot import snapshot

WIDTH = 32  # text-encoder width and the UNets' first block (the real ones: 768-1280 and 320)
_NOISE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
          "steps_offset": 1}
# the real SD VAE has four levels (8x downsampling) of (128, 256, 512, 512) channels
_VAE = {"block_out_channels": (8, 8, 8, 8), "norm_num_groups": 4, "layers_per_block": 1, "latent_channels": 4,
        "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4}  # fmt: skip
# SD 1.x/2.x UNets: cross-attention in every block but the innermost; SDXL: none in the outermost
_UNET_SD = {"block_out_channels": (WIDTH, 2 * WIDTH), "layers_per_block": 1, "sample_size": 64, "norm_num_groups": 8,
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D")}  # fmt: skip
UNET_SDXL = {"block_out_channels": (WIDTH, 2 * WIDTH), "layers_per_block": 2, "sample_size": 64, "norm_num_groups": 8,
              "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
              "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "attention_head_dim": (2, 4),
              "use_linear_projection": True, "cross_attention_dim": 2 * WIDTH, "addition_embed_type": "text_time",
              "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 6 * 8 + WIDTH}  # fmt: skip
_TAESD = {"encoder_block_out_channels": (8, 8, 8, 8), "decoder_block_out_channels": (8, 8, 8, 8),
          "num_encoder_blocks": (1, 1, 1, 1), "num_decoder_blocks": (1, 1, 1, 1)}  # real: 64 channels, (1, 3, 3, 3)
IMAGE_ENCODER_DIMS = {"models": 16, "sdxl_models": 24}  # IP-Adapter image encoders' projections (real: 1024, 1280)


def clip_tokenizer(pad_token: str) -> CLIPTokenizer:
    """A CLIP tokenizer on the byte alphabet (no merges): the real files' format, a tiny vocabulary."""
    chars = list(bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate([*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[], pad_token=pad_token, model_max_length=77)


def save_tokenizer(tokenizer, folder: Path) -> None:
    """`vocab.json`, `merges.txt`, `special_tokens_map.json`, `tokenizer_config.json`, as the SD repos ship them."""
    tokenizer.save_pretrained(folder)
    (folder / "tokenizer.json").unlink()  # the SD repos have none: it is built from vocab + merges
    vocab = dict(sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<|startoftext|>",
                                                                "eos_token": "<|endoftext|>",
                                                                "pad_token": tokenizer.pad_token,
                                                                "unk_token": "<|endoftext|>"}))  # fmt: skip


def clip_text(tokenizer, projection: bool = False, width: int = WIDTH):
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=77, projection_dim=width,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def save_pipeline(pipeline, folder: Path, fp16: bool, index: dict | None = None) -> None:
    """A diffusers repo: fp32 weights, the `*.fp16.safetensors` variants when the real repo has them, the real
    repo's `model_index.json` entries, tokenizer folders without `tokenizer.json`."""
    pipeline.save_pretrained(folder)
    if fp16:
        pipeline.to(torch.float16).save_pretrained(folder, variant="fp16")
        pipeline.to(torch.float32)
    for name in ("tokenizer", "tokenizer_2"):
        if getattr(pipeline, name, None) is not None:
            save_tokenizer(getattr(pipeline, name), folder / name)
    spec = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**spec, **(index or {})}, indent=2))


def vae(scaling_factor: float) -> AutoencoderKL:
    return AutoencoderKL(**_VAE, scaling_factor=scaling_factor, sample_size=512)


def sd_turbo(root: Path) -> None:
    """`stabilityai/sd-turbo`: SD 2.1 (OpenCLIP text encoder, linear projections), Euler with trailing timesteps."""
    torch.manual_seed(0)
    tokenizer = clip_tokenizer(pad_token="!")
    pipeline = StableDiffusionPipeline(
        vae=vae(0.18215), text_encoder=clip_text(tokenizer), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**_UNET_SD, attention_head_dim=(2, 4), use_linear_projection=True,
                                  cross_attention_dim=WIDTH),
        scheduler=EulerDiscreteScheduler(**_NOISE, timestep_spacing="trailing", prediction_type="epsilon"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    save_pipeline(pipeline, snapshot(root, "stabilityai/sd-turbo"), fp16=True, index={"image_encoder": [None, None]})


def sdxl_turbo(root: Path) -> StableDiffusionXLPipeline:
    """`stabilityai/sdxl-turbo`: two text encoders (the second with projection), Euler with trailing timesteps."""
    torch.manual_seed(1)
    tokenizer, tokenizer_2 = clip_tokenizer(pad_token="<|endoftext|>"), clip_tokenizer(pad_token="!")
    pipeline = StableDiffusionXLPipeline(
        vae=vae(0.13025), text_encoder=clip_text(tokenizer), text_encoder_2=clip_text(tokenizer_2, projection=True),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=UNet2DConditionModel(**UNET_SDXL),
        scheduler=EulerAncestralDiscreteScheduler(**_NOISE, timestep_spacing="trailing"),
    )  # fmt: skip
    save_pipeline(pipeline, snapshot(root, "stabilityai/sdxl-turbo"), fp16=True)
    return pipeline


def controlnet(root: Path, repo: str, unet: UNet2DConditionModel) -> None:
    """A canny ControlNet repo (`config.json` and the safetensors weights at its root), made from the base UNet as
    ControlNets start; the real SDXL one is diffusers' "small" variant, fewer layers than the UNet's encoder."""
    torch.manual_seed(6)
    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))
    model.save_pretrained(snapshot(root, repo))


def x4_upscaler(root: Path) -> None:
    """`stabilityai/stable-diffusion-x4-upscaler`: a UNet on 4 latent + 3 low-resolution image channels with the noise
    level as a class embedding, a 3-level VAE (4x, scaling factor 0.08333), DDPM noising the low-resolution picture,
    DDIM with v-prediction (the real one: channels (256, 512, 512, 1024), VAE (128, 256, 512))."""
    torch.manual_seed(5)
    tokenizer = clip_tokenizer(pad_token="!")
    betas = {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    pipeline = StableDiffusionUpscalePipeline(
        vae=AutoencoderKL(**{**_VAE, "block_out_channels": (8, 8, 8), "down_block_types": ("DownEncoderBlock2D",) * 3,
                             "up_block_types": ("UpDecoderBlock2D",) * 3}, scaling_factor=0.08333),
        text_encoder=clip_text(tokenizer), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**{**_UNET_SD, "sample_size": 128}, in_channels=7, out_channels=4,
                                  num_class_embeds=1000, attention_head_dim=(2, 4), use_linear_projection=True,
                                  cross_attention_dim=WIDTH),
        low_res_scheduler=DDPMScheduler(**betas), scheduler=DDIMScheduler(**betas, prediction_type="v_prediction"),
        max_noise_level=350,
    )  # fmt: skip
    save_pipeline(pipeline, snapshot(root, "stabilityai/stable-diffusion-x4-upscaler"), fp16=False)


_SD15_INDEX = {"safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
               "feature_extractor": ["transformers", "CLIPImageProcessor"], "requires_safety_checker": True}  # fmt: skip


def sd15(root: Path) -> tuple[StableDiffusionPipeline, CLIPTokenizer]:
    """`stable-diffusion-v1-5/stable-diffusion-v1-5` (PNDM scheduler; its safety checker is never loaded)."""
    torch.manual_seed(2)
    tokenizer = clip_tokenizer(pad_token="<|endoftext|>")
    pipeline = StableDiffusionPipeline(
        vae=vae(0.18215), text_encoder=clip_text(tokenizer), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**_UNET_SD, attention_head_dim=8, cross_attention_dim=WIDTH),
        scheduler=PNDMScheduler(**_NOISE, skip_prk_steps=True),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    save_pipeline(pipeline, snapshot(root, "stable-diffusion-v1-5/stable-diffusion-v1-5"), fp16=True, index=_SD15_INDEX)
    return pipeline, tokenizer


# what LCM-LoRA trains (diffusers' consistency distillation script): attention, feed-forward, resnet and sampler layers
LCM_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                    "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]  # fmt: skip


def kohya_lora(unet: UNet2DConditionModel, rank: int = 4, seed: int = 4) -> dict[str, torch.Tensor]:
    """A random LoRA for `unet` in kohya's key format, as `latent-consistency/lcm-lora-sdv1-5` ships it:
    `lora_unet_<module path with _>.lora_down.weight`, `.lora_up.weight` and `.alpha` per layer."""
    torch.manual_seed(seed)
    tensors = {}
    for name, module in unet.named_modules():
        if not any(name == target or name.endswith(f".{target}") for target in LCM_LORA_TARGETS):
            continue
        key = "lora_unet_" + name.replace(".", "_")
        shape = module.weight.shape  # a convolution's down projection keeps its kernel, its up projection is 1x1
        tensors[f"{key}.lora_down.weight"] = torch.randn(rank, *shape[1:]) * 0.1
        tensors[f"{key}.lora_up.weight"] = torch.randn(shape[0], rank, *[1] * (len(shape) - 2)) * 0.1
        tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    return tensors


def lcm_lora(root: Path, unet: UNet2DConditionModel) -> None:
    """`latent-consistency/lcm-lora-sdv1-5`: one `pytorch_lora_weights.safetensors` in kohya's format, no config."""
    save_file(kohya_lora(unet), snapshot(root, "latent-consistency/lcm-lora-sdv1-5") / "pytorch_lora_weights.safetensors")


def instruct_pix2pix(root: Path, sd15_pipeline: StableDiffusionPipeline) -> None:
    """`timbrooks/instruct-pix2pix`: SD 1.5 components and an 8-channel UNet; no fp16 variant."""
    torch.manual_seed(5)
    parts = sd15_pipeline.components
    unet = UNet2DConditionModel(**_UNET_SD, attention_head_dim=8, cross_attention_dim=WIDTH, in_channels=8)
    pipeline = StableDiffusionInstructPix2PixPipeline(
        vae=vae(0.18215), text_encoder=clip_text(parts["tokenizer"]), tokenizer=parts["tokenizer"], unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(**_NOISE), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    save_pipeline(pipeline, snapshot(root, "timbrooks/instruct-pix2pix"), fp16=False, index=_SD15_INDEX)


def taesd(root: Path) -> None:
    """`madebyollin/taesd` and `madebyollin/taesdxl`: an `AutoencoderTiny` each, no fp16 variant."""
    for seed, repo in enumerate(("madebyollin/taesd", "madebyollin/taesdxl")):
        torch.manual_seed(6 + seed)
        AutoencoderTiny(**_TAESD).save_pretrained(snapshot(root, repo))


def florence2(root: Path) -> None:
    """`florence-community/Florence-2-base`: DaViT vision tower + BART, native in transformers (no remote code)."""
    torch.manual_seed(8)
    folder = snapshot(root, "florence-community/Florence-2-base")
    chars = list(bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *chars, "<mask>"])}
    tokenizer = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    images = CLIPImageProcessor(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64},
                                do_center_crop=False, image_seq_length=5, image_mean=[0.485, 0.456, 0.406],
                                image_std=[0.229, 0.224, 0.225])  # fmt: skip  # real: 768 px, 577 tokens
    processor = Florence2Processor(image_processor=images, tokenizer=tokenizer, post_processor_config={"pure_text": {}})
    vision = Florence2VisionConfig(depths=[1, 1, 1, 1], embed_dim=[16, 16, 32, 32], num_heads=[1, 1, 2, 2],
                                   num_groups=[1, 1, 2, 2], window_size=2, projection_dim=WIDTH,
                                   max_position_embeddings=10, drop_path_rate=0.0)  # fmt: skip
    text = BartConfig(vocab_size=len(tokenizer), d_model=WIDTH, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                      max_position_embeddings=64)  # fmt: skip
    config = Florence2Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                             image_token_id=tokenizer.image_token_id)  # fmt: skip
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    as_converted_by_transformers_4_56(folder, tokenizer)


def as_converted_by_transformers_4_56(folder: Path, tokenizer) -> None:
    """The processor files as the repo holds them (converted with transformers 4.56): the image processor in
    `preprocessor_config.json`, only the processor's own settings in `processor_config.json`, and the tokenizer's
    BPE files and special tokens map beside `tokenizer.json`."""
    spec = json.loads((folder / "processor_config.json").read_text())
    images = spec.pop("image_processor")
    (folder / "preprocessor_config.json").write_text(json.dumps({**images, "processor_class": spec["processor_class"]},
                                                                indent=2))  # fmt: skip
    (folder / "processor_config.json").write_text(json.dumps(spec, indent=2))
    vocab = dict(sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))


def _ip_adapter_weights(unet: UNet2DConditionModel, image_dim: int) -> dict[str, torch.Tensor]:
    """An IP-Adapter file's tensors for `unet`: the image projection and `to_k_ip`/`to_v_ip` per cross-attention
    (numbered 1, 3, 5, ... over the UNet's attention processors, as in h94's files)."""
    cross = unet.config.cross_attention_dim
    tensors = {"image_proj.proj.weight": torch.randn(4 * cross, image_dim) * 0.02,
               "image_proj.proj.bias": torch.zeros(4 * cross),
               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}  # fmt: skip
    index = 1
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            hidden = module.to_k.out_features
            for kind in ("to_k_ip", "to_v_ip"):
                tensors[f"ip_adapter.{index}.{kind}.weight"] = torch.randn(hidden, cross) * 0.02
            index += 2
    return tensors


def ip_adapter(root: Path) -> None:
    """`h94/IP-Adapter`: SD 1.5 weights and image encoder under `models/`, SDXL's under `sdxl_models/`."""
    torch.manual_seed(9)
    folder = snapshot(root, "h94/IP-Adapter")
    unets = {"models": UNet2DConditionModel(**_UNET_SD, attention_head_dim=8, cross_attention_dim=WIDTH),
             "sdxl_models": UNet2DConditionModel(**UNET_SDXL)}  # fmt: skip
    files = {"models": "ip-adapter_sd15.safetensors", "sdxl_models": "ip-adapter_sdxl.safetensors"}
    for sub, unet in unets.items():
        dim = IMAGE_ENCODER_DIMS[sub]
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8, projection_dim=dim, hidden_act="gelu"))  # fmt: skip
        encoder.save_pretrained(folder / sub / "image_encoder")
        (folder / sub / "image_encoder" / "generation_config.json").unlink(missing_ok=True)
        save_file(_ip_adapter_weights(unet, dim), folder / sub / files[sub])


def keep_only(root: Path, wanted: dict[str, set[str]]) -> None:
    """Delete every snapshot file not in `wanted` (repo -> paths): the cache a user's `hf download` lines leave."""
    for repo, paths in wanted.items():
        folder = snapshot(root, repo)
        for path in [p for p in folder.rglob("*") if p.is_file()]:
            if path.relative_to(folder).as_posix() not in paths:
                path.unlink()


def build_hub_cache(root: Path, wanted: dict[str, set[str]] | None = None) -> Path:
    """Every hub source of every preset under `root` (a `HF_HUB_CACHE`), only the `wanted` files when given."""
    root = Path(root)
    sd_turbo(root)
    sdxl = sdxl_turbo(root)
    sd15_pipeline, _ = sd15(root)
    controlnet(root, "lllyasviel/control_v11p_sd15_canny", sd15_pipeline.unet)
    controlnet(root, "diffusers/controlnet-canny-sdxl-1.0-small", sdxl.unet)
    lcm_lora(root, sd15_pipeline.unet)
    instruct_pix2pix(root, sd15_pipeline)
    taesd(root)
    florence2(root)
    ip_adapter(root)
    x4_upscaler(root)
    if wanted is not None:
        keep_only(root, wanted)
    return root
