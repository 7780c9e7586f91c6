"""Train a style adapter for the bundled preset: a UNet LoRA and a decoder LoRA, in one diffusers LoRA file.

The UNet LoRA learns the same captions drawn in one of the world's rendering styles, and learns to carry a plain
picture's latents (noised as img2img noises them) to the same scene's styled latents, so style transfer keeps
the content. The decoder LoRA teaches the autoencoder's decoder to draw that style sharply from styled latents
(the shared decoder, trained on plain scenes, smooths stripes, dots and blocks away; an edge loss keeps the
style's hard edges where pixel losses alone would blur them). Saved as
`<out>/<style>.safetensors`: `unet.*` keys in diffusers' format (`load_lora_weights` reads them and ignores the
rest) and `vae.*` keys that `AdapterState` loads into a decoder used only while the adapter is active:

    python -m training.train_style_lora --style striped --out models/bundled/styles

`--init-from <file>` continues an adapter (a lower `--rank` cuts its UNet LoRA by SVD first; 0 steps keep a part).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    DDPMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from models.presets import preset_from_folder
from models.shapes.grammar import PALETTE, parse
from models.shapes.styles import PLAIN, STYLES

from .common import (
    command_line,
    optimizer_step,
    resume_run,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .data import prepare_scenes, to_model_range
from .diffusion import NOISE, diffusion_loss, encode_scenes, tokenize
from .evaluate import score_style_transfer
from .model_card import hardware

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1", "conv2", "ff.net.0.proj", "ff.net.2"]
DECODER_PREFIX = "vae"  # the file's decoder LoRA keys start with `vae.`
TRANSFER_TIMESTEPS = (200, 800)  # the noise levels img2img starts from at the strengths people use
REDRAW_STRENGTHS = (0.25, 0.5)  # the decoder's redrawn latents: low enough that the layout does not move


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/styles", work_dir="runs/styles", steps=800, batch_size=32,
                             lr=2e-3, data=8000, checkpoint_every=200,
                             tiny={"scenes": 16, "decoder_scenes": 8},
                             tiny_caps={"steps": 2, "decoder_steps": 2, "eval_count": 2})  # 0 still skips a part
    parser.add_argument("--style", required=True, choices=STYLES)
    parser.add_argument("--base", default="models/bundled/text_to_image", help="the bundled text-to-image folder")
    parser.add_argument("--preset", default="models/bundled",
                        help="the preset whose style-transfer settings the final check uses")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--transfer-share", type=float, default=0.5,
                        help="share of each batch noised from the plain picture and denoised to the styled one")
    parser.add_argument("--hard-weight", type=float, default=1.0,
                        help="outline only: how much more often the UNet sees the outlines it holds worst (see hard_outlines)")
    parser.add_argument("--max-timestep", type=int,
                        help="the styled pictures' denoising loss only below this timestep (default: all 1000), where "
                             "img2img at the strengths people use runs and fine strokes settle")
    parser.add_argument("--decoder-steps", type=int, default=400)
    parser.add_argument("--decoder-rank", type=int, default=8)
    parser.add_argument("--decoder-scenes", type=int, default=3000)
    parser.add_argument("--edge-weight", type=float, default=8.0, help="weight of the decoder's edge loss")
    parser.add_argument("--decoder-redrawn", type=float, default=0.0,
                        help="share of each decoder batch taken from the style UNet's own redraws of the styled renders")
    parser.add_argument("--init-from", type=Path,
                        help="an adapter file to start from: its UNet LoRA (cut to --rank by SVD when lower) and its "
                             "decoder LoRA continue for --steps and --decoder-steps (0 keeps them as they are)")
    parser.add_argument("--eval-count", type=int, default=100, help="style transfers judged at the end")
    args = parser.parse_args(argv)
    if args.hard_weight != 1 and args.style != "outline":
        parser.error("--hard-weight is for the outline style")
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


def hard_outlines(captions: list[str]) -> torch.Tensor:
    """Scenes whose outline the UNet holds worst: small stars and crosses (a hole of a few pixels inside the 2 px
    stroke) and strokes within 150 RGB units of the background (a faint stroke breaks)."""
    def hard(scene) -> bool:
        contrast = math.dist(PALETTE[scene.color], PALETTE[scene.background])
        return (scene.size == "small" and scene.shape in ("star", "cross")) or contrast < 150

    return torch.tensor([hard(parse(caption)) for caption in captions])


def train_unet_lora(args, base, work_dir: Path) -> None:
    """Fit the UNet LoRA (already added to `base.unet`) on styled captions and plain -> styled transfers."""
    vae, text_encoder, unet = base.vae, base.text_encoder, base.unet
    params = [p for p in unet.parameters() if p.requires_grad]
    styled, captions = encode_scenes(vae, args.scenes, args.seed, work_dir, style=args.style)
    plain, _ = encode_scenes(vae, args.scenes, args.seed, work_dir, style=PLAIN)
    input_ids = tokenize(base.tokenizer, captions)
    weights = 1 + (args.hard_weight - 1) * hard_outlines(captions).float() if args.hard_weight != 1 else None
    empty_ids = tokenize(base.tokenizer, [""])
    noise_scheduler = DDPMScheduler(**NOISE)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    checkpoints, _, generator, began, progress = resume_run(
        work_dir, {"unet": unet}, optimizer, args.seed, args.steps, f"style {args.style}"
    )
    unet.train()
    paired = round(args.batch_size * args.transfer_share)
    for step in progress:
        if weights is None:
            index = torch.randint(0, len(styled), (args.batch_size,), generator=generator)
        else:
            index = torch.multinomial(weights, args.batch_size, replacement=True, generator=generator)
        ids = input_ids[index].clone()
        ids[torch.rand(args.batch_size, generator=generator) < 0.1] = empty_ids
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=50, total=args.steps)
        loss = diffusion_loss(unet, text_encoder, noise_scheduler, styled[index[paired:]], ids[paired:], 0.0, generator,
                              args.max_timestep)  # fmt: skip
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


def stored_lora(path: Path, prefix: str, rank: int) -> dict[str, torch.Tensor]:
    """The LoRA under `prefix` in an adapter file, in peft's key names, each update B @ A cut to its `rank`
    largest singular directions where the file's rank is higher (a lossless copy otherwise)."""
    with safe_open(path, "pt") as stored:
        lora = {key[len(prefix) + 1:]: stored.get_tensor(key).float() for key in stored.keys() if key.startswith(f"{prefix}.")}
    if not lora:
        raise ValueError(f"{path} holds no LoRA under `{prefix}.`.")
    cut = {}
    for key_a in (key for key in lora if ".lora_A." in key):
        key_b = key_a.replace(".lora_A.", ".lora_B.")
        down, up = lora[key_a], lora[key_b]
        if len(down) <= rank:
            cut.update({key_a: down, key_b: up})
            continue
        u, s, vh = torch.linalg.svd(up.flatten(1) @ down.flatten(1), full_matrices=False)
        root = s[:rank].sqrt()
        cut[key_b] = (u[:, :rank] * root).reshape(len(up), rank, *up.shape[2:])
        cut[key_a] = (root[:, None] * vh[:rank]).reshape(rank, *down.shape[1:])
    return cut


