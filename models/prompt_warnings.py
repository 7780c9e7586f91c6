"""What a request's text asks that the preset's models cannot draw, said plainly (the shapes world's vocabulary)."""

from __future__ import annotations

import re

from .presets import Preset
from .shapes.grammar import COLORS, GRAMMAR, POSITIONS, SHAPES, SIZES, parse, vocabulary

TEXT_FIELDS = ("prompt", "description")  # the params fields a job draws from
_GRAMMAR_HELP = (
    f"they draw only prompts of the form '{GRAMMAR}' (size: {', '.join(SIZES)}; color and "
    f"background: {', '.join(COLORS)}; shape: {', '.join(SHAPES)}; position: {', '.join(POSITIONS)}), "
    "e.g. 'a small red star at the top on a blue background'"
)


def unknown_words(text: str) -> list[str]:
    """The words of `text` outside the shapes world's vocabulary, each once, in order."""
    known = set(vocabulary())
    words = re.findall(r"\w+(?:['-]\w+)*", text.lower())
    return list(dict.fromkeys(word for word in words if word not in known))


def prompt_warnings(params, preset: Preset) -> list[str]:
    """For a shapes-world preset, one warning per text field the models will not understand; [] otherwise."""
    if not preset.shapes_world:
        return []
    warnings = []
    for name in TEXT_FIELDS:
        text = getattr(params, name, "") or ""
        unknown = unknown_words(text)
        if unknown:
            words = ", ".join(f"'{word}'" for word in unknown)
            warnings.append(f"The bundled models do not know the words {words} (in `{name}`); {_GRAMMAR_HELP}.")
        elif text.strip() and not _parses(text):
            warnings.append(f"`{name}` {text.strip()!r} is not in the bundled models' grammar; {_GRAMMAR_HELP}.")
    return warnings


def _parses(text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True
