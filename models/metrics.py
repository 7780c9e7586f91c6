"""Image fidelity figures: PSNR and SSIM on 8-bit RGB images."""

from __future__ import annotations

import numpy as np
from PIL import Image


def _pair(a: Image.Image, b: Image.Image, mode: str = "RGB") -> tuple[np.ndarray, np.ndarray]:
    """Both images as float arrays in `mode`, `b` resized to `a` if they differ."""
    if a.size != b.size:
        b = b.resize(a.size, Image.Resampling.BICUBIC)
    return np.asarray(a.convert(mode), np.float64), np.asarray(b.convert(mode), np.float64)


def psnr(a: Image.Image, b: Image.Image, mask: np.ndarray | None = None) -> float:
    """PSNR in dB (over `mask` pixels only when given); capped at 100 for identical images."""
    x, y = _pair(a, b)
    error = (x - y) ** 2
    mse = error[mask].mean() if mask is not None else error.mean()
    return 100.0 if mse <= 1e-10 else float(10 * np.log10(255.0**2 / mse))


def _box(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k x k window (valid positions only), by summed-area table."""
    s = np.pad(x.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(a: Image.Image, b: Image.Image, window: int = 7) -> float:
    """Mean structural similarity of the luminance, on 7x7 windows."""
    x, y = _pair(a, b, "L")
    k = min(window, *x.shape)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box(x, k), _box(y, k)
    vx, vy, cxy = _box(x * x, k) - mx**2, _box(y * y, k) - my**2, _box(x * y, k) - mx * my
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(value.mean())
