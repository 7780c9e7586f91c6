"""A preset's faster paths for its default request, made right after load instead of at the first request: example
inputs of the exact signatures (and values like those) the pipeline will call its UNet and CLIP text encoder with,
handed to their graph stand-ins (`models.graphs`), which build them, or read what an earlier start built, in the
background."""

from __future__ import annotations

import torch

from .graphs import UNET_XL, graph_of, unet_interface

SDXL_TIME_IDS = 6  # original size, crop corner, target size


def unet_example(pipeline, scheduler, width: int, height: int, images: int, guided: bool, embeds: dict) -> tuple:
    """The tensors a text -> image call at this size hands its UNet at its first step (a seeded latent of unit spread,
    the timestep from `scheduler`, the text states in `embeds`, as `PromptCache.substitute` gives them, and for SDXL
    its pooled text and sizes), shapes and dtypes as the pipeline makes them. Values as a request's, not zeros: an
    int8 build calibrates on them (`models.openvino_int8`); a pipeline without cached embeddings gets zero text."""
    unet = pipeline.unet
    batch = images * (2 if guided else 1)
    scale = pipeline.vae_scale_factor
    dtype = unet.dtype
    shape = (batch, unet.config.in_channels, height // scale, width // scale)
    sample = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(0)).to(dtype)
    scheduler.set_timesteps(1)
    timestep = scheduler.timesteps[0]
    text = texts(embeds, "prompt_embeds", images, guided)
    if text is None:
        text = torch.zeros(batch, pipeline.tokenizer.model_max_length, unet.config.cross_attention_dim)
    example = (sample, timestep, text.to(dtype))
    if unet_interface(unet) is UNET_XL:
        pooled = texts(embeds, "pooled_prompt_embeds", images, guided)
        if pooled is None:
            pooled = torch.zeros(batch, pipeline.text_encoder_2.config.projection_dim)
        sizes = torch.tensor([height, width, 0, 0, height, width], dtype=dtype).repeat(batch, 1)  # SDXL's time ids
        example += (pooled.to(dtype), sizes)
    return example


def texts(embeds: dict, name: str, images: int, guided: bool) -> torch.Tensor | None:
    """The batch of `embeds[name]` a guided (negative first) or unguided call of `images` images hands the UNet."""
    if name not in embeds:
        return None
    positive = embeds[name].repeat_interleave(images, dim=0)
    return torch.cat([embeds[f"negative_{name}"].repeat_interleave(images, dim=0), positive]) if guided else positive


def prime(pipeline, scheduler, width: int, height: int, images: int, guided: bool, embeds: dict) -> None:
    """Start (or read) the UNet's and the CLIP text encoder's graphs for a text -> image call at this size (`embeds`:
    the empty prompt's, from the preset's prompt cache)."""
    unet_graph = graph_of(pipeline.unet)
    if unet_graph is not None:
        unet_graph.prime(unet_example(pipeline, scheduler, width, height, images, guided, embeds))
    text_graph = graph_of(getattr(pipeline, "text_encoder", None))
    if text_graph is not None:
        length = pipeline.tokenizer.model_max_length
        text_graph.prime((torch.zeros(1, length, dtype=torch.long),))
