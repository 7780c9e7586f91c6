"""Prompt embeddings kept for repeated prompts: the text encoder runs once per (prompt, negative, adapters)."""

from __future__ import annotations

from collections import OrderedDict

import torch

# pipelines whose `encode_prompt(prompt, device, n, cfg, negative)` returns (prompt_embeds, negative_embeds)
_SUPPORTED = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"}


class PromptCache:
    """An LRU of text-encoder outputs for one preset's shared text encoder (use under the preset's lock)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0

    def substitute(self, pipeline, args: dict, adapters: dict[str, float]) -> dict:
        """`args` with `prompt`/`negative_prompt` replaced by cached embeddings where the pipeline takes them."""
        prompt = args.get("prompt")
        if type(pipeline).__name__ not in _SUPPORTED or not isinstance(prompt, str):
            return args
        negative = args.get("negative_prompt") or ""
        key = (prompt, negative, tuple(sorted(adapters.items())))  # text-encoder LoRAs change the embeddings
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
        else:
            with torch.no_grad():
                embeds = pipeline.encode_prompt(prompt, pipeline._execution_device, 1, True, negative)
            self._entries[key] = embeds
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        prompt_embeds, negative_embeds = self._entries[key]
        rest = {k: v for k, v in args.items() if k not in ("prompt", "negative_prompt")}
        return {**rest, "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}

    def clear(self) -> None:
        self._entries.clear()
