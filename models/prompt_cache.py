"""Prompt embeddings kept for repeated prompts: the text encoder runs once per (prompt, negative, adapters)."""

from __future__ import annotations

from collections import OrderedDict

import torch

# pipeline class -> the call arguments its `encode_prompt(prompt=, device=, num_images_per_prompt=,
# do_classifier_free_guidance=, negative_prompt=)` returns, in order
_SD_OUTPUTS = ("prompt_embeds", "negative_prompt_embeds")
_SDXL_OUTPUTS = (*_SD_OUTPUTS, "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
_OUTPUTS = {
    **dict.fromkeys(("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"),
                    _SD_OUTPUTS),
    **dict.fromkeys(("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
                     "StableDiffusionXLInpaintPipeline"), _SDXL_OUTPUTS),
}  # fmt: skip


class PromptCache:
    """An LRU of text-encoder outputs for one preset's shared text encoder (use under the preset's lock)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()
        self.hits = 0

    def substitute(self, pipeline, args: dict, adapters: dict[str, float], guided: bool = True) -> dict:
        """`args` with `prompt`/`negative_prompt` replaced by cached embeddings where the pipeline takes them; the
        negative prompt is encoded only when `guided` (classifier-free guidance runs)."""
        prompt = args.get("prompt")
        outputs = _OUTPUTS.get(type(pipeline).__name__)
        if outputs is None or not isinstance(prompt, str):
            return args
        negative = args.get("negative_prompt") or ""
        # text-encoder LoRAs change the embeddings; SDXL's negative ones follow each class's force_zeros_for_empty_prompt
        key = (type(pipeline).__name__, prompt, negative if guided else None, tuple(sorted(adapters.items())))
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
        else:
            with torch.no_grad():
                embeds = pipeline.encode_prompt(prompt=prompt, device=pipeline._execution_device, num_images_per_prompt=1,
                                                do_classifier_free_guidance=guided, negative_prompt=negative)  # fmt: skip
            self._entries[key] = tuple(embeds)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        rest = {k: v for k, v in args.items() if k not in ("prompt", "negative_prompt")}
        return {**rest, **dict(zip(outputs, self._entries[key]))}

    def clear(self) -> None:
        self._entries.clear()
