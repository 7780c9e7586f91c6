"""The speed policy: how one loaded model runs fastest, decided once from the model itself, not from preset flags.

From the UNet's parameter count, the autoencoder's latent channels and scaling factor, the pipeline class, the device
and what the CPU really runs fast (AVX512-BF16/AMX for bf16, VNNI for int8), it picks the dtype (bf16 for large
models on CPUs with native bf16), which components run channels-last, compile (large UNets, `DEPICT_COMPILE`), traced
graphs (small models on CPU), int8
(large compiled fp32 UNets on CPUs with VNNI, `DEPICT_QUANTIZE`; fp32 around it) and a tiny-autoencoder companion (the
folder's `vae_tiny/`, else TAESD/TAESDXL for the SD families from the hub cache). Every result's metadata carries
it as `speed_policy`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from . import hub, openvino_runtime, quantize
from .cpu import cpu_has_native_bf16, cpu_has_vnni
from .devices import DevicePolicy
from .presets import Preset, is_available
from .settings import compile_mode, large_unet_parameters, quantize_mode, runtime_mode

# (latent channels, scaling factor, SDXL pipeline) -> latent family; TAESD decodes SD 1.x/2.x latents, TAESDXL SDXL's
_FAMILIES = {(4, 0.18215, False): "sd", (4, 0.13025, True): "sdxl"}


@dataclass(frozen=True)
class SpeedPolicy:
    """What one loaded model runs with, and why."""

    unet_parameters: int
    family: str | None  # "sd" (SD 1.x/2.x latents), "sdxl", or None (a family of its own, e.g. the bundled one)
    device: str
    cpu_bf16: bool  # AVX512-BF16 or AMX
    cpu_vnni: bool
    dtype: str
    channels_last: tuple[str, ...]  # components laid out NHWC: `unet`, `vae` (its tiny companion too)
    compile: bool
    openvino: tuple[str, ...]  # components run by OpenVINO (`models.openvino_runtime`): `unet`, `vae`, `text_encoder`,
    # `vae_tiny`
    traced: tuple[str, ...]  # components run as TorchScript graphs (`models.graphs`): `unet`, `vae`, `text_encoder`
    quantize: str  # "int8" (a PT2E int8 UNet), "int8-hybrid" (NNCF on OpenVINO: UNet, VAE decoder) or "off"
    tiny_decoder: str | None  # folder or hub id of the AutoencoderTiny companion
    reasons: tuple[str, ...]

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def as_metadata(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "channels_last": list(self.channels_last),
                "traced": list(self.traced), "openvino": list(self.openvino)}


def parameters(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def latent_family(pipeline) -> str | None:
    """`sd`, `sdxl` or None, from the autoencoder's latent channels and scaling factor and the pipeline class."""
    vae = getattr(pipeline, "vae", None)
    if vae is None:
        return None
    xl = "XL" in type(pipeline).__name__
    channels, scale = vae.config.get("latent_channels"), vae.config.get("scaling_factor") or 0.0
    matches = (name for (c, s, x), name in _FAMILIES.items() if (c, x) == (channels, xl) and math.isclose(s, scale))
    return next(matches, None)


def tiny_companion(preset: Preset, family: str | None) -> str | None:
    """The folder's `vae_tiny/`, else the family's tiny autoencoder when it is in the hub cache or one of the
    preset's own downloads; None when none is at hand."""
    if preset.vae_tiny:
        return preset.vae_tiny
    repo = hub.TINY_AUTOENCODERS.get(family)
    if repo and (is_available(repo) or repo in hub.files(preset)):
        return repo
    return None


