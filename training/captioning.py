"""The bundled captioner's parts, shared by the scripts that train it and use it: its processor (a word-level
tokenizer of the world's vocabulary), a small `BlipForConditionalGeneration`, and greedy captions of a batch."""

from __future__ import annotations

import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
    BlipTextConfig,
    BlipVisionConfig,
)

from models.shapes.grammar import vocabulary

MAX_TOKENS = 16
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_processor() -> BlipProcessor:
    words = SPECIAL_TOKENS + vocabulary()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True, model_max_length=MAX_TOKENS)
    image_processor = BlipImageProcessor(size={"height": 64, "width": 64})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_captioner(processor: BlipProcessor, width: int) -> BlipForConditionalGeneration:
    tokenizer = processor.tokenizer
    text = BlipTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, encoder_hidden_size=width, intermediate_size=2 * width,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    vision = BlipVisionConfig(
        hidden_size=width, intermediate_size=2 * width, num_hidden_layers=3, num_attention_heads=4,
        image_size=64, patch_size=8, initializer_range=0.02,  # BLIP's default (1e-10) is for fine-tuning
    )  # fmt: skip
    model = BlipForConditionalGeneration(BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict()))
    with torch.no_grad():  # a fresh ViT learns where things are far sooner from 2-D sin-cos positions (as in MAE)
        model.vision_model.embeddings.position_embedding[0, 1:] = sincos_positions(width, 64 // 8)
    model.generation_config.max_new_tokens = MAX_TOKENS
    model.generation_config.num_beams = 1
    return model


def sincos_positions(width: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (grid * grid, width): half the channels for x, half for y."""
    quarter = width // 4
    frequencies = 1.0 / 100 ** (torch.arange(quarter) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij")
    parts = [f(coordinate.flatten()[:, None] * frequencies) for coordinate in (xs, ys) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)


def caption_batch(model, processor, images) -> list[str]:
    inputs = processor(images=images, return_tensors="pt")
    with torch.no_grad():
        tokens = model.generate(pixel_values=inputs.pixel_values, max_new_tokens=MAX_TOKENS)
    return [text.strip() for text in processor.batch_decode(tokens, skip_special_tokens=True)]
