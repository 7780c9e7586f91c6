"""What every job returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Result:
    """Images, the metadata that reproduces them, where the time went (seconds) and, for a structure-guided run, the
    edge map it followed."""

    images: list[Image.Image]
    metadata: dict
    timings: dict[str, float] = field(default_factory=dict)
    condition: Image.Image | None = None  # what a structure-guided run followed: the input's edge map

    def image_metadata(self, index: int) -> dict:
        """The metadata of one image: its own seed, a batch of one."""
        seeds = self.metadata.get("seeds") or [self.metadata.get("seed")]
        return {**self.metadata, "seed": seeds[index], "seeds": [seeds[index]], "num_images": 1}
