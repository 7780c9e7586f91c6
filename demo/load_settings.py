""""Load settings": drop a PNG made by Depict (or A1111) and the tab's widgets take its parameters."""

from __future__ import annotations

import gradio as gr

from models.images import load_image
from models.metadata import read_metadata
from models.schedulers import A1111_NAMES, SCHEDULERS


def widget_value(key: str, value, presets: list[str]):
    """A stored parameter as its widget shows it; None when the widget cannot take it."""
    if key == "adapters":
        return ", ".join(f"{name}:{weight:g}" for name, weight in (value or {}).items())
    if key == "scheduler":
        name = A1111_NAMES.get(str(value).lower(), value)
        return name if name in SCHEDULERS else ""
    if key == "preset":
        return value if value in presets else None
    return value


def read_settings(path: str | None) -> dict:
    """The parameters stored in an uploaded PNG (size-checked before decoding); {} when it has none."""
    if not path:
        return {}
    try:
        load_image(path, name="settings file")  # size-checked and decodable before its chunks are trusted
        meta = read_metadata(path)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    if not meta:
        raise gr.Error("This image carries no generation settings (no Depict or A1111 parameters in it).")
    return meta


def settings_loader(fields: dict, presets: list[str]) -> gr.File:
    """A drop zone that restores `fields` (parameter name -> widget) from a PNG's metadata."""
    upload = gr.File(label="Load settings from a PNG", file_types=[".png"], height=80,
                     elem_classes=["depict-settings-loader"])  # fmt: skip
    keys = list(fields)

    def restore(path):
        meta = read_settings(path)
        values = [widget_value(key, meta[key], presets) if key in meta else None for key in keys]
        return [gr.update() if value is None else gr.update(value=value) for value in values]

    upload.upload(restore, upload, list(fields.values()), api_visibility="private")
    return upload
