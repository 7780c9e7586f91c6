"""Edit instructions of the shapes world: what the bundled instruction-edit model understands.

Each instruction changes one attribute: `make the star green`, `change the background to yellow`,
`turn the circle into a square`, `make it small`, `move it to the left`. The bundled model is conditioned on
the edited caption (the picture's description with the instruction applied), so its text encoder sees only
the caption grammar it was trained on, and every attribute the edit keeps is spelled out.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .grammar import COLORS, POSITIONS, SHAPES, SIZES, Attributes, parse

_SHAPE = "|".join(SHAPES)
_COLOR = "|".join(COLORS)
_SIZE = "|".join(SIZES)
_TARGET = {"center": "in the center", "middle": "in the center", "left": "on the left", "right": "on the right",
           "top": "at the top", "bottom": "at the bottom"}  # fmt: skip
_SUBJECT = rf"(?:it|the (?:shape|{_SHAPE}))"
_PATTERNS = [
    ("background", re.compile(rf"^(?:change|make|turn|paint) the background (?:to |into )?(?:a )?(?P<value>{_COLOR})$")),
    ("shape", re.compile(rf"^(?:turn|change|make) {_SUBJECT} (?:into |to )?(?:a |an )?(?P<value>{_SHAPE})$")),
    ("color", re.compile(rf"^(?:make|paint|color|colour|turn|change) {_SUBJECT} (?:to )?(?P<value>{_COLOR})$")),
    ("size", re.compile(rf"^(?:make|turn) {_SUBJECT} (?P<value>{_SIZE}|smaller|larger|bigger)$")),
    ("position", re.compile(rf"^(?:move|put|place) {_SUBJECT} (?:to |on |in |at )?(?:the )?(?P<value>{'|'.join(_TARGET)})$")),
]
_ALIASES = {"smaller": "small", "larger": "large", "bigger": "large"}
UNDERSTOOD = (
    "make the star green · change the background to yellow · turn the circle into a square · "
    "make it small / large · move it to the left / right / top / bottom / center "
    f"(colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)})"
)


@dataclass(frozen=True)
class Edit:
    """One attribute set to a new value."""

    attribute: str  # one of ATTRIBUTE_NAMES
    value: str

    def apply(self, scene: Attributes) -> Attributes:
        return scene.replace(**{self.attribute: self.value})


def parse_instruction(text: str) -> Edit:
    """The edit an instruction asks for; `ValueError` listing what is understood otherwise."""
    words = " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())
    words = re.sub(r"^(?:please )?", "", words)
    for attribute, pattern in _PATTERNS:
        match = pattern.match(words)
        if match:
            value = match["value"]
            value = _TARGET.get(value, value) if attribute == "position" else _ALIASES.get(value, value)
            return Edit(attribute, value)
    raise ValueError(f"The bundled model does not understand the instruction {text!r}. It understands: {UNDERSTOOD}.")


def edited_caption(description: str, instruction: str) -> str:
    """The caption the bundled model draws: the picture's description with the instruction applied."""
    edit = parse_instruction(instruction)
    try:
        scene = parse(description)
    except ValueError:
        raise ValueError(f"The picture is not a shapes-world scene the bundled model can edit (it reads as {description!r}).") from None
    try:
        return edit.apply(scene).caption
    except ValueError as error:
        raise ValueError(f"The instruction {instruction!r} does not fit the picture ({description!r}): {error}") from None


_PHRASES = {
    "color": ["make the {shape} {value}", "make it {value}", "paint the {shape} {value}", "color it {value}"],
    "background": ["change the background to {value}", "make the background {value}", "paint the background {value}"],
    "shape": ["turn the {shape} into a {value}", "make it a {value}", "change the {shape} into a {value}"],
    "size": ["make it {value}", "make the {shape} {value}"],
    "position": ["move it to the {value}", "move the {shape} to the {value}", "put it on the {value}"],
}
_OPTIONS = {"color": COLORS, "background": COLORS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}


def random_edit(scene: Attributes, rng: random.Random) -> tuple[str, Edit]:
    """An instruction that changes one attribute of `scene` to a different, allowed value, and its edit."""
    attribute = rng.choice(list(_OPTIONS))
    taken = {scene.color, scene.background} if attribute in ("color", "background") else {getattr(scene, attribute)}
    value = rng.choice([v for v in _OPTIONS[attribute] if v not in taken])
    word = value.split()[-1] if attribute == "position" else value
    instruction = rng.choice(_PHRASES[attribute]).format(shape=scene.shape, value=word)
    return instruction, Edit(attribute, value)
