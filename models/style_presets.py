"""Style presets: prompt templates from a styles file, as A1111's `styles.csv` and Fooocus' styles.

A CSV file with the header `name,prompt,negative_prompt`. `{prompt}` in a template stands for the request's prompt
(a template without it is appended after a comma, as A1111 does); the negative prompt is joined to the request's.
Shipped: `models/styles.csv`; the user's file (env `DEPICT_STYLES`, default `./styles.csv`) adds styles and
overrides shipped ones of the same name. A malformed line (a bad byte, a missing column, a stray brace) is skipped with
a warning naming the file and line; the other styles still load, and a file that cannot be read at all holds none.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from .settings import styles_file
from .text_files import decode, undecodable

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).with_name("styles.csv")
COLUMNS = ("name", "prompt", "negative_prompt")


@dataclass(frozen=True)
class StylePreset:
    """A named prompt template and the negative prompt it adds."""

    name: str
    prompt: str
    negative_prompt: str = ""

    def apply(self, prompt: str, negative_prompt: str = "") -> tuple[str, str]:
        """The request's prompt and negative prompt with this style's templates applied."""
        if "{prompt}" in self.prompt:
            styled = self.prompt.replace("{prompt}", prompt)
        else:
            styled = ", ".join(part for part in (prompt, self.prompt) if part.strip())
        negative = ", ".join(part for part in (negative_prompt, self.negative_prompt) if part.strip())
        return styled, negative


def _problem(row: dict) -> str | None:
    """Why a row cannot be a style, or None."""
    if None in row or any(row.get(column) is None for column in COLUMNS[:2]):
        return f"it must have the {len(COLUMNS)} columns {', '.join(COLUMNS)}"
    bad_text = undecodable("".join(value or "" for value in row.values()))
    if bad_text:
        return bad_text
    if not row["name"].strip():
        return "its name is empty"
    for field in ("prompt", "negative_prompt"):
        text = (row.get(field) or "").replace("{prompt}", "")
        if "{" in text or "}" in text:
            return f"its {field} has a brace other than {{prompt}}"
    return None


def _rows(path: Path):
    """(line number, row) for each CSV record of the file; a record `csv` cannot read is logged and skipped."""
    try:
        text = decode(path.read_bytes()) if path.is_file() else ""
    except OSError as error:
        log.warning("styles file %s not read: %s", path, error)
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=None)
    try:
        header = reader.fieldnames or list(COLUMNS)  # an empty file holds no styles, and no error
    except csv.Error:
        header = []
    if not set(COLUMNS[:2]) <= set(header):
        log.warning("styles file %s line 1 skipped, and with it the file: its header must be %s, got %r", path,
                    ",".join(COLUMNS), header)  # fmt: skip
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            log.warning("styles file %s line %d skipped: %s", path, reader.reader.line_num, error)
            continue
        yield reader.line_num, row


def read_styles(path: str | Path) -> dict[str, StylePreset]:
    """The styles of one file, by name; malformed lines are logged and skipped, a missing file holds none."""
    path = Path(path)
    found: dict[str, StylePreset] = {}
    for line, row in _rows(path):
        problem = _problem(row)
        if problem:
            log.warning("styles file %s line %d skipped: %s", path, line, problem)
            continue
        name = row["name"].strip()
        found[name] = StylePreset(name, row["prompt"].strip(), (row.get("negative_prompt") or "").strip())
    return found


def style_presets() -> dict[str, StylePreset]:
    """The shipped styles and the user's (which win on a name both have)."""
    return {**read_styles(SHIPPED), **read_styles(styles_file())}
