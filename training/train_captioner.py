"""Train the bundled captioner: a small `BlipForConditionalGeneration` that describes shapes-world images.

    python -m training.train_captioner --out models/bundled/captioner
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image

from .captioning import MAX_TOKENS, build_captioner, build_processor, caption_batch
from .common import (
    EMA,
    command_line,
    optimizer_step,
    resume_run,
    set_seed,
    set_warmup_cosine_lr,
    training_parser,
)
from .data import prepare_scenes
from .model_card import hardware, write_model_card


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_parser(__doc__, out="models/bundled/captioner", work_dir="runs/captioner", steps=3000,
                             batch_size=64, lr=5e-4, data=30000, tiny={"scenes": 32, "eval_every": 1, "eval_count": 8})
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-count", type=int, default=300, help="held-out renders for the exact-match score")
    return parser.parse_args(argv)


def exact_match(model, processor, images: torch.Tensor, captions: list[str]) -> float:
    pil = [tensor_to_pil(img) for img in images]
    found = [c for start in range(0, len(pil), 100) for c in caption_batch(model, processor, pil[start : start + 100])]
    return sum(f == c for f, c in zip(found, captions)) / len(captions)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def main(argv=None) -> None:
    args = parse_args(argv)
    set_seed(args.seed)
    processor = build_processor()
    model = build_captioner(processor, args.width)
    images, scenes = prepare_scenes(args.scenes, seed=args.seed)
    held_out, held_scenes = prepare_scenes(args.eval_count, seed=args.seed + 1)
    held_captions = [s.caption for s in held_scenes]
    pixel_values = processor(images=list(images.permute(0, 2, 3, 1).numpy()), return_tensors="pt").pixel_values
    tokens = processor.tokenizer([s.caption for s in scenes], padding="max_length", max_length=MAX_TOKENS, return_tensors="pt")
    labels = tokens.input_ids.masked_fill(tokens.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    ema = EMA(model, 0.995)
    checkpoints, state, generator, began, progress = resume_run(
        args.work_dir, {"model": model, "ema": ema.module}, optimizer, args.seed, args.steps, "captioner", mininterval=5
    )
    accuracy = state.get("accuracy")
    model.train()
    for step in progress:
        index = torch.randint(0, len(scenes), (args.batch_size,), generator=generator)
        set_warmup_cosine_lr(optimizer, args.lr, step, warmup=200, total=args.steps)
        loss = model(pixel_values=pixel_values[index], input_ids=tokens.input_ids[index],
                     attention_mask=tokens.attention_mask[index], labels=labels[index]).loss  # fmt: skip
        optimizer_step(loss, optimizer, {ema: model}, step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            accuracy = exact_match(ema.module, processor, held_out, held_captions)
            progress.write(f"step {step + 1}: exact caption match {accuracy:.1%}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            extra = {"elapsed": time.time() - began, "accuracy": accuracy}
            checkpoints.save(step + 1, {"model": model, "ema": ema.module}, optimizer, extra)
    ema.module.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    write_model_card(
        args.out,
        "Depict bundled captioner (shapes world)",
        "A small `BlipForConditionalGeneration` (ViT on 8x8 patches of a 64x64 image, 2-layer text decoder) "
        "that writes the shapes world's caption for an image.",
        {
            "command": command_line("training.train_captioner", argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch size": args.batch_size,
            "data": f"{args.scenes} rendered scenes (seed {args.seed})",
            "wall time (s)": round(time.time() - began),
            "hardware": hardware(),
            f"exact caption match ({args.eval_count} held-out renders, greedy)": accuracy,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    )
    print(f"saved {args.out}: exact match {accuracy:.1%}")


if __name__ == "__main__":
    main()
