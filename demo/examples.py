"""Example inputs for the image tabs: scenes drawn by the shapes world's renderer."""

from __future__ import annotations

import tempfile
from pathlib import Path

from models.shapes import render

EXAMPLE_CAPTIONS = [
    "a large green circle in the center on a white background",
    "a small red star at the top on a blue background",
    "a large purple square on the left on a yellow background",
    "a small orange triangle at the bottom on a gray background",
]


def example_images() -> list[str]:
    """PNG paths of rendered example scenes (written once to the temp folder)."""
    folder = Path(tempfile.gettempdir()) / "depict-examples"
    folder.mkdir(exist_ok=True)
    paths = []
    for index, caption in enumerate(EXAMPLE_CAPTIONS):
        path = folder / f"example-{index}.png"
        if not path.exists():
            render(caption, seed=index).save(path)
        paths.append(str(path))
    return paths
