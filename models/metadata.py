"""Generation parameters inside PNGs: an A1111-style `parameters` text chunk plus a JSON chunk with everything."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from PIL import Image, PngImagePlugin

JSON_KEY = "depict"
A1111_KEY = "parameters"
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


def parse_a1111(text: str) -> dict:
    """Read A1111's `parameters` text: prompt, negative prompt, then `Label: value` pairs."""
    lines = text.strip().split("\n")
    settings_line = lines[-1] if len(lines) > 1 and re.search(r"(^|, )Steps: ", lines[-1]) else ""
    body = lines[:-1] if settings_line else lines
    negative_at = next((i for i, line in enumerate(body) if line.startswith("Negative prompt:")), len(body))
    meta: dict = {"prompt": "\n".join(body[:negative_at]).strip()}
    negative = "\n".join(body[negative_at:]).removeprefix("Negative prompt:").strip()
    meta["negative_prompt"] = negative
    for label, value in re.findall(r'\s*([\w ]+):\s*("(?:\\.|[^"])*"|[^,]*)(?:,|$)', settings_line):
        label, value = label.strip(), value.strip().strip('"')
        if label == "Size":
            width, _, height = value.partition("x")
            meta["width"], meta["height"] = int(width), int(height)
        elif label in _A1111_FIELDS:
            meta[_A1111_FIELDS[label]] = value
    for key, cast in (("steps", int), ("seed", int), ("guidance", float), ("strength", float), ("image_guidance", float)):
        if key in meta:
            meta[key] = cast(meta[key])
    return meta


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
    """Parameters stored in a PNG: our JSON chunk if present, else A1111's text; {} when there are none."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    text = getattr(image, "text", None) or image.info
    if JSON_KEY in text:
        return json.loads(text[JSON_KEY])
    if A1111_KEY in text:
        return parse_a1111(text[A1111_KEY])
    return {}
