"""A repo's snapshot folder in a Hugging Face hub cache (`HF_HUB_CACHE`), laid out as a download leaves it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def snapshot(root: Path, repo: str) -> Path:
    """`root/models--org--name/snapshots/<hash>`, with `refs/main` naming that hash (as a download leaves it)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)  # no trailing newline
    path = folder / "snapshots" / commit
    path.mkdir(parents=True, exist_ok=True)
    return path
