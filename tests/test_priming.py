"""The example a preset's priming hands its UNet's graph: what a request hands it (a build may calibrate on it)."""

import pytest
import torch
from diffusers import StableDiffusionPipeline

from models.priming import unet_example
from models.prompt_cache import PromptCache


@pytest.mark.parametrize("images, guidance", [(1, 0.0), (2, 7.5)])
@torch.no_grad()
def test_the_primed_unet_example_is_what_a_request_with_the_empty_prompt_hands_the_unet(tiny_preset, images, guidance):
    pipeline = StableDiffusionPipeline.from_pretrained(tiny_preset / "text_to_image")
    handed = []
    pipeline.unet.register_forward_pre_hook(lambda module, args, kwargs: handed.append((*args, kwargs)),
                                            with_kwargs=True)  # fmt: skip
    pipeline("", num_inference_steps=1, guidance_scale=guidance, width=64, height=64, num_images_per_prompt=images)
    (sample, timestep, kwargs), guided = handed[0], guidance > 1
    embeds = PromptCache().substitute(pipeline, {"prompt": ""}, {}, guided)
    primed = unet_example(pipeline, pipeline.scheduler, 64, 64, images, guided, embeds)
    assert [(t.shape, t.dtype) for t in primed] == [(t.shape, t.dtype) for t in (sample, timestep,
                                                                                kwargs["encoder_hidden_states"])]
    assert torch.equal(primed[1], timestep) and torch.equal(primed[2], kwargs["encoder_hidden_states"])
    assert 0.8 < primed[0].std() < 1.2 and 0.8 < sample.std() < 1.2  # draws of the same spread
