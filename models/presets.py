"""The allow-list of model presets: which weights fill each role, and each preset's defaults.

A source is a Hugging Face hub id or a local folder; both load through the same `from_pretrained`.
A local preset folder holds a `preset.json` naming its role subfolders and defaults (see `models/bundled`),
or is a single diffusers text-to-image folder.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import try_to_load_from_cache

from .errors import PresetUnavailable
from .settings import hub_endpoint, hub_offline

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED_FAST_DIR = BUNDLED_DIR / "fast"
DEFAULT_PRESET = "bundled"
BUNDLED_FAST = "bundled-fast"


@dataclass(frozen=True)
class Preset:
    """Model sources per role and the defaults a request falls back to."""

    name: str
    label: str
    text_to_image: str
    captioner: str | None = None
    upscaler: str | None = None  # a super-resolution network folder (`models.upscaler`)
    structure: str | None = None  # a canny ControlNet for the text-to-image UNet (`structure` of regenerate)
    no_structure: str = ""  # why a preset without one has none, said when a request asks for structure
    instruct_edit: str | None = None
    instruct_shares_components: bool = False  # instruct-edit UNet reuses the base VAE and text encoder
    speed_adapter: str | None = None  # a LoRA always active (e.g. LCM-LoRA), as "repo_or_folder[:weight_name]"
    adapters_dir: str | None = None  # the preset's own LoRA adapters (e.g. bundled styles)
    vae_tiny: str | None = None  # the folder's own AutoencoderTiny (`vae_tiny/`); hub families get theirs by policy
    steps: int = 25
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    scheduler: str | None = None  # None: the model's own scheduler
    image_guidance: float = 1.5  # instruct-edit: how closely to follow the input image
    style_guidance: float | None = None  # style transfer's default guidance; None: `guidance`
    shapes_world: bool = False  # the bundled family: captions follow the shapes grammar
    base: str | None = None  # a preset whose autoencoder, text encoder, captioner and upscaler this one shares (loaded
    # once)
    samplers: tuple[str, ...] = ()  # the samplers its model is made for (a distilled student's); empty: any
    reference_adapter: str | None = None  # IP-Adapter for style reference images, "repo:subfolder/weight.safetensors"
    local: bool = False

    def offers_adapters(self) -> bool:
        """Whether requests may use LoRA adapters: not on a preset sharing another's modules (a distilled student)."""
        return self.base is None

    def without_structure(self) -> str:
        """The sentence refusing `structure` on a preset without a ControlNet, with its reason where it has one."""
        reason = f": {self.no_structure}" if self.no_structure else ""
        return f"`structure` needs a structure (ControlNet) model, and preset '{self.name}' has none{reason}."

    def default_guidance(self, job: str = "") -> float:
        """The guidance a job runs at when the request leaves it unset."""
        return self.style_guidance if job == "style_transfer" and self.style_guidance is not None else self.guidance

    def sources(self) -> dict[str, str]:
        roles = {"text_to_image": self.text_to_image, "captioner": self.captioner, "instruct_edit": self.instruct_edit,
                 "upscaler": self.upscaler, "structure": self.structure}  # fmt: skip
        return {role: source for role, source in roles.items() if source}

    def missing(self) -> list[str]:
        """Sources that are neither a local folder nor in the hub cache. The upscaler and the structure model are left
        out: a preset without them serves every other job, and the job that needs one says what to download."""
        optional = ("upscaler", "structure")
        return [source for role, source in self.sources().items() if role not in optional and not is_available(source)]

    def available(self) -> bool:
        return not self.missing()

    def unavailable_message(self, role: str, detail: str = "") -> str:
        source = {**self.sources(), "vae_tiny": self.vae_tiny}.get(role) or self.text_to_image
        if self.local:
            return f"Preset '{self.name}' needs the folder {source}, which does not hold a loadable model{detail}."
        return (
            f"Preset '{self.name}' needs {source}, which is not downloaded and the Hugging Face hub cannot be "
            f"reached{detail}. Connect to the internet, pre-download it with `hf download {source}` "
            f"(`python -m models.hub {self.name}` prints the exact files), "
            f"or use the `{DEFAULT_PRESET}` preset, which works offline."
        )


CAPTIONER = "florence-community/Florence-2-base"  # safetensors on main, native in transformers (no remote code)
UPSCALER = "stabilityai/stable-diffusion-x4-upscaler"  # diffusers' StableDiffusionUpscalePipeline, safetensors
NO_SD21_CANNY = ("no canny ControlNet for SD 2.1 ships in diffusers' format with safetensors weights "
                 "(thibaud/controlnet-sd21-canny-diffusers holds only a pickled .bin), and Depict loads no pickles")
