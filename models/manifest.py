"""A batch's record, `manifest.jsonl` in its `--out-dir`: a line per file written (or per description, or per input
that failed, with its error), appended as each input finishes, so a run that dies keeps the record of what it made;
`--resume` reads it back to skip what is done.

Each file has one writer: the main process appends to `manifest.jsonl`, each other process of a launch to its own
`manifest-<rank>.jsonl` (safe on a file system shared by several machines); the end of a run merges them."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .outputs import atomic_write

MANIFEST = "manifest.jsonl"

log = logging.getLogger(__name__)


def manifest_path(out_dir: Path, rank: int) -> Path:
    """The file process `rank` appends to."""
    return out_dir / (MANIFEST if rank == 0 else f"manifest-{rank}.jsonl")


def _parts(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("manifest-*.jsonl"))


class ManifestWriter:
    """A process's one writer: each input's lines in a single unbuffered append, on disk as soon as they are made."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def add(self, records: list[dict]) -> None:
        data = "".join(json.dumps(record) + "\n" for record in records).encode()
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        os.close(self._fd)


def start_afresh(out_dir: Path) -> None:
    """A new run's empty record: the old manifest emptied, the lines other processes left removed."""
    manifest_path(out_dir, 0).write_bytes(b"")
    for part in _parts(out_dir):
        part.unlink()


def _read(path: Path) -> list[dict]:
    """The records in one file, in order. A line cut short (the machine stopped mid-write) is skipped with a warning."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("index"), int):
            records.append(record)
        else:
            log.warning("%s line %d is not a whole record; skipped", path, number)
    return records


def read_manifest(out_dir: Path) -> list[dict]:
    """Every record of a batch: `manifest.jsonl`'s, then those any other process left; `[]` when there are none."""
    paths = [manifest_path(out_dir, 0), *_parts(out_dir)]
    return [record for path in paths if path.is_file() for record in _read(path)]


def finished(records: list[dict], key: str) -> set[tuple[int, str]]:
    """(index, input) of every input that has a record without an error: what `--resume` skips."""
    return {(record["index"], record.get(key)) for record in records if "error" not in record}


def tidy(out_dir: Path, key: str) -> list[dict]:
    """Merge the run's files into `manifest.jsonl`, in input order, each input once: its files (or description) when
    it has them, else its latest error (a resumed run appends the retries of failed inputs after the old lines). An
    index whose input (`key`: prompt or image) changed keeps only the new input's lines."""
    latest: dict[int, list[dict]] = {}
    for record in read_manifest(out_dir):
        lines = latest.get(record["index"], [])
        if lines and lines[0].get(key) != record.get(key):
            lines = []
        if "error" not in record:
            lines = [*(line for line in lines if "error" not in line), record]
        elif all("error" in line for line in lines):
            lines = [record]
        latest[record["index"]] = lines
    records = [record for index in sorted(latest) for record in latest[index]]
    atomic_write(manifest_path(out_dir, 0), "".join(json.dumps(record) + "\n" for record in records).encode())
    for part in _parts(out_dir):
        part.unlink()
    return records
