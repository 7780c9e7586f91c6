"""Hub downloads for real: huggingface_hub fetching from a local hub (`tests/fake_hub.py`), its progress reaching the
log and the running job's messages (the UI's progress bar).

`HF_ENDPOINT` is read when huggingface_hub is imported, so the code under test runs in a fresh process pointed at the
fake hub, with its own `HF_HUB_CACHE` and without `HF_HUB_OFFLINE`; it prints what it saw as JSON on its last line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from diffusers import AutoencoderTiny
from safetensors.numpy import save_file

from bench.hub_snapshot import snapshot
from models import hub
from models.presets import CAPTIONER, HUB_PRESETS
from tests import hub_cache
from tests.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent
REPO = "depict-test/weights"
PROGRESS = re.compile(r"Downloading (\S+): ([\d.]+) of ([\d.]+) MB \((\d+)%\), once: later starts read the hub cache\.")
LOGGING = "import json, logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"


def run_python(code: str, env: dict[str, str]) -> tuple[dict, str]:
    """Run `code` in a fresh interpreter at the repo root: the JSON it prints last, and its log (stdout; the
    progress bars draw on stderr)."""
    run = subprocess.run([sys.executable, "-c", LOGGING + code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180)  # fmt: skip
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    printed = [line for line in run.stdout.splitlines() if line.startswith(("[", "{"))]  # not a background build's log
    return json.loads(printed[-1]), run.stdout


def progress(messages: list[str]) -> list[tuple[str, float, float, int]]:
    """(repo, done MB, total MB, percent) of each progress message."""
    found = [PROGRESS.fullmatch(m) for m in messages]
    return [(m[1], float(m[2]), float(m[3]), int(m[4])) for m in found if m]


@pytest.fixture(scope="module")
def weights_repo(tmp_path_factory) -> Path:
    """A repo whose weight file (24 MB: three of huggingface_hub's 10 MB chunks) is an LFS file on the CDN, beside a
    config and a README that no download asks for."""
    folder = tmp_path_factory.mktemp("weights_repo")
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (folder / "README.md").write_text("# weights\n")
    weight = np.random.default_rng(0).standard_normal(6 * 2**20, dtype=np.float32)
    save_file({"weight": weight}, folder / "model.safetensors")
    return folder


def test_download_lands_in_the_cache_and_reports_its_progress_to_the_job_and_the_log(weights_repo, tmp_path):
    cache = tmp_path / "hub"
    code = f"""
from models import hub
messages = []
with hub.downloads_reported_to(messages.append):
    path = hub.download({REPO!r}, ["config.json", "model.safetensors"])
print(json.dumps({{"path": path, "messages": messages}}))
"""
    # the CDN answers late: config.json is done before the weight's bytes start, as on the real hub
    with FakeHub({REPO: weights_repo}, cdn_delay=0.3) as fake:
        seen, log = run_python(code, fake.env(os.environ, cache))
    commit = fake.repos[REPO].sha
    snapshot = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    assert seen["path"] == str(snapshot)
    assert (snapshot.parent.parent / "refs" / "main").read_text() == commit
    for name in ("config.json", "model.safetensors"):
        assert (snapshot / name).read_bytes() == (weights_repo / name).read_bytes()
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]  # no README, .gitattributes
    assert ("GET", f"cdn/repos/{REPO}/{fake.repos[REPO].files['model.safetensors'].sha256}") in fake.requests

    messages = seen["messages"]
    assert messages[0] == f"Downloading {REPO} (2 files) into the hub cache: the first use of this preset waits for it."
    steps = progress(messages)
    assert len(steps) == len(messages) - 1 >= 3, messages
    size = sum((weights_repo / name).stat().st_size for name in ("config.json", "model.safetensors")) / 2**20
    assert {(repo, total) for repo, _, total, _ in steps} == {(REPO, round(size, 1))}, messages  # one total throughout
    percents = [percent for *_, percent in steps]
    assert percents == sorted(set(percents)) and percents[-1] == 100 and steps[-1][1] == round(size, 1), messages
    assert all(f"INFO:models.hub:{message}" in log for message in messages), log[-3000:]


def served_taesd(folder: Path) -> Path:
    """`madebyollin/taesd` as the hub holds it (config.json, diffusion_pytorch_model.safetensors, a README; the real
    repo's `.bin` and `.pth` copies left out), small and random."""
    AutoencoderTiny(**hub_cache._TAESD).save_pretrained(folder)
    (folder / "README.md").write_text("# TAESD\n")
    return folder


def sd_turbo_cache_without_taesd(root: Path) -> Path:
    """The hub cache the README's `hf download` lines for sd-turbo leave (`tests/hub_cache.py`), less TAESD."""
    preset = HUB_PRESETS["sd-turbo"]
    wanted = {repo: set(paths) for repo, paths in hub.files(preset).items()}
    for repo, paths in hub.files(preset, fp16=True).items():
        wanted[repo] |= set(paths)
    hub_cache.sd_turbo(root)
    hub_cache.instruct_pix2pix(root, hub_cache.sd15(root)[0])
    hub_cache.florence2(root)
    shutil.rmtree(root / "models--stable-diffusion-v1-5--stable-diffusion-v1-5")  # only built for instruct-pix2pix
    del wanted["madebyollin/taesd"]
    hub_cache.keep_only(root, wanted)
    return root


def test_first_job_downloads_the_tiny_decoder_and_its_progress_reaches_the_job(tmp_path):
    """sd-turbo on CPU decodes with the speed policy's tiny autoencoder, TAESD (`models.speed.tiny_companion`: it is
    one of the preset's downloads). With sd-turbo in the cache and TAESD not, the first text-to-image job loads it
    through `LoadedPreset.tiny_vae` -> `load_pretrained` -> `hub.download`, inside the job's
    `hub.downloads_reported_to(control.report)`; a second engine (a later start) reads it from the cache."""
    cache = sd_turbo_cache_without_taesd(tmp_path / "hub")
    code = """
import os
from models import Engine
from models.control import JobControl
runs = []
for later in (False, True):  # a second engine, offline: a later start, the cache holding TAESD
    if later:
        os.environ["HF_HUB_OFFLINE"] = "1"  # `hub_reachable` is False: nothing more may come from the hub
    messages = []
    result = Engine().text_to_image("a fox", preset="sd-turbo", width=64, height=64,
                                    control=JobControl(on_message=messages.append))
    runs.append({"messages": messages, "decoder": result.metadata["decoder"], "size": list(result.images[0].size),
                 "tiny_decoder": result.metadata["speed_policy"]["tiny_decoder"]})
print(json.dumps(runs))
"""
    env = {**os.environ, "DEPICT_ADAPTERS": str(tmp_path / "no_user_adapters")}
    with FakeHub({"madebyollin/taesd": served_taesd(tmp_path / "taesd")}) as fake:
        (first, later), log = run_python(code, fake.env(env, cache))
    requests = fake.requests
    assert first["decoder"] == "tiny" and first["tiny_decoder"] == "madebyollin/taesd" and first["size"] == [64, 64]
    messages = first["messages"]
    start = "Downloading madebyollin/taesd (2 files) into the hub cache: the first use of this preset waits for it."
    assert start in messages, messages
    steps = progress(messages)
    assert steps and {repo for repo, *_ in steps} == {"madebyollin/taesd"} and steps[-1][3] == 100, messages
    downloads = [message for message in messages[messages.index(start) :] if message.startswith("Downloading")]
    assert all(f"INFO:models.hub:{message}" in log for message in downloads), log[-3000:]
    snapshot = cache / "models--madebyollin--taesd" / "snapshots" / fake.repos["madebyollin/taesd"].sha
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert not any("sd-turbo" in path or "README" in path for _, path in requests), requests  # the rest: cached

    assert later["decoder"] == "tiny" and not any(m.startswith("Downloading") for m in later["messages"]), later


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A fabricated hub cache (`tests/hub_cache.py`) whose snapshot folders the fake hub serves as the real repos."""
    root = tmp_path_factory.mktemp("served")
    hub_cache.sd_turbo(root)
    hub_cache.instruct_pix2pix(root, hub_cache.sd15(root)[0])
    hub_cache.florence2(root)
    return root


INSTRUCT, TURBO, FLORENCE = "timbrooks/instruct-pix2pix", "stabilityai/sd-turbo", CAPTIONER
FIRST_CACHED = {  # what an earlier run left in the cache -> (repo, loader, preset, role, fp16)
    "another preset's share": (hub.files(HUB_PRESETS["sd15-lcm"])[INSTRUCT],
                               (INSTRUCT, "StableDiffusionInstructPix2PixPipeline", "sd-turbo", "instruct_edit", False)),
    "the fp32 download lines, loaded in fp16": (hub.files(HUB_PRESETS["sd-turbo"])[TURBO],
                                                (TURBO, "AutoPipelineForText2Image", "sd-turbo", "text_to_image", True)),
    "an interrupted first download": (["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"],
                                      (TURBO, "AutoPipelineForText2Image", "sd-turbo", "text_to_image", False)),
}  # fmt: skip
LOAD = """
import os, torch, diffusers
from models import hub
from models.errors import PresetUnavailable
from models.loading import PIPELINE_LOAD_OPTIONS, load_pretrained
from models.presets import HUB_PRESETS
repo, loader, preset, role, fp16 = {case!r}
hub.download(repo, {first!r})  # the earlier run, through huggingface_hub: it caches the repo's listing too
preset = HUB_PRESETS[preset]
options = dict(PIPELINE_LOAD_OPTIONS, dtype=torch.float16 if fp16 else torch.float32, variant="fp16" if fp16 else None)
load = lambda: load_pretrained(getattr(diffusers, loader).from_pretrained, repo, preset, role, **options)
os.environ["HF_HUB_OFFLINE"] = "1"  # Depict's own switch, read per call: the hub does not answer
try:
    load()
    offline = ""
except PresetUnavailable as error:
    offline = str(error)
del os.environ["HF_HUB_OFFLINE"]
messages = []
with hub.downloads_reported_to(messages.append):
    pipeline = load()
needed = hub.files(preset, fp16)[repo]
print(json.dumps({{"offline": offline, "messages": messages, "unet": str(pipeline.unet.dtype),
                   "still_missing": hub.missing(repo, needed), "needed": needed}}))
"""


@pytest.mark.parametrize("first", FIRST_CACHED)
def test_a_partly_cached_repo_gets_the_rest_of_its_files_when_the_hub_answers(served, tmp_path, first):
    """Each file is checked in the cache on its own: a repo partly cached (by another preset, by the fp32 download
    lines, by an interrupted download) is completed from the hub, only what is missing; offline, the user is told
    which files are missing."""
    cached, case = FIRST_CACHED[first]
    repo, fp16 = case[0], case[4]
    with FakeHub({repo: snapshot(served, repo)}) as fake:
        seen, _ = run_python(LOAD.format(case=case, first=cached), fake.env(os.environ, tmp_path / "hub"))
    rest = [path for path in seen["needed"] if path not in cached]
    assert rest and f"Preset 'sd-turbo' needs {repo}, which is not downloaded" in seen["offline"], seen["offline"]
    assert f"(the hub cache lacks {rest[0]}, " in seen["offline"], seen["offline"]
    start = f"Downloading {repo} ({len(rest)} files) into the hub cache: the first use of this preset waits for it."
    assert seen["messages"][0] == start and progress(seen["messages"])[-1][3] == 100, seen["messages"]
    assert seen["still_missing"] == [] and seen["unet"] == ("torch.float16" if fp16 else "torch.float32")
    fetched = {path.split("/", 5)[-1] for method, path in fake.requests if method == "GET" and "/resolve/" in path}
    assert not fetched & set(cached), fetched  # nothing cached is fetched again


FLORENCE_LOAD = """
import torch
from models import hub
from models.captioner import Captioner
from models.devices import DevicePolicy
from models.errors import PresetUnavailable
from models.loading import load_pretrained
from models.presets import CAPTIONER, HUB_PRESETS
needed = hub.files(HUB_PRESETS["sd-turbo"])[CAPTIONER]
policy = DevicePolicy("cpu", torch.float32, attention_slicing=False, vae_tiling=False, cpu_offload=False)
try:
    captioner = load_pretrained(Captioner, CAPTIONER, HUB_PRESETS["sd-turbo"], "captioner", policy=policy)
    print(json.dumps({"loaded": type(captioner.model).__name__, "still_missing": hub.missing(CAPTIONER, needed)}))
except PresetUnavailable as error:
    print(json.dumps({"error": str(error)}))
"""


@pytest.mark.parametrize("layout, removed", [
    ("older (transformers 4.56)", ()),
    ("without the optional tokenizer files", ("vocab.json", "merges.txt", "special_tokens_map.json")),
    ("without a required file", ("preprocessor_config.json",)),
])  # fmt: skip
def test_florence_files_as_the_repo_holds_them(served, tmp_path, layout, removed):
    """Florence-2's processor files: `preprocessor_config.json` beside `processor_config.json` is downloaded; the
    tokenizer's BPE files and special tokens map when the repo has them (once: the cached listing says which it
    lacks); a required file gone from the repo is a sentence naming it, checked against the dry run's listing."""
    repo = tmp_path / "florence"
    shutil.copytree(snapshot(served, FLORENCE), repo)
    for name in removed:
        (repo / name).unlink()
    with FakeHub({FLORENCE: repo}) as fake:
        seen, _ = run_python(FLORENCE_LOAD, fake.env(os.environ, tmp_path / "hub"))
    if "preprocessor_config.json" in removed:
        assert seen["error"] == (f"The hub repo {FLORENCE} no longer holds preprocessor_config.json, which Depict "
                                 "loads: the repo has changed; update Depict or use another preset.")  # fmt: skip
        fetched = [path for method, path in fake.requests if method == "GET" and not path.startswith("/api/models/")]
        assert not fetched, fetched  # the dry run's listing only: no byte fetched
        return
    assert seen == {"loaded": "Florence2ForConditionalGeneration", "still_missing": []}, seen
    cached = {p.name for p in (tmp_path / "hub").glob("models--*/snapshots/*/*")}
    assert cached == {p.name for p in repo.iterdir()}, cached  # every file of the repo (no README, .gitattributes)


ADAPTERS_LOAD = """
from PIL import Image
from models import Engine
from models.control import JobControl
messages = []
result = Engine().style_transfer(Image.new("RGB", (64, 64), "red"), style_image=Image.new("RGB", (64, 64), "blue"),
                                 prompt="a red square", preset="sd15-lcm",
                                 control=JobControl(on_message=messages.append))
print(json.dumps({"messages": messages, "style_image": result.metadata["style_image"]}))
"""


def test_lcm_lora_and_ip_adapter_download_with_progress(tmp_path):
    """sd15-lcm's LCM-LoRA (fused when the preset loads) and IP-Adapter (loaded by the first reference image) come
    through `hub.download` like the rest: their progress reaches the job and the log."""
    cache, served = tmp_path / "hub", tmp_path / "served"
    unet = hub_cache.sd15(cache)[0].unet
    hub_cache.taesd(cache)
    hub_cache.lcm_lora(served, unet)
    hub_cache.ip_adapter(served)
    preset = HUB_PRESETS["sd15-lcm"]
    hub_cache.keep_only(cache, {repo: set(paths) for repo, paths in hub.files(preset).items()
                                if repo in (preset.text_to_image, "madebyollin/taesd")})  # fmt: skip
    lora, adapter = "latent-consistency/lcm-lora-sdv1-5", "h94/IP-Adapter"
    hub_cache.keep_only(served, {adapter: set(hub.files(preset)[adapter])})
    env = {**os.environ, "DEPICT_ADAPTERS": str(tmp_path / "no_user_adapters")}
    with FakeHub({lora: snapshot(served, lora), adapter: snapshot(served, adapter)}) as fake:
        seen, log = run_python(ADAPTERS_LOAD, fake.env(env, cache))
    messages = seen["messages"]
    assert seen["style_image"] is True
    for repo, count in ((lora, 1), (adapter, 3)):
        start = f"Downloading {repo} ({count} files) into the hub cache: the first use of this preset waits for it."
        assert start in messages, messages
        steps = [step for step in progress(messages) if step[0] == repo]
        assert steps and steps[-1][3] == 100, messages
        assert f"INFO:models.hub:{start}" in log
