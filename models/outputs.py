"""The outputs folder: each kept image a PNG with its parameters under `<folder>/<job>/<date>/` (per login under
`<folder>/users/<login>/<job>/<date>/`), read back newest first."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from pathlib import Path

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME = re.compile(r"\d{6}-\d+-[0-9a-f]{6}\.png")  # what `keep` names a file: nothing else is listed


def atomic_write(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` to a hidden temporary file beside `path` (flushed to disk when `durable`), then rename it into
    place: a crash leaves either the whole file or none (and perhaps a `.part` file, never listed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def owner_folder(folder: str | Path, user: str | None) -> Path:
    """Where one login's images go: `folder` itself without logins, else `folder/users/<login>-<digest>` (the login
    reduced to safe characters, the digest keeping two logins that reduce alike apart)."""
    if user is None:
        return Path(folder)
    digest = hashlib.sha256(user.encode()).hexdigest()[:8]
    return Path(folder) / "users" / f"{re.sub(r'[^A-Za-z0-9_-]', '_', user)[:40]}-{digest}"


def keep(folder: str | Path, job: str, seed: int, png: bytes) -> Path:
    """Write one PNG as `<folder>/<job>/<YYYY-MM-DD>/<HHMMSS>-<seed>-<token>.png`; `OSError` when it cannot."""
    now = time.localtime()
    name = f"{time.strftime('%H%M%S', now)}-{seed}-{uuid.uuid4().hex[:6]}.png"
    return atomic_write(Path(folder) / job / time.strftime("%Y-%m-%d", now) / name, png)


def recent(folder: str | Path, limit: int) -> list[Path]:
    """The newest `limit` PNGs `keep` wrote under `folder`, across jobs and days, newest first. Only its layout and
    names are listed: other files (or a login's subfolder) in the folder never are."""
    folder = Path(folder)
    days = sorted({day.name for day in folder.glob("*/*") if day.is_dir() and _DAY.fullmatch(day.name)}, reverse=True)
    found: list[Path] = []
    for day in days:
        kept = [path for path in folder.glob(f"*/{day}/*.png")
                if _NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink()]  # fmt: skip
        found += sorted(kept, key=lambda path: path.stat().st_mtime, reverse=True)
        if len(found) >= limit:
            break
    return found[:limit]
