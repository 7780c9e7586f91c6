"""The engine's fast paths: prompt-embedding cache, tiny-autoencoder decode, CPU bf16 flags, channels_last
(the speed policy that picks them: tests/test_speed_policy.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from models import Engine
from models.cpu import cpu_has_native_bf16
from tests.test_engine import PROMPT, pixels


def test_repeated_prompts_reuse_their_embeddings_with_the_same_image(engine):
    loaded = engine.load()
    loaded.prompts.clear()
    fresh = pixels(engine.text_to_image(PROMPT, seed=3).images[0])
    hits = loaded.prompts.hits
    cached = pixels(engine.text_to_image(PROMPT, seed=3).images[0])
    assert loaded.prompts.hits == hits + 1
    assert np.array_equal(fresh, cached)
    other = pixels(engine.text_to_image(PROMPT, seed=3, negative_prompt="a blue background").images[0])
    assert loaded.prompts.hits == hits + 1 and not np.array_equal(other, cached)


def test_fast_decode_uses_the_tiny_autoencoder_on_cpu_by_default(engine):
    fast = engine.text_to_image(PROMPT, seed=1)
    full = engine.text_to_image(PROMPT, seed=1, fast_decode=False)
    assert (fast.metadata["decoder"], full.metadata["decoder"]) == ("tiny", "full")
    assert fast.images[0].size == full.images[0].size == (64, 64)
    assert not np.array_equal(pixels(fast.images[0]), pixels(full.images[0]))
    edited = engine.instruct_edit(full.images[0], "make the star green", seed=1)  # every pipeline decodes fast
    assert edited.metadata["decoder"] == "tiny" and edited.images[0].size == (64, 64)


def cpu_flags() -> set[str]:
    """The CPU's flags as the kernel lists them (a source independent of torch's checks)."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))


def test_native_bf16_means_avx512_bf16_or_amx_not_just_avx512():
    assert cpu_has_native_bf16() == bool(cpu_flags() & {"avx512_bf16", "amx_tile"})


def nhwc(module) -> bool:
    return module.weight.is_contiguous(memory_format=torch.channels_last)


def test_layouts_follow_the_policy_nhwc_for_half_precision_and_small_fp32_models(tiny_preset, engine, monkeypatch):
    fp32 = engine.load()
    assert fp32.speed.channels_last == ("unet", "vae")  # small fp32 on CPU: oneDNN's NHWC path is the faster one
    assert nhwc(fp32.base.unet.conv_in) and nhwc(fp32.base.vae.decoder.conv_in) and nhwc(fp32.tiny_vae().decoder.layers[0])
    for role in ("inpaint", "instruct_edit"):  # derived pipelines share the layout; the instruct UNet is its own
        assert nhwc(fp32.pipeline(role).unet.conv_in)
    bf16 = Engine(preset=str(tiny_preset), dtype="bfloat16")
    result = bf16.text_to_image(PROMPT, seed=1)
    base = bf16.load().base
    assert result.metadata["dtype"] == "bfloat16" and result.images[0].size == (64, 64)
    assert nhwc(base.unet.conv_in) and nhwc(base.vae.decoder.conv_in)
    monkeypatch.setenv("DEPICT_LARGE_UNET", "1000")  # the tiny UNet counts as large: fp32 NCHW measured faster there
    monkeypatch.setenv("DEPICT_COMPILE", "off")
    large = Engine(preset=str(tiny_preset), dtype="float32").load()
    assert large.speed.channels_last == ("vae",)
    assert large.base.unet.conv_in.weight.is_contiguous() and nhwc(large.base.vae.decoder.conv_in)


def test_a_preset_speed_adapter_is_fused_into_the_weights(tiny_preset, engine, tmp_path):
    folder = shutil.copytree(tiny_preset, tmp_path / "fused")
    spec = json.loads((folder / "preset.json").read_text())
    spec["speed_adapter"] = f"{folder / 'adapters'}:warm.safetensors"
    (folder / "preset.json").write_text(json.dumps(spec))
    fused_engine = Engine(preset=str(folder))
    loaded = fused_engine.load()
    assert loaded.adapters.fused == {"speed": 1.0} and not loaded.adapters.loaded  # no LoRA layers left

    def image(on, **options):
        return pixels(on.text_to_image(PROMPT, seed=2, fast_decode=False, **options).images[0])

    fused = image(fused_engine)
    assert np.abs(fused - image(engine, adapters={"warm": 1.0})).mean() < 1.5  # the same LoRA, merged
    assert np.abs(fused - image(engine)).mean() > 1.5  # and it does change the image
    assert not np.array_equal(image(fused_engine, adapters={"cool": 1.0}), fused)  # request adapters on top
    assert np.array_equal(image(fused_engine), fused)  # and off again


def test_pipelines_are_told_their_device_once_and_keep_their_class_names(engine):
    loaded = engine.load()
    for role, name in (("text_to_image", "StableDiffusionPipeline"), ("inpaint", "StableDiffusionInpaintPipeline"),
                       ("image_to_image", "StableDiffusionImg2ImgPipeline")):  # fmt: skip
        pipeline = loaded.pipeline(role)
        assert type(pipeline).__name__ == name  # diffusers' AutoPipeline lookups go by class name
        assert pipeline._execution_device == torch.device(loaded.policy.device)
        assert all(not hasattr(module, "_hf_hook") for module in pipeline.components.values())
