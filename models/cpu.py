"""What the CPU runs natively: the flags the speed policy and the compile cache's library names read."""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has AVX512-BF16 or AMX, so bf16 runs natively. oneDNN's own answer
    (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`) is True on plain AVX-512 too, where bf16 is emulated and an
    SD-Turbo UNet step took 11.9 s against 4.0 s in fp32 (docs/speed-policy.md)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def cpu_has_vnni() -> bool:
    """Whether the CPU has AVX512-VNNI/AVX-VNNI, the int8 dot products that make int8 UNets pay (docs/speed-policy.md)."""
    return bool(torch.cpu._is_vnni_supported())


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX tiles (Intel Sapphire Rapids and later)."""
    return bool(torch.cpu._is_amx_tile_supported())
