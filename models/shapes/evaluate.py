"""Scoring models of the shapes world with its judge: the share of attributes read back right."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from PIL import Image

from .grammar import ATTRIBUTE_NAMES, Attributes, random_attributes
from .judge import agreement, judge


def tally(pairs: Iterable[tuple[Attributes, Attributes | None]]) -> dict[str, float]:
    """(expected, found) pairs -> share right per attribute and for all five at once (None found: all wrong)."""
    hits = {name: 0 for name in (*ATTRIBUTE_NAMES, "all")}
    count = 0
    for expected, found in pairs:
        verdict = agreement(expected, found) if found is not None else {name: False for name in ATTRIBUTE_NAMES}
        for name, ok in verdict.items():
            hits[name] += ok
        hits["all"] += all(verdict.values())
        count += 1
    return {name: round(value / max(count, 1), 3) for name, value in hits.items()}


def random_scenes(count: int, seed: int) -> list[Attributes]:
    rng = random.Random(seed)
    return [random_attributes(rng) for _ in range(count)]


def score_generator(generate: Callable[[list[str], int], list[Image.Image]], count: int, seed: int,
                    chunk: int = 25) -> dict[str, float]:  # fmt: skip
    """Judge images made by `generate(captions, seed)` for `count` random captions."""
    scenes = random_scenes(count, seed)
    pairs = []
    for start in range(0, count, chunk):
        batch = scenes[start : start + chunk]
        images = generate([s.caption for s in batch], seed + start)
        pairs += [(scene, judge(image)) for scene, image in zip(batch, images)]
    return tally(pairs)


def score_text_to_image(engine, count: int, seed: int = 0, **options) -> dict[str, float]:
    """Text -> image through the engine: does the judge read each caption back?"""

    def generate(captions, chunk_seed):
        return [engine.text_to_image(c, seed=chunk_seed + i, **options).images[0] for i, c in enumerate(captions)]

    return score_generator(generate, count, seed)


def score_describe(engine, count: int, seed: int = 0) -> dict[str, float]:
    """Describe on fresh renders: exact caption match, and per attribute (captions parsed by the grammar)."""
    from .grammar import parse
    from .render import render_attributes

    pairs, exact = [], 0
    for index, scene in enumerate(random_scenes(count, seed)):
        text = engine.describe(render_attributes(scene, seed=seed + index))
        exact += text == scene.caption
        try:
            pairs.append((scene, parse(text)))
        except ValueError:  # not even in the grammar: every attribute wrong
            pairs.append((scene, None))
    return {"exact": round(exact / max(count, 1), 3), **tally(pairs)}


def score_regenerate(engine, count: int, seed: int = 0, keep_layout: float = 0.0) -> dict[str, float]:
    """Describe -> regenerate on fresh renders: attributes of the original that the regenerated image keeps."""
    from .render import render_attributes

    pairs = []
    for index, scene in enumerate(random_scenes(count, seed)):
        original = render_attributes(scene, seed=seed + index)
        result = engine.regenerate(original, engine.describe(original), keep_layout=keep_layout, seed=seed + index)
        pairs.append((scene, judge(result.images[0])))
    return tally(pairs)
