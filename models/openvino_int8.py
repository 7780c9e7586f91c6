"""NNCF's hybrid int8 quantisation of an OpenVINO UNet or VAE decoder, kept only where it holds the module's output.

Hybrid, as optimum-intel quantises diffusion UNets: convolutions int8 in weights and activations (VNNI/AMX int8 dot
products), MatMuls int8 in weights only (attention and feed-forward activations stay float). Calibrated on the
request's own input and on variants of it (the latent redrawn from its distribution; a UNet's at spread timesteps),
then checked on a held-out variant against the torch module it replaces: below `MIN_PSNR_DB` the float IR runs
instead (with a log line), and that verdict is kept beside the IR so a later start does not quantise again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import openvino
import torch
from diffusers.models.autoencoders.vae import Decoder

from .graphs import UNET, UNET_XL, Interface

log = logging.getLogger(__name__)

# the output against the torch module's; SD-Turbo (random weights): UNet 39.6 dB (bf16 41.7), decoder 46.4 (bf16 57.9)
MIN_PSNR_DB = 30.0
CALIBRATION = (0.8, 0.6, 0.4, 0.2, 0.05)  # beside the example itself: timesteps as fractions of its; a new latent each
HELD_OUT = 0.5


def quantizes(module: torch.nn.Module, interface: Interface) -> bool:
    """Whether `module` is one quantised here: a UNet, or an AutoencoderKL's decoder (the full VAE's decode is 80% of a
    1-step 512x512 image's time); text encoders, encoders and tiny decoders stay float."""
    return interface in (UNET, UNET_XL) or isinstance(module, Decoder)


def variant(example: tuple, fraction: float, seed: int) -> tuple:
    """`example` (sample, then a UNet's timestep and the rest) with a new latent of the same mean and spread, and its
    timestep (if any) scaled by `fraction`."""
    sample, *rest = example
    noise = torch.randn(sample.shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
    sample = noise * sample.float().std() + sample.float().mean()
    if rest:
        rest[0] = (rest[0].float() * fraction).to(rest[0].dtype)
    return (sample, *rest)


def calibration(example: tuple) -> list[list[np.ndarray]]:
    """The example itself and its variants at `CALIBRATION`, as arrays."""
    return [arrays(example), *(arrays(variant(example, fraction, seed)) for seed, fraction in enumerate(CALIBRATION))]


def arrays(inputs: tuple) -> list[np.ndarray]:
    """Torch inputs as the float32 (or integer), contiguous arrays an OpenVINO model takes."""
    return [(t.float() if t.is_floating_point() else t).contiguous().numpy() for t in inputs]


def psnr_db(result: np.ndarray, reference: np.ndarray) -> float:
    error = float(np.mean((result - reference) ** 2))
    return float("inf") if error == 0 else 10 * np.log10(float(np.ptp(reference)) ** 2 / error)


def rejected_marker(ir: Path) -> Path:
    """The file saying that the int8 IR meant for `ir` strayed from the float module, or could not be made (it holds
    the figure or the error)."""
    return ir.with_suffix(".rejected")


def quantized(model, example: tuple):
    """`model` (a float IR taking `example`) with hybrid int8 weights and activations, as above."""
    import nncf  # an option's package: imported when asked for

    dataset = calibration(example)
    # not every model has both kinds of op (a small VAE's decoder has no attention): scopes unchecked
    weights_only = nncf.compress_weights(model, ignored_scope=nncf.IgnoredScope(types=["Convolution"], validate=False))
    return nncf.quantize(
        weights_only, nncf.Dataset(dataset), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(dataset),
        ignored_scope=nncf.IgnoredScope(types=["MatMul"], validate=False),  # int8 weights already, float activations
        advanced_parameters=nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1)),
    )  # fmt: skip


def fidelity_db(model, recorded: torch.nn.Module, example: tuple) -> float:
    """PSNR of `model`'s output against `recorded`'s on a held-out variant of `example`."""
    held_out = variant(example, HELD_OUT, len(CALIBRATION))
    with torch.no_grad():
        reference = recorded(*held_out)
    reference = (reference[0] if isinstance(reference, tuple) else reference).float().numpy()
    static = model.clone()
    static.reshape({port.get_any_name(): list(t.shape) for port, t in zip(static.inputs, held_out)})
    return psnr_db(openvino.Core().compile_model(static, "CPU")(arrays(held_out))[0], reference)


def hybrid_int8(model, recorded: torch.nn.Module, example: tuple, ir: Path):
    """`model` (a float IR converted from `recorded`, a float32 module taking `example`) quantised as above; None when
    NNCF fails or the held-out check says its output strays from `recorded`'s (the verdict kept beside `ir`)."""
    name, started = type(recorded.module).__name__, time.perf_counter()
    try:
        int8 = quantized(model, example)
    except Exception as error:  # the float IR serves instead
        log.warning("int8 %s kept float: NNCF failed (%s: %s)", name, type(error).__name__, error)
        rejected_marker(ir).write_text(f"NNCF failed: {type(error).__name__}\n")
        return None
    fidelity = fidelity_db(int8, recorded, example)
    if fidelity < MIN_PSNR_DB:
        log.warning("int8 %s kept float: its output read %.1f dB against torch's on a held-out input (< %.0f dB)",
                    name, fidelity, MIN_PSNR_DB)  # fmt: skip
        rejected_marker(ir).write_text(f"{fidelity:.2f} dB\n")
        return None
    log.info("int8 %s: %.1f dB against torch's on a held-out input, quantised in %.1fs",
             name, fidelity, time.perf_counter() - started)  # fmt: skip
    return int8