HUB_PRESETS = {
    "sd-turbo": Preset(
        name="sd-turbo", label="SD-Turbo (hub, 1-4 steps)", text_to_image="stabilityai/sd-turbo",
        captioner=CAPTIONER, instruct_edit="timbrooks/instruct-pix2pix", upscaler=UPSCALER, no_structure=NO_SD21_CANNY,
        steps=1, guidance=0.0, width=512, height=512,
    ),
    "sdxl-turbo": Preset(
        name="sdxl-turbo", label="SDXL-Turbo (hub, 1-4 steps)", text_to_image="stabilityai/sdxl-turbo",
        captioner=CAPTIONER, instruct_edit="timbrooks/instruct-pix2pix", upscaler=UPSCALER,
        structure="diffusers/controlnet-canny-sdxl-1.0-small",
        steps=1, guidance=0.0, width=512, height=512,
        reference_adapter="h94/IP-Adapter:sdxl_models/ip-adapter_sdxl.safetensors",
    ),
    "sd15-lcm": Preset(
        name="sd15-lcm", label="SD 1.5 + LCM-LoRA (hub, 4 steps)",
        text_to_image="stable-diffusion-v1-5/stable-diffusion-v1-5",
        captioner=CAPTIONER, instruct_edit="timbrooks/instruct-pix2pix", upscaler=UPSCALER,
        structure="lllyasviel/control_v11p_sd15_canny",
        instruct_shares_components=True, speed_adapter="latent-consistency/lcm-lora-sdv1-5",
        steps=4, guidance=1.0, width=512, height=512, scheduler="lcm",
        reference_adapter="h94/IP-Adapter:models/ip-adapter_sd15.safetensors",
    ),
}  # fmt: skip


_REACHABLE: dict[tuple[str, int], tuple[float, bool]] = {}


def hub_reachable(timeout: float = 2.0, cache_seconds: float = 60.0) -> bool:
    """Whether the hub (`HF_ENDPOINT`: its host and port) answers a TCP connection (remembered for a minute); False
    when HF_HUB_OFFLINE is set."""
    if hub_offline():
        return False
    endpoint = urlparse(hub_endpoint())
    host = endpoint.hostname or "huggingface.co"
    address = (host, endpoint.port or (80 if endpoint.scheme == "http" else 443))
    checked_at, reachable = _REACHABLE.get(address, (0.0, False))
    if time.monotonic() - checked_at > cache_seconds:
        try:
            socket.create_connection(address, timeout=timeout).close()
            reachable = True
        except OSError:
            reachable = False
        _REACHABLE[address] = (time.monotonic(), reachable)
    return reachable


def is_available(source: str) -> bool:
    """A local folder that exists, or a hub repo whose index is in the local cache."""
    if Path(source).is_dir():
        return True
    if source.count("/") != 1 or source.startswith((".", "/")):
        return False
    return any(
        isinstance(try_to_load_from_cache(source, filename), str) for filename in ("model_index.json", "config.json")
    )


def preset_from_folder(folder: str | Path, name: str | None = None) -> Preset:
    """A preset described by `folder/preset.json`, or a bare diffusers text-to-image folder; a `vae_tiny/` beside
    it is its tiny autoencoder."""
    folder = Path(folder).resolve()
    spec_file = folder / "preset.json"
    tiny = "vae_tiny" if (folder / "vae_tiny" / "config.json").is_file() else None
    if not spec_file.is_file():
        if (folder / "model_index.json").is_file():
            return Preset(name=name or folder.name, label=f"Local: {folder.name}", text_to_image=str(folder), local=True,
                          vae_tiny=tiny and str(folder / tiny))  # fmt: skip
        raise PresetUnavailable(f"{folder} has neither a preset.json nor a model_index.json: it is not a model folder.")
    spec = {"vae_tiny": tiny, **json.loads(spec_file.read_text())}
    spec.pop("cpu_bfloat16", None)  # older folders' speed flag: the speed policy decides now (models/speed.py)
    spec["samplers"] = tuple(spec.get("samplers", ()))
    for role in ("text_to_image", "captioner", "instruct_edit", "upscaler", "structure", "adapters_dir", "vae_tiny"):
        if spec.get(role):
            spec[role] = str(folder / spec[role])
    return Preset(name=name or spec.pop("name", folder.name), local=True, **spec)


def sharing(preset: Preset, registry: dict[str, Preset]) -> Preset:
    """A preset with a `base` takes its base's captioner and upscaler (loaded once, for both)."""
    if preset.base is None:
        return preset
    if preset.base not in registry:
        raise PresetUnavailable(f"Preset '{preset.name}' shares the modules of '{preset.base}', which is not known.")
    base = registry[preset.base]
    return replace(preset, captioner=base.captioner, upscaler=base.upscaler)


def presets() -> dict[str, Preset]:
    """Every allow-listed preset, the bundled family first."""
    found = {}
    if (BUNDLED_DIR / "preset.json").is_file():
        found[DEFAULT_PRESET] = preset_from_folder(BUNDLED_DIR, name=DEFAULT_PRESET)
        if (BUNDLED_FAST_DIR / "preset.json").is_file():
            found[BUNDLED_FAST] = sharing(preset_from_folder(BUNDLED_FAST_DIR, name=BUNDLED_FAST), found)
    return {**found, **HUB_PRESETS}
