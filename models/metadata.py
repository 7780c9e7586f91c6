"""Generation parameters inside PNGs: an A1111-style `parameters` text chunk plus a JSON chunk with everything."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from PIL import Image, PngImagePlugin

JSON_KEY = "depict"
A1111_KEY = "parameters"
MAX_TEXT_CHARS = 64 * 1024  # longer parameter text is refused unread: generation settings are far shorter
_SPACES = re.compile(r"\s*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')  # linear: its two alternatives never match the same character
_A1111_FIELDS = {  # A1111 label -> our key
    "Steps": "steps", "Sampler": "scheduler", "CFG scale": "guidance", "Seed": "seed", "Model": "preset",
    "Denoising strength": "strength", "Image CFG scale": "image_guidance",
}  # fmt: skip


def a1111_text(meta: dict) -> str:
    """The `parameters` text A1111 and its readers (civitai, Fooocus, InvokeAI import) understand."""
    fields = {label: meta.get(key) for label, key in _A1111_FIELDS.items()}
    fields["Size"] = f"{meta.get('width')}x{meta.get('height')}"
    if meta.get("adapters"):
        fields["Lora"] = ", ".join(f"{name}: {weight}" for name, weight in meta["adapters"].items())
    settings = ", ".join(f"{label}: {value}" for label, value in fields.items() if value not in (None, ""))
    prompt = meta.get("prompt") or meta.get("description") or meta.get("instruction") or ""
    return f"{prompt}\nNegative prompt: {meta.get('negative_prompt') or ''}\n{settings}"


def _check_length(text: str, key: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"The image's `{key}` text is {len(text):,} characters, more than the {MAX_TEXT_CHARS:,} "
                         "read; it holds no settings Depict can use.")  # fmt: skip


def _unquote(quoted: str) -> str:
    """A value A1111 wrote in double quotes (JSON-escaped)."""
    try:
        return str(json.loads(quoted))
    except ValueError:
        return quoted[1:-1]


def _settings(line: str) -> dict[str, str]:
    """The `Label: value, ...` pairs of A1111's settings line, read once left to right (time linear in its length);
    a value in double quotes may hold commas; text between pairs without a colon is ignored."""
    pairs: dict[str, str] = {}
    at = 0
    while (colon := line.find(":", at)) >= 0:
        label = line[at:colon].rpartition(",")[2].strip()
        start = _SPACES.match(line, colon + 1).end()
        quoted = _QUOTED.match(line, start)
        comma = line.find(",", quoted.end() if quoted else start)
        end = len(line) if comma < 0 else comma
        pairs[label] = _unquote(quoted.group()) if quoted else line[start:end].strip()
        at = end + 1
    return pairs


def _cast(meta: dict) -> dict:
    """Numbers as numbers; a value that is not one is dropped (the other settings still load)."""
    for key, kind in (("steps", int), ("seed", int), ("width", int), ("height", int), ("guidance", float),
                      ("strength", float), ("image_guidance", float)):  # fmt: skip
        if key in meta:
            try:
                meta[key] = kind(meta[key])
            except ValueError:
                del meta[key]
    return meta


def parse_a1111(text: str) -> dict:
    """Read A1111's `parameters` text: prompt, negative prompt, then `Label: value` pairs."""
    _check_length(text, A1111_KEY)
    lines = text.strip().split("\n")
    settings_line = lines[-1] if len(lines) > 1 and re.search(r"(^|, )Steps: ", lines[-1]) else ""
    body = lines[:-1] if settings_line else lines
    negative_at = next((i for i, line in enumerate(body) if line.startswith("Negative prompt:")), len(body))
    meta: dict = {"prompt": "\n".join(body[:negative_at]).strip()}
    negative = "\n".join(body[negative_at:]).removeprefix("Negative prompt:").strip()
    meta["negative_prompt"] = negative
    for label, value in _settings(settings_line).items():
        if label == "Size":
            meta["width"], _, meta["height"] = value.partition("x")
        elif label in _A1111_FIELDS:
            meta[_A1111_FIELDS[label]] = value
    return _cast(meta)


def png_info(meta: dict) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(A1111_KEY, a1111_text(meta))
    info.add_text(JSON_KEY, json.dumps(meta, default=str))
    return info


def png_bytes(image: Image.Image, meta: dict) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(meta))
    return buffer.getvalue()


def save_png(image: Image.Image, meta: dict, path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(png_bytes(image, meta))
    return path


def read_metadata(image: Image.Image | str | Path) -> dict:
    """Parameters stored in a PNG: our JSON chunk if present, else A1111's text; {} when there are none.
    Raises `ValueError` with a sentence when the stored text is too long or not readable."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    text = getattr(image, "text", None) or image.info
    if JSON_KEY in text:
        _check_length(text[JSON_KEY], JSON_KEY)
        try:
            meta = json.loads(text[JSON_KEY])
        except (ValueError, RecursionError) as error:
            raise ValueError(f"The image's `{JSON_KEY}` text is not valid JSON ({error}).") from None
        if not isinstance(meta, dict):
            raise ValueError(f"The image's `{JSON_KEY}` text must be a JSON object, got {type(meta).__name__}.")
        return meta
    if A1111_KEY in text:
        return parse_a1111(text[A1111_KEY])
    return {}
