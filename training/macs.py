"""Multiply-accumulates of one UNet pass, counted by PyTorch's own FLOP counter (convolutions, matmuls, attention)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def unet_macs(unet, batch: int = 1, tokens: int = 16) -> int:
    """MACs of one pass of `unet` at its native latent size with `tokens` caption embeddings (the bundled
    tokenizer's length; 77 for CLIP)."""
    config = unet.config
    size = config.sample_size
    sample = torch.zeros(batch, config.in_channels, size, size, dtype=unet.dtype)
    context = torch.zeros(batch, tokens, config.cross_attention_dim, dtype=unet.dtype)
    counter = FlopCounterMode(display=False)
    with counter:
        unet(sample, torch.full((batch,), 999), context)
    return counter.get_total_flops() // 2
