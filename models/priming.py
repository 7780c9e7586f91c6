"""A preset's faster paths for its default request, made right after load instead of at the first request: example
inputs of the exact signatures the pipeline will call its UNet and CLIP text encoder with, handed to their graph
stand-ins (`models.graphs`), which build them, or read what an earlier start built, in the background."""

from __future__ import annotations

import torch

from .graphs import UNET_XL, graph_of, unet_interface

SDXL_TIME_IDS = 6  # original size, crop corner, target size


def unet_example(pipeline, scheduler, width: int, height: int, images: int, guided: bool) -> tuple:
    """The tensors a text -> image call at this size hands its UNet (sample, timestep, text states and, for SDXL,
    its pooled text and sizes): shapes and dtypes as the pipeline makes them (the timestep's from `scheduler`)."""
    unet = pipeline.unet
    batch = images * (2 if guided else 1)
    scale = pipeline.vae_scale_factor
    dtype = unet.dtype
    sample = torch.zeros(batch, unet.config.in_channels, height // scale, width // scale, dtype=dtype)
    scheduler.set_timesteps(1)
    timestep = scheduler.timesteps[0]
    text = torch.zeros(batch, pipeline.tokenizer.model_max_length, unet.config.cross_attention_dim, dtype=dtype)
    example = (sample, timestep, text)
    if unet_interface(unet) is UNET_XL:
        pooled = pipeline.text_encoder_2.config.projection_dim
        example += (torch.zeros(batch, pooled, dtype=dtype), torch.zeros(batch, SDXL_TIME_IDS, dtype=dtype))
    return example


def prime(pipeline, scheduler, width: int, height: int, images: int, guided: bool) -> None:
    """Start (or read) the UNet's and the CLIP text encoder's graphs for a text -> image call at this size."""
    unet_graph = graph_of(pipeline.unet)
    if unet_graph is not None:
        unet_graph.prime(unet_example(pipeline, scheduler, width, height, images, guided))
    text_graph = graph_of(getattr(pipeline, "text_encoder", None))
    if text_graph is not None:
        length = pipeline.tokenizer.model_max_length
        text_graph.prime((torch.zeros(1, length, dtype=torch.long),))