def load_lora(module, config: LoraConfig, path: Path, prefix: str) -> None:
    """Add a LoRA of `config` to `module`, holding the one stored under `prefix` in an adapter file."""
    module.add_adapter(config)
    incompatible = set_peft_model_state_dict(module, stored_lora(path, prefix, config.r))
    if incompatible.unexpected_keys:
        raise ValueError(f"{path}'s `{prefix}.` LoRA does not fit this model: {incompatible.unexpected_keys[:3]}.")


def provenance(path: Path) -> dict:
    """Where a run started from: the adapter file and, when it has one, the record of the run that made it."""
    record = path.with_suffix(".json")
    return {"file": str(path), **({"its record": json.loads(record.read_text())} if record.is_file() else {})}


def decoder_latents(vae, count: int, seed: int, style: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Mean (unscaled) latents of `count` scenes rendered in `style`, the renders (uint8) and their captions."""
    images, scenes = prepare_scenes(count, seed, style)
    with torch.no_grad():
        latents = torch.cat([vae.encode(to_model_range(chunk)).latent_dist.mean for chunk in images.split(500)])
    return latents, images, [scene.caption for scene in scenes]


def redrawn_latents(base, images: torch.Tensor, captions: list[str], steps: int, guidance: float, seed: int,
                    strengths=REDRAW_STRENGTHS, chunk: int = 100) -> torch.Tensor:  # fmt: skip
    """The style UNet's img2img redraw of styled renders, as unscaled latents. At these strengths the layout stays
    put, so each redraw pairs with its render pixel for pixel while carrying the UNet's own stroke errors."""
    img2img = StableDiffusionImg2ImgPipeline(**base.components)
    img2img.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    redrawn = []
    for start in range(0, len(images), chunk):
        pictures = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images[start : start + chunk]]
        strength = float(torch.empty(1).uniform_(*strengths, generator=generator))
        latents = img2img(captions[start : start + chunk], image=pictures, strength=strength, num_inference_steps=steps,
                          guidance_scale=guidance, generator=generator, output_type="latent").images  # fmt: skip
        redrawn.append(latents / base.vae.config.scaling_factor)
    return torch.cat(redrawn)


