"""Limits: per-request caps set by environment variables, the upload size cap, and no code from model folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from models import Engine, PresetUnavailable
from models.settings import LIMITS

PROMPT = "a small red star at the top on a blue background"

CAPPED = """
from models import Engine
engine = Engine(preset={preset!r})
for kwargs in ({{"steps": 4}}, {{"width": 264}}, {{"num_images": 3}}):
    try:
        engine.text_to_image({prompt!r}, **kwargs)
    except ValueError as error:
        print(error)
"""


def test_request_caps_follow_environment_variables(tiny_preset):
    env = {**os.environ, "DEPICT_MAX_STEPS": "3", "DEPICT_MAX_SIDE": "256", "DEPICT_MAX_IMAGES": "2"}
    script = CAPPED.format(preset=str(tiny_preset), prompt=PROMPT)
    output = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert output.splitlines() == [
        "`steps` must be a whole number in [1, 3], got 4.",
        "`width` must be a whole number in [8, 256], got 264.",
        "`num_images` must be a whole number in [1, 2], got 3.",
    ]


def test_uploads_over_the_size_limit_are_refused_by_the_server(server):
    upload = f"{server.rstrip('/')}/gradio_api/upload"
    too_big = b"\x89PNG" + b"\0" * (LIMITS.max_upload_bytes + 1)
    response = httpx.post(upload, files={"files": ("big.png", too_big, "image/png")}, timeout=60)
    assert response.status_code == 413, response.text
    small = httpx.post(upload, files={"files": ("ok.png", b"\x89PNG", "image/png")}, timeout=60)
    assert small.status_code == 200


def test_code_in_a_model_folder_is_never_run(tiny_preset, tmp_path):
    folder = shutil.copytree(tiny_preset, tmp_path / "preset")
    index = folder / "text_to_image" / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "_class_name": ["pipeline", "EvilPipeline"]}))
    marker = tmp_path / "code-ran"
    (folder / "text_to_image" / "pipeline.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from diffusers import StableDiffusionPipeline\n\nclass EvilPipeline(StableDiffusionPipeline):\n    pass\n"
    )
    with pytest.raises(PresetUnavailable, match="does not hold a loadable model"):
        Engine(preset=str(folder)).text_to_image(PROMPT)
    assert not marker.exists()
