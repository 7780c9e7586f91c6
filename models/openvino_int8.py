"""NNCF's hybrid int8 quantisation of an OpenVINO UNet, kept only where it holds the UNet's output.

Hybrid, as optimum-intel quantises diffusion UNets: convolutions int8 in weights and activations (VNNI/AMX int8 dot
products), MatMuls int8 in weights only (attention and feed-forward activations stay float). Calibrated on the
request's own inputs with the latent redrawn from its distribution at spread timesteps, then checked on a held-out
input against the torch module it replaces: below `MIN_PSNR_DB` the float IR runs instead (with a log line), and
that verdict is kept beside the IR so a later start does not quantise again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import openvino
import torch

log = logging.getLogger(__name__)

MIN_PSNR_DB = 30.0  # the UNet's output against the torch module's; SD-Turbo (random weights) read 39.6 dB, bf16 41.7
CALIBRATION = (1.0, 0.8, 0.6, 0.4, 0.2, 0.05)  # timesteps, as fractions of the example's; one new latent each
HELD_OUT = 0.5


def variant(example: tuple, fraction: float, seed: int) -> tuple:
    """`example` (sample, timestep, ...) with a new latent of the same mean and spread and the timestep scaled."""
    sample, timestep, *rest = example
    noise = torch.randn(sample.shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
    sample = noise * sample.float().std() + sample.float().mean()
    return (sample, (timestep.float() * fraction).to(timestep.dtype), *rest)


def arrays(inputs: tuple) -> list[np.ndarray]:
    """Torch inputs as the float32 (or integer), contiguous arrays an OpenVINO model takes."""
    return [(t.float() if t.is_floating_point() else t).contiguous().numpy() for t in inputs]


def psnr_db(result: np.ndarray, reference: np.ndarray) -> float:
    error = float(np.mean((result - reference) ** 2))
    return float("inf") if error == 0 else 10 * np.log10(float(np.ptp(reference)) ** 2 / error)


def rejected_marker(ir: Path) -> Path:
    """The file saying that the int8 IR meant for `ir` strayed from the float UNet (it holds the figure)."""
    return ir.with_suffix(".rejected")


def hybrid_int8(model, recorded: torch.nn.Module, example: tuple, ir: Path):
    """`model` (a UNet's float IR converted from `recorded`, a float32 module taking `example`) quantised as above;
    None when the held-out check says its output strays from `recorded`'s (the verdict kept beside `ir`)."""
    import nncf  # an option's package: imported when asked for

    started = time.perf_counter()
    calibration = [arrays(variant(example, fraction, seed)) for seed, fraction in enumerate(CALIBRATION)]
    weights_only = nncf.compress_weights(model, ignored_scope=nncf.IgnoredScope(types=["Convolution"]))
    quantized = nncf.quantize(
        weights_only, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(types=["MatMul"]),  # their weights are int8 already, their activations stay
        advanced_parameters=nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1)),
    )  # fmt: skip
    held_out = variant(example, HELD_OUT, len(CALIBRATION))
    with torch.no_grad():
        reference = recorded(*held_out)
    reference = (reference[0] if isinstance(reference, tuple) else reference).float().numpy()
    static = quantized.clone()
    static.reshape({port.get_any_name(): list(t.shape) for port, t in zip(static.inputs, held_out)})
    result = openvino.Core().compile_model(static, "CPU")(arrays(held_out))[0]
    fidelity = psnr_db(result, reference)
    if fidelity < MIN_PSNR_DB:
        log.warning("int8 %s kept float: its output read %.1f dB against torch's on a held-out input (< %.0f dB)",
                    type(recorded.module).__name__, fidelity, MIN_PSNR_DB)  # fmt: skip
        rejected_marker(ir).write_text(f"{fidelity:.2f} dB\n")
        return None
    log.info("int8 %s: %.1f dB against torch's on a held-out input, quantised in %.1fs",
             type(recorded.module).__name__, fidelity, time.perf_counter() - started)  # fmt: skip
    return quantized
