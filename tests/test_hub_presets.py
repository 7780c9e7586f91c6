"""The hub presets rehearsed: every job on every hub preset, loaded by the real ids from a faithful offline hub cache
(`tests/hub_cache.py`) that holds exactly the files the README's `hf download` lines fetch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from huggingface_hub import constants, try_to_load_from_cache
from PIL import Image
from safetensors.torch import load_file

from models import Engine, graphs, hub
from models.images import fit_size
from models.presets import HUB_PRESETS
from tests.hub_cache import build_hub_cache

ROOT = Path(__file__).resolve().parent.parent
HUB = tuple(HUB_PRESETS)
CONTENT = Image.new("RGB", (96, 64), (200, 40, 40))
REFERENCE = Image.new("RGB", (64, 64), (30, 60, 200))
MASK = Image.new("L", (96, 64), 0)
MASK.paste(255, (16, 8, 64, 48))
WORKING = fit_size(CONTENT.size, 512)  # the hub presets work at 512 px on the longer side


def wanted_files() -> dict[str, set[str]]:
    """Repo -> every file some hub preset loads, in fp32 (CPU) or fp16 (CUDA)."""
    wanted: dict[str, set[str]] = {}
    for preset in HUB_PRESETS.values():
        for fp16 in (False, True):
            for repo, paths in hub.files(preset, fp16).items():
                wanted.setdefault(repo, set()).update(paths)
    return wanted


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """`HF_HUB_CACHE` (and huggingface_hub's copy of it, read when this process imported it) at the fabricated cache."""
    root = build_hub_cache(tmp_path_factory.mktemp("hf_home") / "hub", wanted_files())
    patch = pytest.MonkeyPatch()
    patch.setenv("HF_HUB_CACHE", str(root))
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("DEPICT_ADAPTERS", str(tmp_path_factory.mktemp("no_user_adapters")))
    patch.setattr(constants, "HF_HUB_CACHE", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def engine(hub_cache):
    return Engine()


JOBS = {
    "text_to_image": (lambda e, p: e.text_to_image("a red fox in the snow", preset=p, width=128, height=96), (128, 96)),
    "describe": (lambda e, p: e.describe(CONTENT, preset=p), str),
    "describe_detailed": (lambda e, p: e.describe(CONTENT, preset=p, detail="detailed"), str),
    "regenerate": (lambda e, p: e.regenerate(CONTENT, "a red square", preset=p), (512, 512)),
    "regenerate_keep_layout": (lambda e, p: e.regenerate(CONTENT, "a red square", preset=p, keep_layout=0.5), WORKING),
    "regenerate_structure": (lambda e, p: e.regenerate(CONTENT, "a red square", preset=p, structure=1.0), WORKING),
    "style_preset": (lambda e, p: e.style_transfer(CONTENT, "Watercolor", preset=p), WORKING),
    "style_reference": (lambda e, p: e.style_transfer(CONTENT, style_image=REFERENCE, preset=p), WORKING),
    "inpaint": (lambda e, p: e.inpaint(CONTENT, MASK, "a blue circle", preset=p), WORKING),
    "instruct_edit": (lambda e, p: e.instruct_edit(CONTENT, "make it blue", preset=p), WORKING),
    "upscale": (lambda e, p: e.upscale(CONTENT.resize((40, 24)), scale=4, preset=p), (160, 96)),
}
REFUSED = {("sd-turbo", "style_reference"): "Preset 'sd-turbo' takes no `style_image`: it has no IP-Adapter",
           ("sd-turbo", "regenerate_structure"): "preset 'sd-turbo' has none: no canny ControlNet for SD 2.1"}


@pytest.mark.parametrize("preset", HUB)
@pytest.mark.parametrize("job", JOBS)
def test_every_job_on_every_hub_preset(engine, preset, job):
    run, expected = JOBS[job]
    if (preset, job) in REFUSED:
        with pytest.raises(ValueError, match=re.escape(REFUSED[preset, job])):
            run(engine, preset)
        return
    result = run(engine, preset)
    if expected is str:
        assert isinstance(result, str)
    else:
        assert [image.size for image in result.images] == [expected] and result.metadata["preset"] == preset


def test_hub_presets_are_available_from_the_cache(engine):
    listed = {p["name"]: p for p in engine.presets()}
    assert all(listed[name]["available"] and not listed[name]["missing"] for name in HUB), listed


def test_lcm_lora_fused_tiny_autoencoders_and_florence_captioner_load(engine, hub_cache):
    loaded = engine.load("sd15-lcm")
    assert loaded.adapters.fused == {"speed": 1.0}
    lora = load_file(try_to_load_from_cache("latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors"))
    plain = UNet2DConditionModel.from_pretrained(loaded.preset.text_to_image, subfolder="unet").state_dict()
    fused = loaded.base.unet.state_dict()
    changed = [key for key in plain if not torch.equal(plain[key], fused[key])]
    assert len(changed) == sum(key.endswith(".lora_down.weight") for key in lora) > 70  # every kohya layer landed
    assert type(loaded.tiny_vae()).__name__ == "AutoencoderTiny"
    assert type(engine.load("sdxl-turbo").tiny_vae()).__name__ == "AutoencoderTiny"
    captioner = loaded.pipeline("captioner")
    assert type(captioner.model).__name__ == "Florence2ForConditionalGeneration"
    assert captioner.details == ("short", "detailed")


@pytest.mark.parametrize("preset", ["sd-turbo", "sdxl-turbo"])
def test_repeated_prompts_reuse_their_embeddings_on_hub_presets(engine, preset):
    loaded = engine.load(preset)
    loaded.prompts.clear()
    first = engine.text_to_image("a red fox in the snow", preset=preset, width=64, height=64, seed=2)
    hits = loaded.prompts.hits
    again = engine.text_to_image("a red fox in the snow", preset=preset, width=64, height=64, seed=2)
    assert loaded.prompts.hits == hits + 1
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))
    other = engine.text_to_image("a blue fox in the snow", preset=preset, width=64, height=64, seed=2)
    assert loaded.prompts.hits == hits + 1 and not np.array_equal(np.asarray(other.images[0]), np.asarray(again.images[0]))


