"""ZeroGPU on Hugging Face Spaces: `spaces.GPU` when the package is importable, a no-op otherwise."""

from __future__ import annotations

try:
    import spaces
except ImportError:
    spaces = None


def gpu(fn):
    """Give `fn` a GPU for its duration on ZeroGPU Spaces."""
    return spaces.GPU(fn) if spaces is not None else fn
