"""Style presets: prompt templates from a styles file, as A1111's `styles.csv` and Fooocus' styles.

A CSV file with the header `name,prompt,negative_prompt`. `{prompt}` in a template stands for the request's prompt
(a template without it is appended after a comma, as A1111 does); the negative prompt is joined to the request's.
Shipped: `models/styles.csv`; the user's file (env `DEPICT_STYLES`, default `./styles.csv`) adds styles and
overrides shipped ones of the same name. A malformed line is skipped with a warning; the other styles still load.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from .settings import styles_file

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
    if not row["name"].strip():
        return "its name is empty"
    for field in ("prompt", "negative_prompt"):
        text = (row.get(field) or "").replace("{prompt}", "")
        if "{" in text or "}" in text:
            return f"its {field} has a brace other than {{prompt}}"
    return None


def read_styles(path: str | Path) -> dict[str, StylePreset]:
    """The styles of one file, by name; malformed lines are logged and skipped, a missing file holds none."""
    path = Path(path)
    if not path.is_file():
        return {}
    found: dict[str, StylePreset] = {}
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream, restkey=None)
        for row in reader:
            problem = _problem(row)
            if problem:
                log.warning("styles file %s line %d skipped: %s", path, reader.line_num, problem)
                continue
            name = row["name"].strip()
            found[name] = StylePreset(name, row["prompt"].strip(), (row.get("negative_prompt") or "").strip())
    return found


def style_presets() -> dict[str, StylePreset]:
    """The shipped styles and the user's (which win on a name both have)."""
    return {**read_styles(SHIPPED), **read_styles(styles_file())}
