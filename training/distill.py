"""Step and guidance distillation: a student UNet that draws in one or two passes, with no unconditional pass,
what the teacher draws in 12 DPM-Solver++ steps with classifier-free guidance.

Recipe: knowledge distillation of the teacher's sampler (Luhman & Luhman 2021, "Knowledge distillation in
iterative generative models for improved sampling speed"), with guidance folded in at a fixed scale (Meng et al.
2023, stage one). The teacher's deterministic guided solve maps a noise latent and a caption to an image; the
student learns that map in one pass at t = T (zero terminal SNR: the input is pure noise) and, for a second
`LCMScheduler` step, to recover the teacher's image re-noised at lower timesteps. On a 16x16 latent the exact
12-step solve costs about 2 ms a sample, so exact targets are cheaper than consistency distillation's bootstrapped
EMA targets, which need many more iterations to converge (LCM: thousands at batch 512 on a GPU).

Any diffusers text-to-image folder serves as the teacher; data is the shapes world's captions or a text file of
captions (one a line). In the shapes world the teacher's samples the judge reads wrong are dropped, so the
student does not learn the teacher's mistakes.

    python -m training.distill --teacher models/bundled/text_to_image --out runs/distilled
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from models.shapes import judge, parse, random_attributes

from .common import (
    EMA,
    JUDGED_TINY,
    command_line,
    optimizer_step,
    resume_run,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .diffusion import init_from_teacher, tokenize
from .evaluate import score_generator
from .model_card import hardware, write_model_card

SAMPLE_CHUNK = 256  # teacher samples made (and cached) together


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="runs/distilled", work_dir="runs/distill", steps=3000, batch_size=64,
                             lr=2e-4, data=12000, tiny={"scenes": 8, **JUDGED_TINY})  # fmt: skip
    parser.add_argument("--teacher", default="models/bundled/text_to_image", help="a diffusers text-to-image folder")
    parser.add_argument("--captions", help="a text file of captions, one a line (default: the shapes world)")
    parser.add_argument("--teacher-steps", type=int, default=12)
    parser.add_argument("--guidance", type=float, default=4.0, help="the guidance folded into the student")
    parser.add_argument("--base-preset", default="bundled",
                        help="the app preset whose autoencoder, text encoder and captioner the student shares")
    parser.add_argument("--student", default="teacher",
                        help="'teacher' (its architecture and weights), a UNet folder (e.g. a pruned one) or a "
                             "UNet config JSON (random weights)")  # fmt: skip
    parser.add_argument("--init-from-teacher", action="store_true",
                        help="start a config student from the teacher's tensors where place and shape match")
    parser.add_argument("--one-step-share", type=float, default=0.5,
                        help="share of each batch trained at t = T from the teacher's own noise; the rest "
                             "re-noised at t in [--min-timestep, T)")  # fmt: skip
    parser.add_argument("--min-timestep", type=int, default=200)
    parser.add_argument("--samples-dir", help="where the teacher's samples are cached (default: WORK_DIR/samples)")
    parser.add_argument("--keep-wrong", action="store_true", help="keep the samples the judge reads wrong too")
    parser.add_argument("--feature-weight", type=float, default=0.0,
                        help="BK-SDM feature distillation: weight of the MSE between the student's and the teacher's "
                             "block outputs at the same input (blocks matched by place and shape)")  # fmt: skip
    parser.add_argument("--feature-teacher",
                        help="a UNet folder whose block outputs the student matches instead of the teacher's, e.g. "
                             "an already distilled full-width student that a pruned copy of it re-learns from")  # fmt: skip
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-captions", type=int, default=100)
    return parser.parse_args(argv)


def load_teacher(folder: str) -> StableDiffusionPipeline:
    pipeline = StableDiffusionPipeline.from_pretrained(folder, use_safetensors=True, safety_checker=None,
                                                       requires_safety_checker=False)  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    for module in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
        module.eval().requires_grad_(False)
    return pipeline


def training_captions(count: int, seed: int, captions_file: str | None) -> list[str]:
    """`count` captions: drawn from the shapes world's grammar, or cycled from a file (shuffled by `seed`)."""
    rng = random.Random(seed)
    if captions_file is None:
        return [random_attributes(rng).caption for _ in range(count)]
    lines = [line.strip() for line in Path(captions_file).read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{captions_file} holds no captions.")
    return [lines[i % len(lines)] for i in rng.sample(range(max(count, len(lines))), count)]


@torch.no_grad()
def encode_prompts(pipeline, captions: list[str]) -> torch.Tensor:
    return torch.cat([pipeline.text_encoder(tokenize(pipeline.tokenizer, captions[i : i + 512]))[0]
                      for i in range(0, len(captions), 512)])  # fmt: skip


@torch.no_grad()
def teacher_chunk(pipeline, captions: list[str], seed: int, steps: int, guidance: float) -> dict[str, torch.Tensor]:
    """The teacher's guided solve from seeded noise: {"noise", "latents"} (scaled latents, as the UNet sees them)."""
    unet = pipeline.unet
    size = unet.config.sample_size
    noise = torch.randn((len(captions), unet.config.in_channels, size, size),
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    latents = pipeline(captions, latents=noise.clone(), num_inference_steps=steps, guidance_scale=guidance,
                       output_type="latent").images  # fmt: skip
    return {"noise": noise, "latents": latents.contiguous()}


@torch.no_grad()
def judged_right(pipeline, latents: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """Which decoded teacher samples the shapes world's judge reads as their caption."""
    images = pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor).sample
    pil = pipeline.image_processor.postprocess(images, output_type="pil")
    return torch.tensor([judge(image) == parse(caption) for image, caption in zip(pil, captions)])


def prepare_teacher_samples(pipeline, captions: list[str], seed: int, steps: int, guidance: float,
                            cache_dir: Path, judged: bool) -> dict:  # fmt: skip
    """The teacher's samples for `captions`, made in chunks cached under `cache_dir` (a rerun resumes).

    Returns:
        noise, latents: (n, 4, h, w) the starting noise and the teacher's final latents.
        captions: the n captions kept (in the shapes world, those the judge reads right).
        judged: the share of the teacher's samples the judge read right (1.0 when `judged` is False: all kept).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    chunks = []
    for start in tqdm(range(0, len(captions), SAMPLE_CHUNK), desc="teacher samples"):
        part = captions[start : start + SAMPLE_CHUNK]
        path = cache_dir / f"samples-{seed}-{steps}-{guidance}-{start}-{len(part)}.safetensors"
        if path.exists():
            chunks.append(load_file(path))
            continue
        chunk = teacher_chunk(pipeline, part, seed + start, steps, guidance)
        chunk["right"] = judged_right(pipeline, chunk["latents"], part) if judged else torch.ones(len(part), dtype=torch.bool)
        save_file(chunk, path)
        chunks.append(chunk)
    right = torch.cat([c["right"] for c in chunks])
    return {
        "noise": torch.cat([c["noise"] for c in chunks])[right],
        "latents": torch.cat([c["latents"] for c in chunks])[right],
        "captions": [c for c, ok in zip(captions, right.tolist()) if ok],
        "judged": float(right.float().mean()),
    }


def build_student(spec: str, teacher_unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """The student UNet: the teacher's own copy, a UNet folder's, or a config's with random weights."""
    if spec == "teacher":
        student = UNet2DConditionModel.from_config(teacher_unet.config)
        student.load_state_dict(teacher_unet.state_dict())
        return student
    path = Path(spec)
    if path.is_dir():
        return UNet2DConditionModel.from_pretrained(path, use_safetensors=True)
    return UNet2DConditionModel.from_config(json.loads(path.read_text()))


def feature_source(folder: str | None, teacher_unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """The UNet whose block outputs the student matches: `folder`'s (in fp32, frozen) or the teacher's."""
    if folder is None:
        return teacher_unet
    unet = UNet2DConditionModel.from_pretrained(folder, use_safetensors=True, torch_dtype=torch.float32)
    return unet.eval().requires_grad_(False)


class BlockFeatures:
    """The outputs of a UNet's down and up blocks, recorded by forward hooks on every call."""

    def __init__(self, unet: UNet2DConditionModel, up_offset: int = 0):
        self.outputs: dict[str, torch.Tensor] = {}
        for index, block in enumerate(unet.down_blocks):
            block.register_forward_hook(self._recorder(f"down.{index}"))
        for index, block in enumerate(unet.up_blocks):
            block.register_forward_hook(self._recorder(f"up.{index + up_offset}"))

    def _recorder(self, name: str):
        def record(module, inputs, output):
            self.outputs[name] = output[0] if isinstance(output, tuple) else output

        return record


def feature_loss(student: BlockFeatures, teacher: BlockFeatures) -> torch.Tensor:
    """Sum of the MSEs between block outputs the two UNets share (same place, same shape)."""
    pairs = [(value, teacher.outputs[name]) for name, value in student.outputs.items()
             if name in teacher.outputs and teacher.outputs[name].shape == value.shape]  # fmt: skip
    return sum(F.mse_loss(mine, theirs) for mine, theirs in pairs)


def predicted_x0(scheduler: DDPMScheduler, sample: torch.Tensor, model_output: torch.Tensor,
                 timesteps: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The clean latents a v-prediction (or epsilon) output implies at `timesteps`."""
    alphas = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    if scheduler.config.prediction_type == "v_prediction":
        return alphas.sqrt() * sample - (1 - alphas).sqrt() * model_output
    return (sample - (1 - alphas).sqrt() * model_output) / alphas.sqrt().clamp_min(1e-4)


def distillation_batch(data: dict, embeddings: torch.Tensor, index: torch.Tensor, scheduler: DDPMScheduler,
                       one_step_share: float, min_timestep: int, generator: torch.Generator) -> tuple:  # fmt: skip
    """(noisy input, timesteps, text embeddings, target latents): the one-step rows start from the teacher's own
    noise at t = T; the others are the teacher's image re-noised with fresh noise at t in [min_timestep, T)."""
    top = scheduler.config.num_train_timesteps - 1
    target = data["latents"][index]
    one_step = torch.rand(len(index), generator=generator) < one_step_share
    timesteps = torch.randint(min_timestep, top, (len(index),), generator=generator)
    timesteps[one_step] = top
    fresh = torch.randn(target.shape, generator=generator)
    noisy = scheduler.add_noise(target, fresh, timesteps)
    noisy[one_step] = data["noise"][index][one_step]
    return noisy, timesteps, embeddings[index], target


def lcm_scheduler(config) -> LCMScheduler:
    """An `LCMScheduler` on the teacher's noise schedule (only the settings LCM takes, so its saved config is clean)."""
    accepted = inspect.signature(LCMScheduler.__init__).parameters
    return LCMScheduler(**{key: value for key, value in config.items() if key in accepted})


def student_pipeline(teacher: StableDiffusionPipeline, unet: UNet2DConditionModel) -> StableDiffusionPipeline:
    """The teacher's pipeline with the student's UNet and the `LCMScheduler` it samples with."""
    scheduler = lcm_scheduler(teacher.scheduler.config)
    pipeline = StableDiffusionPipeline(vae=teacher.vae, text_encoder=teacher.text_encoder, tokenizer=teacher.tokenizer,
                                       unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def judge_student(pipeline, count: int, seed: int, steps: int) -> dict[str, float]:
    """The judge's shares for `count` shapes-world captions drawn in `steps` passes (no guidance pass)."""

    def generate(captions, chunk_seed):
        generator = torch.Generator().manual_seed(chunk_seed)
        return pipeline(captions, num_inference_steps=steps, guidance_scale=0.0, generator=generator).images

    return score_generator(generate, count, seed)


def save_student(unet: UNet2DConditionModel, teacher: StableDiffusionPipeline, out: str | Path, facts: dict,
                 preset: dict) -> None:  # fmt: skip
    """`out/unet` (fp16 safetensors), `out/scheduler` (LCM), `out/distillation.json` (how it was made) and
    `out/preset.json` (so `python app.py --preset OUT` serves it beside its base preset)."""
    out = Path(out)
    half = UNet2DConditionModel.from_config(unet.config)
    half.load_state_dict(unet.state_dict())
    half.to(torch.float16).save_pretrained(out / "unet")
    lcm_scheduler(teacher.scheduler.config).save_pretrained(out / "scheduler")
    (out / "distillation.json").write_text(json.dumps(facts, indent=1) + "\n")
    write_model_card(out, "Depict distilled student (1-2 UNet passes)",
                     "A UNet distilled from a 12-step classifier-free-guided teacher: it draws with `LCMScheduler` in "
                     "one or two passes and no unconditional pass; the autoencoder, text encoder and captioner are "
                     "the base preset's.", facts)  # fmt: skip
    (out / "preset.json").write_text(json.dumps(preset, indent=1) + "\n")


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_seed(args.seed)
    torch.set_grad_enabled(True)
    teacher = load_teacher(args.teacher)
    shapes_world = args.captions is None
    captions = training_captions(args.scenes, args.seed, args.captions)
    data = prepare_teacher_samples(teacher, captions, args.seed, args.teacher_steps, args.guidance,
                                   Path(args.samples_dir or Path(args.work_dir, "samples")),
                                   shapes_world and not args.keep_wrong)  # fmt: skip
    embeddings = encode_prompts(teacher, data["captions"])
    scheduler = DDPMScheduler.from_config(teacher.scheduler.config)
    student = build_student(args.student, teacher.unet).train()
    if args.init_from_teacher:
        removed = len(teacher.unet.config.block_out_channels) - len(student.config.block_out_channels)
        init_from_teacher(student, teacher.unet, max(0, removed))
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    ema = EMA(student, args.ema)
    if args.feature_weight > 0:  # the feature source's up block i matches the student's i - (stages removed)
        source = feature_source(args.feature_teacher, teacher.unet)
        removed = len(source.config.block_out_channels) - len(student.config.block_out_channels)
        student_features, teacher_features = BlockFeatures(student, removed), BlockFeatures(source)
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, {"unet": student, "ema_unet": ema.module}, optimizer, args.seed, args.steps, "distill"
    )
    history = state.get("history", [])
    for step in progress:
        index = torch.randint(0, len(data["captions"]), (args.batch_size,), generator=generator)
        noisy, timesteps, context, target = distillation_batch(data, embeddings, index, scheduler,
                                                               args.one_step_share, args.min_timestep, generator)  # fmt: skip
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=min(200, args.steps // 10 + 1), total=args.steps)
        output = student(noisy, timesteps, context).sample
        loss = F.mse_loss(predicted_x0(scheduler, noisy, output, timesteps), target)
        if args.feature_weight > 0:
            with torch.no_grad():
                source(noisy, timesteps, context)
            loss = loss + args.feature_weight * feature_loss(student_features, teacher_features)
        optimizer_step(loss, optimizer, {ema: student}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if shapes_world and ((step + 1) % args.eval_every == 0 or step + 1 == args.steps):
            pipeline = student_pipeline(teacher, ema.module)
            scores = {f"{n}-step": judge_student(pipeline, args.eval_captions, 10_000, n) for n in (1, 2)}
            history.append({"step": step + 1, **scores})
            progress.write(f"step {step + 1}: judged {scores}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            checkpoints.save(step + 1, {"unet": student, "ema_unet": ema.module}, optimizer,
                             {"elapsed": time.time() - began, "history": history})  # fmt: skip
    facts = {
        "command": command_line("training.distill", argv),
        "recipe": "sampler distillation (Luhman & Luhman 2021) with guidance folded in at a fixed scale",
        "teacher": f"{args.teacher}, {args.teacher_steps} DPM-Solver++ steps, guidance {args.guidance}",
        "student": args.student,
        "data": f"{len(captions)} captions (seed {args.seed}, {'shapes world' if shapes_world else args.captions}); "
        f"teacher samples kept {len(data['captions'])} (judged right {data['judged']:.1%})",
        "steps": args.steps, "batch size": args.batch_size, "learning rate": args.lr, "seed": args.seed,
        "one-step share": args.one_step_share, "EMA": args.ema, "feature weight": args.feature_weight,
        "feature teacher": args.feature_teacher or args.teacher,
        "wall time (s)": round(time.time() - began), "hardware": hardware(),
        "UNet parameters": sum(p.numel() for p in student.parameters()),
        "judged during training (100 captions, seed 10000)": history,
    }  # fmt: skip
    side = teacher.unet.config.sample_size * teacher.vae_scale_factor
    preset = {"label": f"Distilled student of {Path(args.teacher).name} (1-2 passes)", "text_to_image": ".",
              "base": args.base_preset, "steps": 1, "guidance": 0.0, "samplers": ["lcm"], "width": side,
              "height": side, "shapes_world": shapes_world}  # fmt: skip
    save_student(ema.module, teacher, args.out, facts, preset)
    print(f"saved {args.out}")
    return facts


if __name__ == "__main__":
    main()
