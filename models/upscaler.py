"""Super-resolution: a picture made 2x or 4x larger, by a small learned network (the bundled one, trained on the
shapes world by `training/train_upscaler.py`) or by the hub's diffusion upscaler, tiled.

A network folder holds `config.json` (its sizes) and `model.safetensors`; nothing else is read from it. The hub's
`stabilityai/stable-diffusion-x4-upscaler` loads through diffusers' `StableDiffusionUpscalePipeline` from safetensors.
Both make 4x; 2x is their 4x box-filtered by 2 (as a render at the lower size is the box filter of one at the higher).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionUpscalePipeline
from PIL import Image
from safetensors.torch import load_model, save_model
from torch import nn

from . import tiles
from .control import JobControl
from .devices import DevicePolicy
from .errors import JobCancelled
from .speed import UpscalePolicy, decide_upscaler

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


class PixelShuffleUpscaler(nn.Module):
    """ESPCN-style: convolutions at the input's resolution, a pixel shuffle to `scale`x, added to the bicubic upscale
    (the network learns only what bicubic misses). Input and output in [0, 1]. Initialised for ReLU (He) with a
    near-zero last convolution, so an untrained network is bicubic yet every layer gets gradients from the first step:
    with PyTorch's default initialisation and a zero last convolution, 1,500 steps stayed at bicubic."""

    def __init__(self, scale: int = 4, channels: int = 48, layers: int = 6):
        super().__init__()
        self.scale = scale
        body = [nn.Conv2d(3, channels, 5, padding=2), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        body += [nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*body)
        convs = [m for m in body if isinstance(m, nn.Conv2d)]
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(convs[-1].weight, std=1e-3)

    def config(self) -> dict:
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        return {"_class_name": type(self).__name__, "scale": self.scale, "channels": convs[0].out_channels,
                "layers": len(convs)}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.body(x)

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, CONFIG_NAME).write_text(json.dumps(self.config(), indent=1))
        save_model(self, str(Path(folder, WEIGHTS_NAME)))


def load_network(folder: str | Path) -> PixelShuffleUpscaler:
    """The network stored in `folder` (its config and safetensors weights)."""
    config = json.loads(Path(folder, CONFIG_NAME).read_text())
    if config.pop("_class_name", None) != PixelShuffleUpscaler.__name__:
        raise ValueError(f"{folder} does not hold a {PixelShuffleUpscaler.__name__} (see its {CONFIG_NAME}).")
    network = PixelShuffleUpscaler(**config)
    load_model(network, str(Path(folder, WEIGHTS_NAME)))
    return network.eval().requires_grad_(False)


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]


def box_down(pixels: torch.Tensor, factor: int) -> torch.Tensor:
    return pixels if factor == 1 else F.avg_pool2d(pixels, factor)


def to_image(pixels: torch.Tensor) -> Image.Image:
    array = (pixels[0].float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


class NetworkUpscaler:
    """A loaded super-resolution network on the engine's device, run as its speed policy says; thread-safe."""

    def __init__(self, source: str, policy: DevicePolicy, local_files_only: bool = True):
        network = load_network(source)
        self.speed: UpscalePolicy = decide_upscaler(network, policy)
        self.network = network.to(policy.device, self.speed.torch_dtype)
        self.device = policy.device
        self.lock = threading.Lock()

    @property
    def scales(self) -> tuple[int, ...]:
        """The scales it makes: its network's, and each smaller one that divides it."""
        native = self.network.scale
        return tuple(s for s in (2, 4) if native % s == 0)

    @torch.inference_mode()
    def upscale(self, image: Image.Image, scale: int, control: JobControl) -> Image.Image:
        """`image` `scale` times larger: the network's own scale, box-filtered down to `scale` where smaller."""
        pixels = to_tensor(image).to(self.device, self.speed.torch_dtype)
        with self.lock:
            out = self.network(pixels)
        return to_image(box_down(out, self.network.scale // scale))


class DiffusionUpscaler:
    """The hub's diffusion x4 upscaler (`StableDiffusionUpscalePipeline`), tiled: `TILE`-pixel input tiles sharing
    `OVERLAP` pixels, feathered together (`models.tiles`), so a 512x512 picture's 4x (2048x2048) needs the memory of
    one 512x512 output tile; `STEPS` denoising steps without classifier-free guidance (one UNet pass a step)."""

    TILE, OVERLAP, STEPS, NOISE_LEVEL = 128, 16, 20, 20

    def __init__(self, source: str, policy: DevicePolicy, local_files_only: bool = True):
        pipeline = StableDiffusionUpscalePipeline.from_pretrained(
            source, local_files_only=local_files_only, use_safetensors=True, safety_checker=None,
            feature_extractor=None, watermarker=None,
        )  # fmt: skip
        self.speed: UpscalePolicy = decide_upscaler(pipeline.unet, policy)
        pipeline.to(policy.device, self.speed.torch_dtype)
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline, self.lock = pipeline, threading.Lock()

    scales = (2, 4)

    @torch.inference_mode()
    def upscale(self, image: Image.Image, scale: int, control: JobControl) -> Image.Image:
        """`image` 4x larger tile by tile (the same seed in each), box-filtered down to `scale` where smaller;
        progress counts tiles, and a cancel stops at the next step (the pipeline keeps no state between calls)."""
        count = len(tiles.starts(image.width, self.TILE, self.OVERLAP)) * len(tiles.starts(image.height, self.TILE,
                                                                                            self.OVERLAP))  # fmt: skip
        done = []

        def step(*_):
            if control.cancel.is_set():
                raise JobCancelled("The job was cancelled.")

        def one(tile: Image.Image) -> torch.Tensor:
            out = self.pipeline(prompt="", image=tile, num_inference_steps=self.STEPS, guidance_scale=0.0,
                                noise_level=self.NOISE_LEVEL, generator=torch.Generator("cpu").manual_seed(0),
                                output_type="pt", callback=step).images[0]  # fmt: skip
            done.append(tile)
            if control.on_step is not None:
                control.on_step(len(done), count)
            return out

        with self.lock:
            out = tiles.upscale_tiled(image, one, 4, self.TILE, self.OVERLAP)
        return to_image(box_down(out, 4 // scale))


def Upscaler(source: str, policy: DevicePolicy, local_files_only: bool = True):  # noqa: N802 - a loader, like a class
    """The upscaler in `source`: a network folder (`config.json` naming `PixelShuffleUpscaler`), else a diffusers
    upscale pipeline (a hub id or folder)."""
    if Path(source, CONFIG_NAME).is_file() and not Path(source, "model_index.json").is_file():
        return NetworkUpscaler(source, policy, local_files_only)
    return DiffusionUpscaler(source, policy, local_files_only)
