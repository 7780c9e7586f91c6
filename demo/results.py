"""Results as PNG files carrying their parameters: shown in the galleries, kept in the outputs folder.

The galleries' copies live in a private folder of this process (mode 0700, removed when it exits); Gradio's own
copies of them are deleted by the Blocks' `delete_cache` schedule.
"""

from __future__ import annotations

import functools
import io
import logging
import tempfile
import uuid
from pathlib import Path

from gradio.context import LocalContext
from PIL import Image

from models import Result
from models.metadata import png_bytes
from models.outputs import atomic_write, keep, owner_folder
from models.settings import outputs_dir

HISTORY_LIMIT = 24
log = logging.getLogger(__name__)
DELETE_CACHE = (3600, 24 * 3600)  # Gradio's copies of shown files: looked over hourly, deleted a day old


@functools.cache
def _private() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="depict-")  # mode 0700; removed at exit by its finalizer


def private_dir(name: str) -> Path:
    """A subfolder of this process's private temporary folder: readable by this user only, removed at exit."""
    return Path(_private().name) / name


def current_user() -> str | None:
    """The login of the request being served (`gr.Request.username`); None without logins or outside a request."""
    return getattr(LocalContext.request.get(None), "username", None)


def shown_copy(path: Path, root: Path) -> Path:
    """A copy of a kept file (under `root`) that the page may show: the outputs folder itself is never served, only
    these copies of what Depict listed. Made once per file."""
    copy = private_dir("history") / path.relative_to(root)
    return copy if copy.exists() else atomic_write(copy, path.read_bytes(), durable=False)


def _gallery_item(png: bytes, name: str) -> str | Image.Image:
    """The gallery's copy of one PNG; when it cannot be written, the image itself (its text chunks in `info`, which
    Gradio writes back into the PNG it serves)."""
    try:
        return str(atomic_write(private_dir("gallery") / name, png, durable=False))
    except OSError as error:
        log.warning("could not write the gallery's copy of %s (%s); handing Gradio the image", name, error)
        return Image.open(io.BytesIO(png))


def save_result(result: Result) -> tuple[list[tuple[str | Image.Image, str]], list[str]]:
    """Each image as a PNG with its metadata at native size: (file or image, caption) pairs for a gallery, and
    warnings.

    Each is also kept in the outputs folder (`DEPICT_OUTPUTS`; per login when logins are on); a folder that cannot be
    written (full disk, no permission) costs a warning, never the picture.
    """
    folder, saved, warnings = outputs_dir(), [], []
    if folder is not None:
        folder = owner_folder(folder, current_user())
    for index, image in enumerate(result.images):
        meta = result.image_metadata(index)
        png = png_bytes(image, meta)
        saved.append((_gallery_item(png, f"{meta['job']}-{meta['seed']}-{uuid.uuid4().hex[:8]}.png"),
                      f"seed {meta['seed']}"))  # fmt: skip
        if folder is not None and not warnings:
            try:
                keep(folder, meta["job"], meta["seed"], png)
            except OSError as error:
                warnings.append(f"Could not keep this picture in {folder} ({error.strerror or error}); it is shown "
                                "here but not saved: download it, or free space or fix the folder's permissions.")  # fmt: skip
    return saved, warnings


def add_to_history(history: list | None, new: list) -> list:
    """Newest first, at most `HISTORY_LIMIT` entries; earlier files that are gone (a cleaner of the temporary folder
    removed them) are dropped, so they never fail the job that shows the new ones."""
    earlier = [item for item in history or [] if not isinstance(item[0], str) or Path(item[0]).is_file()]
    return (new + earlier)[:HISTORY_LIMIT]
