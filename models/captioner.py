"""Image -> description with an image-to-text model from transformers: BLIP (the bundled captioner) or Florence-2.

Both load from safetensors with no remote code. Florence-2 (`Florence2ForConditionalGeneration`, native in
transformers 5) is prompted with a task token and offers a detailed description beside the short one.
"""

from __future__ import annotations

import threading

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from .devices import DevicePolicy

DETAILS = ("short", "detailed")  # how much a description says (`detailed` where the captioner offers it)
FLORENCE_TASKS = {"short": "<CAPTION>", "detailed": "<DETAILED_CAPTION>"}
MAX_NEW_TOKENS = {"short": 40, "detailed": 120}


class Captioner:
    """A loaded captioning model; `describe` is thread-safe."""

    def __init__(self, source: str, policy: DevicePolicy, local_files_only: bool = False):
        self.processor = AutoProcessor.from_pretrained(source, trust_remote_code=False, local_files_only=local_files_only)
        self.model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=policy.dtype, use_safetensors=True, trust_remote_code=False, local_files_only=local_files_only
        )
        self.model.to(policy.device).eval()
        self.device, self.dtype = policy.device, policy.dtype
        self.tasks = FLORENCE_TASKS if self.model.config.model_type == "florence2" else None
        self.lock = threading.Lock()

    @property
    def details(self) -> tuple[str, ...]:
        """The levels of detail this model describes at."""
        return DETAILS if self.tasks else DETAILS[:1]

    @torch.inference_mode()
    def describe(self, image: Image.Image, detail: str = "short") -> str:
        image = image.convert("RGB")
        if self.tasks:  # Florence-2: a task token is the prompt; greedy decoding as the model card shows
            inputs = self.processor(text=self.tasks[detail], images=image, return_tensors="pt")
            options = {"input_ids": inputs.input_ids.to(self.device), "num_beams": 1, "do_sample": False,
                       "max_new_tokens": MAX_NEW_TOKENS[detail]}  # fmt: skip
        else:
            inputs = self.processor(images=image, return_tensors="pt")
            options = {}
        pixel_values = inputs.pixel_values.to(self.device, self.dtype)
        with self.lock:
            tokens = self.model.generate(pixel_values=pixel_values, **options)
        return self.processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()
