"""Each training script runs its tiny config for two steps, resumes from its checkpoint, and writes a loadable model."""

from __future__ import annotations

import json

from diffusers import AutoencoderKL, StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline
from transformers import BlipForConditionalGeneration

from models.adapters import AdapterCatalog, AdapterState
from models.shapes import (
    train_autoencoder,
    train_captioner,
    train_instruct_edit,
    train_style_lora,
    train_text_to_image,
)


def test_autoencoder_script(tmp_path):
    out, work = tmp_path / "vae", tmp_path / "work"
    train_autoencoder.main(["--tiny", "--out", str(out), "--work-dir", str(work)])
    assert json.loads((work / "checkpoint-2" / "state.json").read_text())["step"] == 2
    vae = AutoencoderKL.from_pretrained(out)
    assert vae.config.latent_channels == 4 and vae.config.scaling_factor > 0
    assert "PSNR" in (out / "README.md").read_text()
    train_autoencoder.main(["--tiny", "--out", str(out), "--work-dir", str(work)])  # resumes: nothing left to do
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint-1", "checkpoint-2"]


def test_text_to_image_captioner_style_and_instruct_scripts(tmp_path):
    train_autoencoder.main(["--tiny", "--out", str(tmp_path / "vae"), "--work-dir", str(tmp_path / "w0")])
    t2i = tmp_path / "t2i"
    train_text_to_image.main(["--tiny", "--vae", str(tmp_path / "vae"), "--out", str(t2i), "--work-dir", str(tmp_path / "w1")])
    pipeline = StableDiffusionPipeline.from_pretrained(t2i)
    image = pipeline("a small red star at the top on a blue background", num_inference_steps=2, height=64, width=64).images[0]
    assert image.size == (64, 64)
    assert "judged" in (t2i / "README.md").read_text()

    captioner = tmp_path / "captioner"
    train_captioner.main(["--tiny", "--out", str(captioner), "--work-dir", str(tmp_path / "w2")])
    assert BlipForConditionalGeneration.from_pretrained(captioner).config.vision_config.image_size == 64

    styles = tmp_path / "styles"
    train_style_lora.main(["--tiny", "--style", "striped", "--base", str(t2i), "--out", str(styles), "--work-dir", str(tmp_path / "w3")])
    pipeline.load_lora_weights(str(styles), weight_name="striped.safetensors", adapter_name="striped")
    assert pipeline.get_list_adapters() == {"unet": ["striped"]}
    lora_modules = {name.rsplit(".lora_A", 1)[0] for name, _ in pipeline.unet.named_parameters() if ".lora_A." in name}
    assert any(name.endswith("attn2.to_k") for name in lora_modules) and any(name.endswith("conv1") for name in lora_modules)
    assert (styles / "striped.safetensors").stat().st_size < 1_000_000
    assert "style" in json.loads((styles / "striped.json").read_text())["style transfer judged (strength 0.6, 12 steps, guidance 3)"]
    state = AdapterState(AdapterCatalog([styles]))
    assert state.apply(pipeline, {"striped": 1.0}) is not None and state.with_decoder == {"striped"}
    assert state.apply(pipeline, {}) is None  # the decoder LoRA lives in a copy: the pipeline's VAE is untouched
    assert not any("lora" in name for name, _ in pipeline.vae.named_parameters())

    instruct = tmp_path / "instruct"
    train_instruct_edit.main(["--tiny", "--base", str(t2i), "--out", str(instruct), "--work-dir", str(tmp_path / "w4")])
    assert not (instruct / "vae").exists() and not (instruct / "text_encoder").exists()  # shared with the base
    editor = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        instruct, vae=pipeline.vae, text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer, safety_checker=None
    )
    assert editor.unet.config.in_channels == 8
    assert "changed" in (instruct / "README.md").read_text()
