"""An `Engine` whose jobs run on a `python -m models serve` deployment (the app's `--backend URL`): presets,
adapters and styles are read here, nothing is loaded here, and each job is one HTTP request to the replicas."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import numpy as np
from PIL import Image

from .engine import Engine
from .errors import PresetUnavailable
from .metadata import read_metadata
from .presets import DEFAULT_PRESET
from .requests import PICTURES, REPLICA_HEADER
from .result import Result

TIMEOUT_S = 600.0


def post(url: str, job: str, options: dict, timeout: float = TIMEOUT_S) -> tuple[int, Message, bytes]:
    """POST a job's JSON options to a deployment: (status, headers, body), errors included."""
    request = urllib.request.Request(f"{url.rstrip('/')}/{job}", json.dumps(options).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the operator's own URL
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def encoded(picture) -> str:
    """A picture as the deployment takes it: base64 of its file's bytes (a PIL image or array: as PNG)."""
    if isinstance(picture, (str, Path)):
        data = Path(picture).read_bytes()
    elif isinstance(picture, (bytes, bytearray)):
        data = bytes(picture)
    else:
        buffer = io.BytesIO()
        (Image.fromarray(picture) if isinstance(picture, np.ndarray) else picture).save(buffer, format="PNG")
        data = buffer.getvalue()
    return base64.b64encode(data).decode()


def result_of(body: bytes, media_type: str, replica: str | None = None) -> Result | str:
    """A deployment's answer as the engine's: a `Result` of its PNGs and their parameters (with the `replica` that
    made them), or describe's text."""
    if media_type.startswith("image/png"):
        pngs = [body]
    else:
        answer = json.loads(body)
        if "description" in answer:
            return answer["description"]
        pngs = [base64.b64decode(image) for image in answer["images"]]
    images = [Image.open(io.BytesIO(png)) for png in pngs]
    for image in images:
        image.load()
    metadata = [read_metadata(image) for image in images]
    seeds = [meta.get("seed") for meta in metadata]
    return Result(images, {**metadata[0], "seeds": seeds, "num_images": len(images), "replica": replica})


class RemoteEngine(Engine):
    """`Engine`'s jobs, answered by the deployment at `url`. Progress and Stop are not relayed."""

    def __init__(self, url: str, preset: str = DEFAULT_PRESET, timeout: float = TIMEOUT_S):
        super().__init__(preset=preset)
        self.url, self.timeout = url.rstrip("/"), timeout

    def run(self, job: str, **options) -> Result | str:
        options.pop("control", None)
        options = {name: encoded(value) if name in PICTURES and value is not None else value
                   for name, value in options.items()}  # fmt: skip
        try:
            status, headers, body = post(self.url, job, options, self.timeout)
        except OSError as error:
            raise PresetUnavailable(f"The backend {self.url} cannot be reached ({error}).") from error
        if status >= 400:
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body[:200].decode(errors="replace") or f"HTTP {status}"
            raise (ValueError if status < 500 else PresetUnavailable)(message)
        return result_of(body, headers.get("content-type", ""), headers.get(REPLICA_HEADER))

    def text_to_image(self, prompt: str, control=None, **options) -> Result:
        return self.run("text_to_image", prompt=prompt, **options)

    def describe(self, image, preset: str | None = None, detail: str = "short") -> str:
        return self.run("describe", image=image, preset=preset, detail=detail)

    def regenerate(self, image, description: str, control=None, **options) -> Result:
        return self.run("regenerate", image=image, description=description, **options)

    def style_transfer(self, image, style: str | None = None, style_image=None, control=None, **options) -> Result:
        return self.run("style_transfer", image=image, style=style, style_image=style_image, **options)

    def inpaint(self, image, mask, prompt: str, control=None, **options) -> Result:
        return self.run("inpaint", image=image, mask=mask, prompt=prompt, **options)

    def instruct_edit(self, image, instruction: str, control=None, **options) -> Result:
        return self.run("instruct_edit", image=image, instruction=instruction, **options)

    def upscale(self, image, scale: int = 2, preset: str | None = None, control=None) -> Result:
        return self.run("upscale", image=image, scale=scale, preset=preset)
