"""int8 UNets on CPU through PyTorch 2 export quantisation (torchao's PT2E with `X86InductorQuantizer`).

At load the UNet is exported at the preset's default request shape, calibrated on its inputs over a few prompts,
converted to int8 and (when the speed policy compiles) compiled with freezing. LoRA adapters still switch per
request: a preset's fixed speed LoRA is fused before quantising, and a request with adapters of its own, or a shape
the graph was not exported for, runs the float UNet, whose weights stay in place.
"""

from __future__ import annotations

import importlib.util
import logging

import torch

from . import compile_cache
from .graphs import UNET, GraphForward, Positional, signature

log = logging.getLogger(__name__)

CALIBRATION_PROMPTS = ("a red circle on a blue background", "a cat on a sofa", "a large green star", "a lake at dusk")


def available() -> bool:
    return importlib.util.find_spec("torchao") is not None


def _calibration_inputs(pipeline, width: int, height: int, steps: int, guidance: float) -> list[tuple]:
    """The UNet's inputs over a few prompts at the preset's defaults (latents only, no decode)."""
    captured = []

    def keep(module, args, kwargs):
        sample, timestep = args[:2]
        captured.append((sample.clone(), torch.as_tensor(timestep).clone(), kwargs["encoder_hidden_states"].clone()))

    handle = pipeline.unet.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        for seed, prompt in enumerate(CALIBRATION_PROMPTS):
            pipeline(prompt, width=width, height=height, num_inference_steps=steps, guidance_scale=guidance,
                     output_type="latent", generator=torch.Generator("cpu").manual_seed(seed))  # fmt: skip
    finally:
        handle.remove()
    return captured


@torch.no_grad()
def quantize_unet(pipeline, width: int, height: int, steps: int, guidance: float, compile_graph: bool) -> GraphForward:
    """Replace `pipeline.unet.forward` by an int8 graph calibrated at this request shape; the installed forward."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    unet = pipeline.unet
    inputs = _calibration_inputs(pipeline, width, height, steps, guidance)
    example = inputs[0]
    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(torch.export.export(Positional(unet, unet.forward, UNET).eval(), example).module(), quantizer)
    for tensors in inputs:
        prepared(*tensors)
    graph = convert_pt2e(prepared)
    if compile_graph:
        compile_cache.prepare()
        chosen = {"graph": torch.compile(graph)}
        with torch._inductor.config.patch(freezing=True):  # weights as constants: int8 kernels prepacked once
            compile_cache.guarded_call(lambda: chosen["graph"](*example), lambda: chosen.update(graph=graph))
        graph = chosen["graph"]  # compiled now, at load: no request waits for it
    log.info("int8 UNet for %dx%d (%d calibration passes)", width, height, len(inputs))
    return GraphForward(unet, UNET, "int8", graphs={signature(example): graph})
