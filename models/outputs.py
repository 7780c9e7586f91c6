"""The outputs folder: each kept image a PNG with its parameters under `<folder>/<job>/<date>/`, read back newest first."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write `data` to a hidden temporary file beside `path`, flushed to disk, then rename it into place: a crash
    leaves either the whole file or none (and perhaps a `.part` file, never listed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def keep(folder: str | Path, job: str, seed: int, png: bytes) -> Path:
    """Write one PNG as `<folder>/<job>/<YYYY-MM-DD>/<HHMMSS>-<seed>-<token>.png`; `OSError` when it cannot."""
    now = time.localtime()
    name = f"{time.strftime('%H%M%S', now)}-{seed}-{uuid.uuid4().hex[:6]}.png"
    return atomic_write(Path(folder) / job / time.strftime("%Y-%m-%d", now) / name, png)


def recent(folder: str | Path, limit: int) -> list[Path]:
    """The newest `limit` PNGs kept under `folder`, across jobs and days, newest first."""
    folder = Path(folder)
    days = sorted({day.name for day in folder.glob("*/*") if day.is_dir()}, reverse=True)
    found: list[Path] = []
    for day in days:
        found += sorted(folder.glob(f"*/{day}/*.png"), key=lambda path: path.stat().st_mtime, reverse=True)
        if len(found) >= limit:
            break
    return found[:limit]