def nhwc_components(device: str, dtype: torch.dtype, large: bool) -> tuple[str, ...]:
    """The components that run faster NHWC. Half precision: both. fp32 on CPU: the autoencoder always (bundled
    decode 8.1 -> 6.6 ms on 2 threads; SD VAE at 512x512 22.8 -> 20.5 s on 1), the UNet only when small (bundled
    pass 13.8 -> 12.7 ms: oneDNN's NHWC path beats PyTorch's own small-tensor convolution), not when large (SD-Turbo
    step 6.0 -> 7.4 s). fp32 on CUDA: neither."""
    if dtype != torch.float32:
        return ("unet", "vae")
    if device == "cpu":
        return ("vae",) if large else ("unet", "vae")
    return ()


def traced_components(device: str, large: bool, mode: str, graphs_of_its_own: bool) -> tuple[str, ...]:
    """The components run as traced TorchScript graphs: a small model's UNet, autoencoder and text encoder on CPU,
    where a call is mostly Python overhead (bundled UNet pass 12.2 -> 9.1 ms, decode 9.3 -> 5.2 ms, text encoder
    0.68 -> 0.28 ms; 0.6 s of tracing a shape). Not large models (their time is in the kernels), not compiled or int8
    ones (graphs of their own), not with `DEPICT_COMPILE=off`."""
    if device != "cpu" or large or mode == "off" or graphs_of_its_own:
        return ()
    return ("unet", "vae", "text_encoder")


def openvino_components(device: str, large: bool, mode: str, runtime: str) -> tuple[str, ...]:
    """The components OpenVINO runs: a large model's UNet, autoencoder halves, CLIP text encoder and tiny decoder on
    CPU (`DEPICT_RUNTIME=auto`; `openvino`: small models too), where it measured faster than torch (docs/speed-policy.md).
    Not with `DEPICT_COMPILE=off`, which turns every captured graph off."""
    if device != "cpu" or mode == "off" or runtime == "torch" or not (large or runtime == "openvino"):
        return ()
    return ("unet", "vae", "text_encoder", "vae_tiny")


def decide(pipeline, preset: Preset, policy: DevicePolicy) -> SpeedPolicy:
    """The policy for `pipeline` (as loaded, before any cast) on `policy`'s device."""
    unet = getattr(pipeline, "unet", None)
    count = parameters(unet)
    large = count >= large_unet_parameters()
    native_bf16, vnni = policy.device == "cpu" and cpu_has_native_bf16(), policy.device == "cpu" and cpu_has_vnni()
    threshold = f"{'at or over' if large else 'under'} {large_unet_parameters() / 1e6:.0f}M"
    reasons = [f"UNet {count / 1e6:.1f}M parameters ({threshold})"]
    mode = compile_mode()
    quantizing = quantize_mode()
    plain = unet is not None and not (unet.config.get("addition_embed_type") or unet.config.get("time_cond_proj_dim"))
    on_openvino = openvino_components(policy.device, large, mode, runtime_mode()) if unet is not None else ()
    int8 = (policy.device == "cpu" and policy.dtype == torch.float32 and plain and quantizing == "int8"
            and quantize.available() and not on_openvino)  # fmt: skip
    # on OpenVINO: NNCF's hybrid int8 UNet and VAE decoder for a large UNet where the CPU has int8 dot products (1.16x
    # float with TAESD, 1.48x with the full VAE at 512x512), each kept only where its output holds
    # (`models.openvino_int8`); not by default for a small one (bundled-fast: no faster, judged 54% against 97%)
    int8_hybrid = (bool(on_openvino) and openvino_runtime.nncf_available()
                   and (quantizing == "int8" or (quantizing == "auto" and vnni and large)))  # fmt: skip
    openvino = () if int8 else on_openvino  # an int8 UNet runs its own graph
    compiled = unet is not None and mode != "off" and not policy.cpu_offload and (mode == "on" or large) and not openvino
    # `auto` stays float until int8 is measured faster at SD size with its compile paid once: Inductor cannot cache
    # the frozen int8 graph, so today every start would recompile it for minutes
    if on_openvino:
        reasons.append(f"hybrid int8 UNet and VAE decoder {'on' if int8_hybrid else 'off'} "
                       f"(DEPICT_QUANTIZE={quantizing}; VNNI {'yes' if vnni else 'no'}; NNCF {'installed' if openvino_runtime.nncf_available() else 'missing'})")  # fmt: skip
    else:
        reasons.append(f"int8 {'on' if int8 else 'off'} (DEPICT_QUANTIZE={quantizing}; VNNI {'yes' if vnni else 'no'}; "
                       f"torchao {'installed' if quantize.available() else 'missing'}; "
                       f"{'a plain' if plain else 'an SDXL- or LCM-conditioned'} UNet)")  # fmt: skip
    dtype = policy.dtype
    if policy.dtype_chosen:
        reasons.append(f"dtype {policy.key[1]} fixed (asked for, or shared with a base model)")
    elif int8:
        reasons.append("fp32 around the int8 UNet")
    elif large and native_bf16:
        dtype = torch.bfloat16
        reasons.append("bf16: large UNet on a CPU with AVX512-BF16/AMX")
    elif policy.device == "cpu":
        reasons.append("fp32: " + ("small UNet" if native_bf16 else "no native bf16 on this CPU"))
    reasons.append(f"compile {'on' if compiled else 'off'} (DEPICT_COMPILE={mode})")
    if openvino:
        reasons.append(f"OpenVINO for the UNet, autoencoder, text encoder and tiny decoder (DEPICT_RUNTIME={runtime_mode()})")
    traced = traced_components(policy.device, large, mode, compiled or int8 or bool(openvino)) if unet is not None else ()
    if traced:
        reasons.append("traced UNet, autoencoder and text encoder: a small model on CPU, mostly Python overhead")
    family = latent_family(pipeline)
    return SpeedPolicy(
        unet_parameters=count, family=family, device=policy.device, cpu_bf16=native_bf16, cpu_vnni=vnni,
        dtype=str(dtype).removeprefix("torch."), channels_last=nhwc_components(policy.device, dtype, large),
        compile=compiled, openvino=openvino, traced=traced, quantize="int8" if int8 else "int8-hybrid" if int8_hybrid else "off", tiny_decoder=tiny_companion(preset, family),
        reasons=tuple(reasons),
    )  # fmt: skip


