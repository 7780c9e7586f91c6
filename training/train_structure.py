"""Train the bundled structure model: a ControlNet for the bundled text-to-image UNet (diffusers'
`ControlNetModel.from_unet`: a copy of its encoder, zero-initialised outputs), conditioned on a render's Canny edge map
(`models.structure.edge_map`, the same function the app runs).

Examples: a scene's render (as latents), its caption, and an edge map of the same layout. In a share of them
(`--reshaped`) the edge map is that of another shape drawn at the same place and size (its colours redrawn too): an
edited description's shape must win over the original's outline, as colour and background do (edges carry none).
The bundled UNet, autoencoder and text encoder stay frozen; captions are dropped 10% of the time for guidance. Judged
at the end as the app uses it: new renders, the description with one attribute (colour, background or shape)
changed, regenerated from fresh noise under the original's edges at the preset's steps and guidance.

    flock /tmp/depict-torch.lock nice -n 10 python -m training.train_structure --out models/bundled/structure
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, DDPMScheduler, StableDiffusionControlNetPipeline, StableDiffusionPipeline

from models.presets import preset_from_folder
from models.shapes.grammar import COLORS, SHAPES, random_attributes
from models.shapes.render import render_attributes
from models.structure import edge_map

from .common import (
    EMA,
    command_line,
    optimizer_step,
    resume_run,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .diffusion import NOISE, encode_images, tokenize
from .evaluate import score_structure
from .model_card import hardware, write_model_card

CONDITIONING_CHANNELS = (16, 32, 64)  # two stride-2 stages: 64x64 edge maps -> the UNet's 16x16 latents


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/structure", work_dir="runs/structure", steps=2000,
                             batch_size=32, lr=3e-4, data=8000, tiny={"scenes": 16, "eval_count": 2})  # fmt: skip
    parser.add_argument("--base", default="models/bundled/text_to_image")
    parser.add_argument("--preset", default="models/bundled", help="whose steps and guidance the final check uses")
    parser.add_argument("--reshaped", type=float, default=0.3,
                        help="share of examples whose edges are another shape's at the same place and size")
    parser.add_argument("--eval-count", type=int, default=100, help="edited regenerations judged at the end")
    return parser.parse_args(argv)


def reshaped(scene, rng: random.Random):
    """`scene` with another shape, and half the time other colours: the same layout, other edges."""
    other = scene.replace(shape=rng.choice([s for s in SHAPES if s != scene.shape]))
    if rng.random() < 0.5:
        color, background = rng.sample(COLORS, 2)
        other = other.replace(color=color, background=background)
    return other


def edges_tensor(images) -> torch.Tensor:
    """Edge maps (n, 3, 64, 64) in [0, 1], as the ControlNet pipeline hands them to the model."""
    pixels = np.stack([np.asarray(image) for image in images])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def prepare_examples(vae, tokenizer, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Latents, caption ids, the scene's own edges and another shape's edges at the same layout, for `count` scenes."""
    rng = random.Random(seed)
    renders, own, other, captions = [], [], [], []
    for _ in range(count):
        scene, image_seed = random_attributes(rng), rng.randrange(2**31)
        image = render_attributes(scene, image_seed)
        renders.append(np.asarray(image))
        own.append(edge_map(image))
        other.append(edge_map(render_attributes(reshaped(scene, rng), image_seed)))
        captions.append(scene.caption)
    images = torch.from_numpy(np.stack(renders)).permute(0, 3, 1, 2).contiguous()
    return {"latents": encode_images(vae, images), "ids": tokenize(tokenizer, captions),
            "own": edges_tensor(own), "other": edges_tensor(other)}  # fmt: skip


def structure_loss(controlnet, unet, hidden, noise_scheduler, latents, edges, generator) -> torch.Tensor:
    """v-prediction MSE of the frozen UNet steered by the ControlNet's residuals."""
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), generator=generator)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    down, mid = controlnet(noisy, timesteps, hidden, controlnet_cond=edges, return_dict=False)
    prediction = unet(noisy, timesteps, hidden, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid).sample  # fmt: skip
    return F.mse_loss(prediction, noise_scheduler.get_velocity(latents, noise, timesteps))


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_seed(args.seed)
    base = StableDiffusionPipeline.from_pretrained(args.base, safety_checker=None, requires_safety_checker=False)
    for module in (base.vae, base.text_encoder, base.unet):
        module.requires_grad_(False).eval()
    examples = prepare_examples(base.vae, base.tokenizer, args.scenes, args.seed)
    empty_ids = tokenize(base.tokenizer, [""])
    controlnet = ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=args.lr, weight_decay=0.0)
    ema = EMA(controlnet, 0.999)
    modules = {"controlnet": controlnet, "ema_controlnet": ema.module}
    checkpoints, _, generator, began, progress = resume_run(args.work_dir, modules, optimizer, args.seed, args.steps,
                                                            "structure")  # fmt: skip
    noise_scheduler = DDPMScheduler(**NOISE)
    controlnet.train()
    for step in progress:
        index = torch.randint(0, args.scenes, (args.batch_size,), generator=generator)
        ids = examples["ids"][index].clone()
        ids[torch.rand(args.batch_size, generator=generator) < 0.1] = empty_ids
        swap = (torch.rand(args.batch_size, generator=generator) < args.reshaped).view(-1, 1, 1, 1)
        edges = torch.where(swap, examples["other"][index], examples["own"][index])
        with torch.no_grad():
            hidden = base.text_encoder(ids)[0]
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=100, total=args.steps)
        loss = structure_loss(controlnet, base.unet, hidden, noise_scheduler, examples["latents"][index], edges,
                              generator)  # fmt: skip
        optimizer_step(loss, optimizer, {ema: controlnet}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, modules, optimizer, {"elapsed": time.time() - began})
    wall = round(time.time() - began)
    final = ema.module.eval()
    final.save_pretrained(args.out)
    preset = preset_from_folder(args.preset)
    pipeline = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, controlnet=final,
        scheduler=base.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)

    def regenerate(original, description, seed):
        generator = torch.Generator().manual_seed(seed)
        return pipeline(description, image=edge_map(original), num_inference_steps=preset.steps,
                        guidance_scale=preset.guidance, generator=generator).images[0]  # fmt: skip

    facts = {
        "command": command_line("training.train_structure", argv),
        "seed": args.seed, "steps": args.steps, "batch size": args.batch_size, "learning rate": args.lr,
        "data": f"{args.scenes} renders (seed {args.seed}); {args.reshaped:.0%} of examples with another shape's "
                f"edges at the same layout; captions dropped 10%",
        "initialised from": f"{args.base} (UNet encoder, by ControlNetModel.from_unet)",
        "wall time (s)": wall, "hardware": hardware(),
        "parameters": sum(p.numel() for p in final.parameters()),
        **{f"edited regenerations ({args.eval_count} new renders, seed {seed}, {preset.steps} steps, guidance "
           f"{preset.guidance})": score_structure(regenerate, args.eval_count, seed)
           for seed in (40_000, 50_000)},
    }  # fmt: skip
    write_model_card(args.out, "Depict structure model (shapes world ControlNet)",
                     "A ControlNet for the bundled text-to-image UNet, conditioned on the Canny edge map of a picture "
                     "(`models.structure.edge_map`): regenerate keeps the original's outline and place while the "
                     "description's colour, background or shape apply in full. The app's `structure` on the "
                     "bundled preset.", facts)  # fmt: skip
    print(f"saved {args.out}: {facts}")
    return facts


if __name__ == "__main__":
    main()
