"""Results as PNG files carrying their parameters, and the per-session history the galleries show."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from models import Result
from models.metadata import save_png

HISTORY_LIMIT = 24
_OUTPUT_DIR = Path(tempfile.gettempdir()) / "depict-outputs"


def save_result(result: Result) -> list[tuple[str, str]]:
    """Each image saved at native size as a PNG with its metadata: (path, caption) pairs for a gallery."""
    _OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    saved = []
    for index, image in enumerate(result.images):
        meta = result.image_metadata(index)
        path = save_png(image, meta, _OUTPUT_DIR / f"{meta['job']}-{meta['seed']}-{uuid.uuid4().hex[:8]}.png")
        saved.append((str(path), f"seed {meta['seed']}"))
    return saved


def add_to_history(history: list | None, new: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Newest first, at most `HISTORY_LIMIT` entries."""
    return (new + list(history or []))[:HISTORY_LIMIT]
