"""Each training script runs its tiny config for two steps, resumes from its checkpoint, and writes a loadable model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDPMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import load_file, save_file
from transformers import BlipForConditionalGeneration

from models import Engine
from models.adapters import AdapterCatalog, AdapterState
from models.presets import BUNDLED_DIR
from models.shapes import vocabulary
from training import (
    distill,
    prune,
    search,
    train_autoencoder,
    train_captioner,
    train_instruct_edit,
    train_style_lora,
    train_text_to_image,
    train_tiny_autoencoder,
    validate,
)
from training.data import prepare_scenes
from training.diffusion import (
    NOISE,
    build_text_encoder,
    build_unet,
    diffusion_loss,
    encode_images,
    encode_scenes,
    tokenize,
)
from training.tokenizer import build_tokenizer
from training.train_autoencoder import build_autoencoder


def test_autoencoder_script(tmp_path):
    out, work = tmp_path / "vae", tmp_path / "work"
    train_autoencoder.main(["--tiny", "--out", str(out), "--work-dir", str(work)])
    assert json.loads((work / "checkpoint-2" / "state.json").read_text())["step"] == 2
    vae = AutoencoderKL.from_pretrained(out)
    assert vae.config.latent_channels == 4 and vae.config.scaling_factor > 0
    assert "PSNR" in (out / "README.md").read_text()
    train_autoencoder.main(["--tiny", "--out", str(out), "--work-dir", str(work)])  # resumes: nothing left to do
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint-1", "checkpoint-2"]


def test_tiny_autoencoder_script_writes_a_card_with_the_judges_reading(tmp_path):
    out = tmp_path / "vae_tiny"
    facts = train_tiny_autoencoder.main(["--tiny", "--out", str(out), "--work-dir", str(tmp_path / "work")])
    tiny = AutoencoderTiny.from_pretrained(out)
    assert tiny.config.scaling_factor == 1.0 and tiny.config.latent_channels == 4
    with torch.no_grad():
        assert tiny.decode(torch.zeros(1, 4, 16, 16)).sample.shape == (1, 3, 64, 64)
    held_out = facts["held-out (4 scenes, seed 1)"]
    assert set(held_out["judged, tiny decoder"]) == {"size", "color", "shape", "position", "background", "all"}
    assert "judged, full decoder" in (out / "README.md").read_text()


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

    kept = tmp_path / "kept"  # started from the file, nothing trained: the same LoRAs come back
    train_style_lora.main(["--tiny", "--style", "striped", "--base", str(t2i), "--out", str(kept), "--work-dir", str(tmp_path / "w5"),
                           "--init-from", str(styles / "striped.safetensors"), "--steps", "0", "--decoder-steps", "0"])  # fmt: skip
    original, copied = load_file(styles / "striped.safetensors"), load_file(kept / "striped.safetensors")
    assert original.keys() == copied.keys() and all(torch.equal(original[k], copied[k]) for k in original)
    cut = tmp_path / "cut"  # rank 8 cut to 4, then both parts continued, the decoder also on the UNet's redraws
    train_style_lora.main(["--tiny", "--style", "striped", "--base", str(t2i), "--out", str(cut), "--work-dir", str(tmp_path / "w6"),
                           "--init-from", str(styles / "striped.safetensors"), "--rank", "4", "--decoder-redrawn", "0.5"])  # fmt: skip
    assert {v.shape[0] for k, v in load_file(cut / "striped.safetensors").items() if k.startswith("unet.") and ".lora_A." in k} == {4}
    assert (cut / "striped.safetensors").stat().st_size < 0.7 * (styles / "striped.safetensors").stat().st_size
    record = json.loads((cut / "striped.json").read_text())
    assert "redraws" in record["decoder loss"] and record["rank"]["unet"] == 4
    assert record["started from"]["its record"]["rank"]["unet"] == 8  # the run it continued, kept with it
    hard = tmp_path / "hard"  # an outline run that sees its hard scenes more often, denoises only below timestep 600
    train_style_lora.main(["--tiny", "--style", "outline", "--base", str(t2i), "--out", str(hard), "--work-dir", str(tmp_path / "w7"),
                           "--hard-weight", "3", "--max-timestep", "600", "--decoder-steps", "0", "--eval-count", "0"])  # fmt: skip
    record = json.loads((hard / "outline.json").read_text())  # ... and judges nothing at the end
    assert "3x as often" in record["UNet sampling"] and record["denoising loss"] == "timesteps below 600"
    assert not any(key.startswith("style transfer judged") for key in record)

    instruct = tmp_path / "instruct"
    train_instruct_edit.main(["--tiny", "--base", str(t2i), "--out", str(instruct), "--work-dir", str(tmp_path / "w4")])
    assert not (instruct / "vae").exists() and not (instruct / "text_encoder").exists()  # shared with the base
    editor = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        instruct, vae=pipeline.vae, text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer, safety_checker=None
    )
    assert editor.unet.config.in_channels == 8
    assert "changed" in (instruct / "README.md").read_text()


def test_the_latents_cache_is_named_by_what_it_holds(tmp_path):
    """A cache made with another renderer style or another autoencoder is never reused for this one."""
    torch.manual_seed(0)
    vae = build_autoencoder().eval()
    first, captions = encode_scenes(vae, 40, 3, tmp_path)
    again, captions_again = encode_scenes(vae, 40, 3, tmp_path)
    assert torch.equal(first, again) and captions == captions_again and len(list(tmp_path.glob("*.safetensors"))) == 1
    assert torch.allclose(first, encode_images(vae, prepare_scenes(40, 3)[0]))
    striped, _ = encode_scenes(vae, 40, 3, tmp_path, style="striped")
    assert not torch.equal(striped, first)
    with torch.no_grad():
        vae.encoder.conv_in.weight.mul_(1.5)
    retrained, _ = encode_scenes(vae, 40, 3, tmp_path)
    assert not torch.equal(retrained, first) and len(list(tmp_path.glob("*.safetensors"))) == 3


def test_the_denoising_loss_stays_below_its_highest_timestep():
    torch.manual_seed(0)
    tokenizer = build_tokenizer(vocabulary())
    text_encoder, unet = build_text_encoder(len(tokenizer), 32, tokenizer), build_unet((32, 64), 32)
    seen = []
    unet.register_forward_pre_hook(lambda module, args: seen.append(args[1]))  # (latents, timesteps, text)
    latents, ids = torch.randn(64, 4, 8, 8), tokenize(tokenizer, ["a small red star at the top on a blue background"] * 64)
    for highest in (600, None):
        diffusion_loss(unet, text_encoder, DDPMScheduler(**NOISE), latents, ids, 0.0, torch.Generator().manual_seed(0), highest)
    assert seen[0].max() < 600 <= seen[1].max()


@pytest.mark.parametrize("script, argv, expected", [
    (train_autoencoder, ["--tiny", "--steps", "100"], {"steps": 2, "batch_size": 4, "checkpoint_every": 1, "scenes": 64}),
    (train_text_to_image, ["--tiny"], {"steps": 2, "scenes": 32, "eval_every": 1, "eval_captions": 2}),
    (distill, ["--tiny", "--scenes", "500"], {"steps": 2, "scenes": 8, "eval_every": 1, "eval_captions": 2}),
    (train_style_lora, ["--tiny", "--style", "striped", "--steps", "0", "--eval-count", "1"],
     {"steps": 0, "decoder_steps": 2, "eval_count": 1, "scenes": 16, "batch_size": 4}),  # caps: 0 still skips a part
    (search, ["--tiny"], {"count": 3, "train": 1, "steps": 2, "scenes": 8, "repeats": 2}),
    (train_autoencoder, ["--steps", "100"], {"steps": 100, "batch_size": 32}),  # without --tiny: as asked
])  # fmt: skip
def test_tiny_sets_each_scripts_smoke_run(script, argv, expected):
    args = vars(script.parse_args(argv))
    assert {name: args[name] for name in expected} == expected


def test_hard_outlines_are_small_stars_and_crosses_and_faint_strokes():
    captions = ["a small red star at the top on a blue background", "a small green cross in the center on a white background",
                "a large red star at the top on a blue background", "a small red circle at the top on a blue background",
                "a large yellow circle in the center on a orange background"]  # fmt: skip
    assert train_style_lora.hard_outlines(captions).tolist() == [True, True, False, False, True]
    with pytest.raises(SystemExit):
        train_style_lora.parse_args(["--style", "striped", "--hard-weight", "2"])


@pytest.mark.parametrize("down_shape, up_shape", [((8, 5), (6, 8)), ((8, 3, 3, 3), (6, 8, 1, 1))])
def test_a_stored_lora_is_cut_to_its_best_lower_rank(tmp_path, down_shape, up_shape):
    generator = torch.Generator().manual_seed(0)
    down, up = torch.randn(down_shape, generator=generator), torch.randn(up_shape, generator=generator)
    path = tmp_path / "adapter.safetensors"
    save_file({"unet.block.lora_A.weight": down, "unet.block.lora_B.weight": up, "vae.other.lora_A.weight": down.clone()}, path)
    assert torch.equal(train_style_lora.stored_lora(path, "unet", 8)["block.lora_A.weight"], down)
    cut = train_style_lora.stored_lora(path, "unet", 4)
    assert cut["block.lora_A.weight"].shape == (4, *down_shape[1:]) and cut["block.lora_B.weight"].shape == (6, 4, *up_shape[2:])
    update = up.flatten(1) @ down.flatten(1)
    singular = torch.linalg.svdvals(update)
    error = torch.linalg.norm(update - cut["block.lora_B.weight"].flatten(1) @ cut["block.lora_A.weight"].flatten(1))
    assert error == pytest.approx(singular[4:].square().sum().sqrt(), rel=1e-4)  # the best rank-4 approximation
    with pytest.raises(ValueError, match="no LoRA under `text_encoder.`"):
        train_style_lora.stored_lora(path, "text_encoder", 4)


def test_distillation_target_is_the_clean_latent_the_output_implies():
    scheduler = DDPMScheduler(**NOISE)
    clean, noise = torch.randn(3, 4, 16, 16), torch.randn(3, 4, 16, 16)
    timesteps = torch.tensor([999, 500, 20])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    velocity = scheduler.get_velocity(clean, noise, timesteps)
    assert torch.allclose(distill.predicted_x0(scheduler, noisy, velocity, timesteps), clean, atol=1e-4)


def test_distillation_batch_starts_one_step_rows_from_the_teachers_noise():
    scheduler = DDPMScheduler(**NOISE)
    data = {"noise": torch.randn(8, 4, 16, 16), "latents": torch.randn(8, 4, 16, 16)}
    index = torch.arange(8)
    noisy, timesteps, _, target = distill.distillation_batch(data, torch.zeros(8, 16, 128), index, scheduler, 0.5, 200,
                                                             torch.Generator().manual_seed(0))  # fmt: skip
    top = timesteps == 999
    assert 0 < top.sum() < 8 and timesteps[~top].min() >= 200
    assert torch.equal(noisy[top], data["noise"][top]) and not torch.equal(noisy[~top], data["noise"][~top])
    assert torch.equal(target, data["latents"])


def test_distill_prune_and_search_scripts_make_servable_students(tmp_path):
    work, out = tmp_path / "distill", tmp_path / "student"
    facts = distill.main(["--tiny", "--out", str(out), "--work-dir", str(work)])
    distill.main(["--tiny", "--out", str(out), "--work-dir", str(work)])  # resumes: nothing left to train
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert "1-step" in facts["judged during training (100 captions, seed 10000)"][-1]
    engine = Engine()
    name = engine.register_folder(out, "student")
    result = engine.text_to_image("a small red star at the top on a blue background", preset=name)
    assert result.images[0].size == (64, 64) and result.metadata["scheduler"] == "LCMScheduler"
    blank = shutil.copytree(out, tmp_path / "blank")  # its UNet's output zeroed: it draws no shape at all
    unet = UNet2DConditionModel.from_pretrained(blank / "unet")
    torch.nn.init.zeros_(unet.conv_out.weight), torch.nn.init.zeros_(unet.conv_out.bias)
    unet.save_pretrained(blank / "unet")
    rows = validate.main([f"blank={blank}", f"shipped={BUNDLED_DIR / 'fast'}", "--count", "2"])
    assert [(r["name"], r["seed"], r["judged"]["all"]) for r in rows] == [
        ("blank", validate.VALIDATION_SEED, 0.0), ("shipped", validate.VALIDATION_SEED, 1.0)]

    pruned = prune.main(["--out", str(tmp_path / "pruned")])
    assert pruned["student MACs per pass"] <= 0.5 * pruned["teacher MACs per pass"]
    teacher = UNet2DConditionModel.from_pretrained(BUNDLED_DIR / "text_to_image" / "unet")
    student = UNet2DConditionModel.from_pretrained(tmp_path / "pruned" / "unet")
    assert torch.equal(student.up_blocks[0].attentions[0].proj_in.weight, teacher.up_blocks[1].attentions[0].proj_in.weight)
    distill.main(["--tiny", "--student", str(tmp_path / "pruned" / "unet"), "--feature-weight", "1",
                  "--feature-teacher", str(BUNDLED_DIR / "fast" / "unet"), "--out", str(tmp_path / "pruned-student"), "--work-dir", str(tmp_path / "w-pruned")])  # fmt: skip
    assert UNet2DConditionModel.from_pretrained(tmp_path / "pruned-student" / "unet").config.mid_block_type is None

    rows = search.main(["--tiny", "--out", str(tmp_path / "search"), "--samples-dir", str(work / "samples")])
    assert len(rows) == 3 and all(r["macs"] > 0 and r["latency_ms"] > 0 for r in rows)
    assert sum("judged_1_step" in r for r in rows) == 1 and (tmp_path / "search" / "search.png").is_file()