UPSCALER_LAYOUT = ("contiguous layout (channels-last measured no faster for the bundled upscaler, 64 -> 256 batch 1 "
                   "on a 2-core AMD EPYC, medians of 300 runs: 7.71 vs 7.36 ms, then 7.52 vs 7.65 ms)")


@dataclass(frozen=True)
class UpscalePolicy:
    """What a super-resolution network runs with, and why."""

    parameters: int
    device: str
    dtype: str
    reasons: tuple[str, ...]

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def as_metadata(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons)}


def decide_upscaler(network, policy: DevicePolicy) -> UpscalePolicy:
    """The policy for a super-resolution network: the device's dtype, except bf16 only for a large network on a CPU
    with native bf16 (fp32 otherwise, as for the UNets); the contiguous layout (channels-last measured no faster for the
    bundled network: `UPSCALER_LAYOUT`); nothing compiled or traced: a request runs it eagerly, and there is no
    background build to wait for."""
    count = parameters(network)
    large = count >= large_unet_parameters()
    dtype = policy.dtype
    reasons = [f"{count / 1e6:.2f}M parameters ({'at or over' if large else 'under'} "
               f"{large_unet_parameters() / 1e6:.0f}M)"]  # fmt: skip
    if policy.device == "cpu" and not policy.dtype_chosen:
        dtype = torch.bfloat16 if large and cpu_has_native_bf16() else torch.float32
        reasons.append(f"{'bf16: large network, native bf16' if dtype == torch.bfloat16 else 'fp32'} on this CPU")
    reasons.append(UPSCALER_LAYOUT)
    return UpscalePolicy(parameters=count, device=policy.device, dtype=str(dtype).removeprefix("torch."),
                         reasons=tuple(reasons))  # fmt: skip