def train_decoder_lora(args, base, work_dir: Path, steps: int, guidance: float) -> None:
    """Fit the decoder's LoRA (already added to `base.vae`) so that styled latents decode to the styled render.

    Each batch decodes the styled renders' encoded latents, slightly noised, and with `--decoder-redrawn` a share
    of the style UNet's redraws of them (sampled at the style transfer's `steps` and `guidance`): the decoder then
    learns to draw crisp strokes from the soft ones the UNet makes.
    """
    vae = base.vae
    latents, images, captions = decoder_latents(vae, args.decoder_scenes, args.seed + 1, args.style)
    if args.decoder_redrawn:
        redrawn = redrawn_latents(base, images, captions, steps, guidance, args.seed + 2)
    params = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    checkpoints, _, generator, began, progress = resume_run(
        work_dir, {"vae": vae}, optimizer, args.seed, args.decoder_steps, f"decoder {args.style}"
    )
    vae.train()
    for step in progress:
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        wobble = 0.05 * torch.randn(latents[index].shape, generator=generator)  # the UNet's latents are never exact
        start = latents[index] + wobble
        if args.decoder_redrawn:
            rows = torch.rand(len(index), generator=generator) < args.decoder_redrawn
            start = torch.where(rows.view(-1, 1, 1, 1), redrawn[index], start)
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=20, total=args.decoder_steps)
        error = vae.decode(start).sample - to_model_range(images[index])
        loss = error.abs().mean() + error.pow(2).mean() + args.edge_weight * edge_error(error)
        optimizer_step(loss, optimizer, {}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.decoder_steps:
            checkpoints.save(step + 1, {"vae": vae}, optimizer, {"elapsed": time.time() - began})
    vae.eval()


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
    started_from = provenance(args.init_from) if args.init_from else None  # read before `--out` may overwrite it
    preset = preset_from_folder(args.preset)
    steps, guidance = preset.steps, preset.default_guidance("style_transfer")
    began = time.time()
    decoder_config = decoder_lora_config(base.vae, args.decoder_rank)
    for module, config, prefix in ((base.unet, lora_config(args.rank), "unet"), (base.vae, decoder_config, DECODER_PREFIX)):
        if args.init_from:
            load_lora(module, config, args.init_from, prefix)
        else:
            module.add_adapter(config)
    if args.steps:
        train_unet_lora(args, base, work_dir)
    unet_seconds = round(time.time() - began)
    if args.decoder_steps:
        train_decoder_lora(args, base, work_dir / "decoder", steps, guidance)
    wall = round(time.time() - began)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = save_adapter(args.out, args.style, base.unet, lora_config(args.rank), base.vae)
    img2img = StableDiffusionImg2ImgPipeline(**base.components)
    img2img.set_progress_bar_config(disable=True)

    def transfer(content, caption, seed):
        generator = torch.Generator().manual_seed(seed)
        return img2img(caption, image=content, strength=0.6, num_inference_steps=steps, guidance_scale=guidance,
                       generator=generator).images[0]  # fmt: skip

    scores = score_style_transfer(transfer, args.style, args.eval_count, seed=20_000) if args.eval_count else None
    record = {
        "command": command_line("training.train_style_lora", argv),
        "seed": args.seed,
        "steps": {"unet": args.steps, "decoder": args.decoder_steps},
        "batch size": args.batch_size,
        "rank": {"unet": args.rank, "decoder": args.decoder_rank},
        **({"UNet sampling": f"hard outlines (small stars and crosses, strokes within 150 RGB units of the background) "
                             f"{args.hard_weight:g}x as often"} if args.hard_weight != 1 else {}),
        **({"denoising loss": f"timesteps below {args.max_timestep}"} if args.max_timestep else {}),
        "decoder targets": len(decoder_config.target_modules),
        "decoder loss": f"L1 + L2 + {args.edge_weight:g} x edge (L1 of pixel differences)"
                        + (f"; {args.decoder_redrawn:g} of each batch from the style UNet's redraws (img2img at strength "
                           f"{REDRAW_STRENGTHS[0]:g}-{REDRAW_STRENGTHS[1]:g})" if args.decoder_redrawn else ""),
        "data": f"{args.scenes} scenes rendered plain and {args.style} (seed {args.seed}); decoder: "
                f"{args.decoder_scenes} {args.style} scenes (seed {args.seed + 1})",
        **({"started from": started_from} if started_from else {}),
        "wall time (s)": {"unet": unet_seconds, "total": wall},
        "hardware": hardware(),
        **({f"style transfer judged (strength 0.6, {steps} steps, guidance {guidance:g})": scores} if scores else {}),
    }
    Path(args.out, f"{args.style}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"saved {path}: {scores}")


if __name__ == "__main__":
    main()
