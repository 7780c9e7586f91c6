"""Results as PNG files carrying their parameters: shown in the galleries, kept in the outputs folder."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from models import Result
from models.metadata import png_bytes
from models.outputs import keep
from models.settings import outputs_dir

HISTORY_LIMIT = 24
_GALLERY_DIR = Path(tempfile.gettempdir()) / "depict-outputs"


def save_result(result: Result) -> tuple[list[tuple[str, str]], list[str]]:
    """Each image as a PNG with its metadata at native size: (path, caption) pairs for a gallery, and warnings.

    Each is also kept in the outputs folder (`DEPICT_OUTPUTS`); a folder that cannot be written (full disk, no
    permission) costs a warning, never the picture.
    """
    _GALLERY_DIR.mkdir(parents=True, exist_ok=True)
    folder, saved, warnings = outputs_dir(), [], []
    for index, image in enumerate(result.images):
        meta = result.image_metadata(index)
        png = png_bytes(image, meta)
        path = _GALLERY_DIR / f"{meta['job']}-{meta['seed']}-{uuid.uuid4().hex[:8]}.png"
        path.write_bytes(png)
        saved.append((str(path), f"seed {meta['seed']}"))
        if folder is not None and not warnings:
            try:
                keep(folder, meta["job"], meta["seed"], png)
            except OSError as error:
                warnings.append(f"Could not keep this picture in {folder} ({error.strerror or error}); it is shown "
                                "here but not saved: download it, or free space or fix the folder's permissions.")  # fmt: skip
    return saved, warnings


def add_to_history(history: list | None, new: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Newest first, at most `HISTORY_LIMIT` entries."""
    return (new + list(history or []))[:HISTORY_LIMIT]
