"""Image -> description with a BLIP-family image-to-text model from transformers."""

from __future__ import annotations

import threading

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from .devices import DevicePolicy


class Captioner:
    """A loaded captioning model; `describe` is thread-safe."""

    def __init__(self, source: str, policy: DevicePolicy, local_files_only: bool = False):
        self.processor = AutoProcessor.from_pretrained(source, trust_remote_code=False, local_files_only=local_files_only)
        self.model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=policy.dtype, use_safetensors=True, trust_remote_code=False, local_files_only=local_files_only
        )
        self.model.to(policy.device).eval()
        self.device, self.dtype = policy.device, policy.dtype
        self.lock = threading.Lock()

    @torch.inference_mode()
    def describe(self, image: Image.Image) -> str:
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt")
        pixel_values = inputs.pixel_values.to(self.device, self.dtype)
        with self.lock:
            tokens = self.model.generate(pixel_values=pixel_values)
        return self.processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()
