"""Device, dtype, attention backend and memory options: chosen from the hardware, overridable."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Collection
from dataclasses import dataclass

import psutil
import torch

from . import openvino_runtime
from .compile_cache import compile_ahead
from .graphs import controlnet_interface, stand_in_pipeline, trace, unet_interface
from .settings import device_choice, dtype_choice, memory_switch

log = logging.getLogger(__name__)

_LOW_MEMORY_BYTES = 6 * 2**30  # below this free memory, slice attention and tile the VAE
_OFFLOAD_BYTES = 10 * 2**30  # below this free GPU memory, offload idle models to the CPU


@dataclass(frozen=True)
class DevicePolicy:
    """Where and how pipelines run. `None` fields are chosen automatically from free memory."""

    device: str
    dtype: torch.dtype
    attention_slicing: bool
    vae_tiling: bool
    cpu_offload: bool
    dtype_chosen: bool = False  # set by the caller or `DEPICT_DTYPE`: never changed per model (`models.speed`)

    @property
    def key(self) -> tuple[str, str]:
        return self.device, str(self.dtype).removeprefix("torch.")


def free_memory(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info()[0]
    return psutil.virtual_memory().available


def default_dtype(device: str) -> str:
    """fp16 on CUDA; fp32 on CPU (`models.speed` moves large models to bf16 where the CPU has it)."""
    return "float16" if device.startswith("cuda") else "float32"


def choose_policy(device: str | None = None, dtype: str | None = None) -> DevicePolicy:
    """CUDA with fp16 when present, else CPU with fp32 (env `DEPICT_DEVICE`, `DEPICT_DTYPE`, `DEPICT_SLICING`,
    `DEPICT_VAE_TILING`, `DEPICT_CPU_OFFLOAD` = auto|on|off)."""
    device = device or device_choice() or ("cuda" if torch.cuda.is_available() else "cpu")
    chosen = dtype or dtype_choice()
    dtype_name = chosen or default_dtype(device)
    free = free_memory(device)
    low = free < _LOW_MEMORY_BYTES
    return DevicePolicy(
        device=device,
        dtype=getattr(torch, dtype_name),
        attention_slicing=memory_switch("DEPICT_SLICING", low),
        vae_tiling=memory_switch("DEPICT_VAE_TILING", low),
        cpu_offload=memory_switch("DEPICT_CPU_OFFLOAD", device.startswith("cuda") and free < _OFFLOAD_BYTES),
        dtype_chosen=bool(chosen),
    )


def empty_device_cache() -> None:
    """Return freed memory: Python's garbage, then CUDA's cached blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def memory_format(component: str, channels_last: Collection[str]) -> torch.memory_format:
    """NHWC for the components the speed policy names, NCHW for the rest."""
    return torch.channels_last if component in channels_last else torch.contiguous_format


def xformers_available() -> bool:
    try:
        import xformers.ops  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _pinned_class(cls: type) -> type:
    """`cls` (same name, so diffusers' class lookups still match) reading its execution device from the instance."""
    return type(cls.__name__, (cls,), {"__module__": cls.__module__, "_pinned": True,
                                       "_execution_device": property(lambda self: self._pinned_device)})  # fmt: skip


def pin_execution_device(pipeline, policy: DevicePolicy) -> None:
    """Tell a pipeline that is not offloaded where it runs. Diffusers otherwise searches for it on every call,
    walking every module of every component for offload hooks: 3 ms a call on the bundled model, a tenth of a
    one-pass image."""
    if policy.cpu_offload:
        return
    pipeline._pinned_device = torch.device(policy.device)
    if not getattr(type(pipeline), "_pinned", False):
        pipeline.__class__ = _pinned_class(type(pipeline))


def configure_pipeline(pipeline, policy: DevicePolicy, compile_unet: bool = False, channels_last: Collection[str] = (),
                       traced: tuple[str, ...] = (), openvino: tuple[str, ...] = (),
                       int8: bool = False) -> str:  # fmt: skip
    """Move a pipeline to the policy's device and dtype, set attention and memory options, lay out the components
    named in `channels_last` (`unet`, `vae`) NHWC, compile its UNet when asked (`models.compile_cache`), run the
    components named in `traced` through traced graphs (`models.graphs`) and those in `openvino` through OpenVINO
    (`models.openvino_runtime`; its UNet quantised by NNCF when `int8`); returns the attention backend."""
    if policy.cpu_offload:
        pipeline.enable_model_cpu_offload()
    else:
        pipeline.to(policy.device)
        if pipeline.dtype != policy.dtype:
            pipeline.to(dtype=policy.dtype)  # the speed policy's cast (bf16 for large models)
    backend = "sdpa"
    if policy.device.startswith("cuda") and xformers_available():
        pipeline.enable_xformers_memory_efficient_attention()
        backend = "xformers"
    if policy.attention_slicing:
        pipeline.enable_attention_slicing()
    for name in ("unet", "vae"):
        module = getattr(pipeline, name, None)
        if module is not None:
            module.to(memory_format=memory_format(name, channels_last))
    unet = getattr(pipeline, "unet", None)
    if compile_unet and unet is not None and policy.device == "cpu":
        compile_ahead(unet, unet_interface(unet))  # a library per input signature, made or loaded on first use
    elif compile_unet and unet is not None:
        unet.compile()  # in place: the module, its weights and its adapters stay shared
    stand_in_pipeline(pipeline, traced, trace)
    stand_in_pipeline(pipeline, openvino, functools.partial(openvino_runtime.install, int8=int8))
    vae = getattr(pipeline, "vae", None)
    if policy.vae_tiling and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    pipeline.set_progress_bar_config(disable=True)
    pin_execution_device(pipeline, policy)
    return backend


def configure_controlnet(pipeline, policy: DevicePolicy, compile_unet: bool, traced: tuple[str, ...],
                         openvino: tuple[str, ...]) -> None:  # fmt: skip
    """A structure pipeline's ControlNet run as its UNet runs, through the same kind of graphs (on CPU: a compiled
    library, a trace or OpenVINO, made in the background); the rest of the pipeline is the base's, configured."""
    if compile_unet and policy.device == "cpu":
        compile_ahead(pipeline.controlnet, controlnet_interface(pipeline.controlnet))
    stand_in_pipeline(pipeline, traced, trace)
    stand_in_pipeline(pipeline, openvino, openvino_runtime.install)