def test_reference_image_changes_the_picture_and_leaves_other_jobs_untouched(engine):
    engine.text_to_image("a red fox", preset="sdxl-turbo", width=128, height=128)  # eager; its graphs made after
    assert graphs.wait_for_builds(timeout=300)  # so that `before` and `after` both run them
    before = engine.text_to_image("a red fox", preset="sdxl-turbo", width=128, height=128).images[0]
    plain = engine.style_transfer(CONTENT, "Watercolor", preset="sdxl-turbo").images[0]
    referenced = engine.style_transfer(CONTENT, "Watercolor", style_image=REFERENCE, style_weight=2.0,
                                       preset="sdxl-turbo")  # fmt: skip
    after = engine.text_to_image("a red fox", preset="sdxl-turbo", width=128, height=128).images[0]
    assert referenced.metadata["style_image"] is True
    assert plain.tobytes() != referenced.images[0].tobytes()
    assert before.tobytes() == after.tobytes()  # the IP-Adapter is switched off again
    assert engine.load("sdxl-turbo").base.unet.encoder_hid_proj is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e.style_transfer(CONTENT, style_image=b"not an image", preset="sd15-lcm"),
         "`style_image` is not a readable image file"),
        (lambda e: e.style_transfer(CONTENT, "Nonexistent", preset="sd15-lcm"), "`style` names an unknown adapter 'Nonexistent', and no style preset"),
        (lambda e: e.style_transfer(CONTENT, preset="sd15-lcm"), "`style` is empty"),
        (lambda e: e.describe(CONTENT, preset="sd-turbo", detail="long"), "`detail` must be one of short, detailed"),
    ],
)  # fmt: skip
def test_bad_style_requests_on_hub_presets_get_a_sentence(engine, call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(engine)
    assert engine.style_transfer(CONTENT, style_image=REFERENCE, preset="sd15-lcm").images  # still serving


def test_fp16_variant_where_the_repo_has_one(engine, hub_cache):
    assert hub.variant("stabilityai/sd-turbo", torch.float16) == "fp16"
    assert hub.variant("timbrooks/instruct-pix2pix", torch.float16) is None  # its repo has no fp16 files
    assert hub.variant("stabilityai/sd-turbo", torch.float32) is None
    half = Engine(device="cpu", dtype="float16")
    assert half.load("sd-turbo").base.unet.dtype == torch.float16
    assert half.load("sd-turbo").pipeline("instruct_edit").unet.dtype == torch.float16


def test_readme_download_lines_are_the_files_the_presets_load():
    readme = (ROOT / "README.md").read_text()
    for preset in HUB_PRESETS.values():
        for line in hub.commands(preset):
            assert line in readme, line


def test_hf_home_is_honoured_by_a_fresh_process(hub_cache):
    """`HF_HOME` (whose `hub/` is the cache) read at import, as on a machine after `hf download`."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    env.update(HF_HOME=str(hub_cache.parent), HF_HUB_OFFLINE="1")
    code = "from models.presets import presets; print([p.name for p in presets().values() if p.available()])"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert all(name in run.stdout for name in HUB), run.stdout
