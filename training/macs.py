"""Multiply-accumulates of one UNet pass, counted by PyTorch's own FLOP counter (convolutions, matmuls, attention)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.graphs import graph_of


@torch.no_grad()
def unet_macs(unet, batch: int = 1, tokens: int = 16) -> int:
    """MACs of one pass of `unet` at its native latent size with `tokens` caption embeddings (the bundled
    tokenizer's length; 77 for CLIP)."""
    config = unet.config
    size = config.sample_size
    sample = torch.zeros(batch, config.in_channels, size, size, dtype=unet.dtype)
    context = torch.zeros(batch, tokens, config.cross_attention_dim, dtype=unet.dtype)
    stand_in = graph_of(unet)  # a loaded model's traced graph: count the module's own operations instead
    forward = stand_in.eager if stand_in else unet
    counter = FlopCounterMode(display=False)
    with counter:
        forward(sample, torch.full((batch,), 999), context)
    return counter.get_total_flops() // 2
