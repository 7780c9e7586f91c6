"""Example inputs for the image tabs: shipped PNG scenes of the bundled shapes world (`example_images/`)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent / "example_images"


def example_images() -> list[str]:
    """Paths of the shipped example pictures, in their numbered order."""
    return [str(path) for path in sorted(EXAMPLES_DIR.glob("*.png"))]
