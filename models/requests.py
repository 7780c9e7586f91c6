"""A job asked for by name with JSON options, as the HTTP backend (`python -m models serve`) receives it: checked
against the job's params, its pictures decoded from base64, run on an `Engine`, and answered as PNG bytes carrying
their parameters (describe: its text as JSON). The Gradio page's `--backend` client sends the same shape."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import MISSING, dataclass, fields

from .engine import Engine
from .errors import OutOfMemory, PresetUnavailable
from .jobs import (
    DescribeParams,
    InpaintParams,
    InstructEditParams,
    RegenerateParams,
    StyleTransferParams,
    TextToImageParams,
    UpscaleParams,
)
from .metadata import png_bytes

JOBS = {"text_to_image": TextToImageParams, "describe": DescribeParams, "regenerate": RegenerateParams,
        "style_transfer": StyleTransferParams, "inpaint": InpaintParams,
        "instruct_edit": InstructEditParams, "upscale": UpscaleParams}  # fmt: skip
PICTURES = ("image", "mask", "style_image", "structure_image")  # the fields that take a picture
REPLICA_HEADER = "X-Depict-Replica"  # names the replica that answered
USER_ERRORS = (ValueError, PresetUnavailable, OutOfMemory)  # answered 4xx with their sentence; the replica goes on


@dataclass
class Answer:
    """What a request gets back: a status, a body and its media type."""

    status: int
    body: bytes
    media_type: str

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        return cls(status, json.dumps({"error": message}).encode(), "application/json")


def picture(value, name: str) -> bytes:
    """A picture sent as base64 text (or a `data:` URL) -> its bytes; the job decodes and checks them."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be a picture as base64 text or a data: URL, got {type(value).__name__}.")
    text = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"`{name}` is not valid base64 ({error}).") from error


def job_options(job: str, options: dict) -> dict:
    """The engine's keyword options for `job`: each name one of its params' fields, those it requires present,
    pictures as bytes. `ValueError` naming the job or the argument otherwise."""
    if job not in JOBS:
        raise ValueError(f"`job` must be one of {', '.join(JOBS)}; got {job!r}.")
    if not isinstance(options, dict):
        raise ValueError(f"the request body must be a JSON object of {job}'s arguments, got {type(options).__name__}.")
    known = {f.name: f for f in fields(JOBS[job])}
    for name in options:
        if name not in known:
            raise ValueError(f"`{name}` is not an argument of {job}; it takes {', '.join(known)}.")
    for name, spec in known.items():
        if spec.default is MISSING and spec.default_factory is MISSING and options.get(name) is None:
            raise ValueError(f"`{name}` is required by {job}.")
    return {name: picture(value, name) if name in PICTURES and value is not None else value
            for name, value in options.items()}  # fmt: skip


def run_job(engine: Engine, job: str, options: dict) -> Answer:
    """Run one request on `engine`: a PNG with its parameters (several images: JSON of base64 PNGs), describe's JSON,
    or a 4xx `Answer` with the sentence of the engine's check."""
    try:
        result = getattr(engine, job)(**job_options(job, options))
    except USER_ERRORS as error:
        return Answer.error(503 if isinstance(error, (PresetUnavailable, OutOfMemory)) else 400, str(error))
    if isinstance(result, str):
        return Answer(200, json.dumps({"description": result}).encode(), "application/json")
    pngs = [png_bytes(image, result.image_metadata(i)) for i, image in enumerate(result.images)]
    if len(pngs) == 1:
        return Answer(200, pngs[0], "image/png")
    images = [base64.b64encode(png).decode() for png in pngs]
    return Answer(200, json.dumps({"images": images}).encode(), "application/json")
