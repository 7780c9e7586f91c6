"""The shapes world's caption grammar.

`a {size} {color} {shape} {position} on a {background} background`, e.g.
`a small red star at the top on a blue background`.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import asdict, dataclass

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 215, 50),
    "green": (50, 170, 70),
    "blue": (40, 90, 220),
    "purple": (140, 70, 200),
    "pink": (245, 150, 190),
    "brown": (130, 80, 40),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
COLORS = tuple(PALETTE)
SIZES = ("small", "large")
SHAPES = ("circle", "square", "triangle", "star", "cross")
POSITIONS = ("in the center", "on the left", "on the right", "at the top", "at the bottom")
ATTRIBUTE_NAMES = ("size", "color", "shape", "position", "background")

_CAPTION = re.compile(
    r"^a (?P<size>\w+) (?P<color>\w+) (?P<shape>\w+) (?P<position>in the center|on the left|on the right"
    r"|at the top|at the bottom) on a (?P<background>\w+) background$"
)
GRAMMAR = "a {size} {color} {shape} {position} on a {background} background"


@dataclass(frozen=True)
class Attributes:
    """One scene of the shapes world."""

    size: str
    color: str
    shape: str
    position: str
    background: str

    def __post_init__(self):
        allowed = {"size": SIZES, "color": COLORS, "shape": SHAPES, "position": POSITIONS, "background": COLORS}
        for name, values in allowed.items():
            value = getattr(self, name)
            if value not in values:
                raise ValueError(f"`{name}` must be one of {', '.join(values)}; got {value!r}.")
        if self.color == self.background:
            raise ValueError(f"The shape colour and the background must differ; both are {self.color!r}.")

    @property
    def caption(self) -> str:
        return GRAMMAR.format(**asdict(self))

    def replace(self, **changes) -> Attributes:
        return Attributes(**{**asdict(self), **changes})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def parse(caption: str) -> Attributes:
    """Attributes of a caption in the world's grammar; `ValueError` naming the grammar otherwise."""
    text = " ".join(str(caption).strip().lower().rstrip(".").split())
    match = _CAPTION.match(text)
    if match is None:
        raise ValueError(f"Caption {caption!r} is not in the shapes grammar: {GRAMMAR!r}.")
    return Attributes(**match.groupdict())


def random_attributes(rng: random.Random) -> Attributes:
    """A uniformly drawn scene (colour and background always differ)."""
    color, background = rng.sample(COLORS, 2)
    return Attributes(rng.choice(SIZES), color, rng.choice(SHAPES), rng.choice(POSITIONS), background)


def all_attributes() -> list[Attributes]:
    """Every scene the grammar allows (5,500)."""
    return [
        Attributes(size, color, shape, position, background)
        for size, color, shape, position, background in itertools.product(SIZES, COLORS, SHAPES, POSITIONS, COLORS)
        if color != background
    ]


def vocabulary() -> list[str]:
    """Every word a caption can contain."""
    words = {"a", "on", "background"}
    for phrase in (*SIZES, *COLORS, *SHAPES, *POSITIONS):
        words.update(phrase.split())
    return sorted(words)
