"""The shapes world: a caption grammar, a renderer and a judge, the bundled models' ground truth."""

from .grammar import (
    ATTRIBUTE_NAMES,
    COLORS,
    GRAMMAR,
    PALETTE,
    POSITIONS,
    SHAPES,
    SIZES,
    Attributes,
    all_attributes,
    parse,
    random_attributes,
    vocabulary,
)
from .judge import agreement, judge, judge_caption
from .render import IMAGE_SIZE, render, render_attributes
from .scenes import random_scenes, region_mask

__all__ = [
    "ATTRIBUTE_NAMES", "COLORS", "GRAMMAR", "IMAGE_SIZE", "PALETTE", "POSITIONS", "SHAPES", "SIZES",
    "Attributes", "agreement", "all_attributes", "judge", "judge_caption", "parse", "random_attributes",
    "random_scenes", "region_mask", "render", "render_attributes", "vocabulary",
]  # fmt: skip
