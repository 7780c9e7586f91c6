"""Text -> image tab."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.settings import LIMITS

from .controls import (
    job_slot,
    parameters_view,
    results_gallery,
    run_and_show,
    run_buttons,
    sampling_controls,
    sampling_options,
    whole,
    wire_stop,
)
from .errors import user_errors
from .gpu import gpu
from .settings import settings_loader

EXAMPLES = [
    "a small red star at the top on a blue background",
    "a large yellow circle in the center on a purple background",
    "a small white cross on the left on a black background",
    "a large green triangle at the bottom on a pink background",
]


def build(engine: Engine) -> None:
    defaults = engine.preset()
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", elem_id="t2i-prompt", lines=2, max_length=LIMITS.max_prompt_chars,
                                placeholder="a small red star at the top on a blue background")  # fmt: skip
            with gr.Row():
                width = gr.Slider(LIMITS.min_side, LIMITS.max_side, value=defaults.width, step=8, label="Width")
                height = gr.Slider(LIMITS.min_side, LIMITS.max_side, value=defaults.height, step=8, label="Height")
            controls = sampling_controls(engine)
            run, stop = run_buttons("Generate", "t2i-run")
            settings_loader({"prompt": prompt, "width": width, "height": height, **controls.fields()},
                            list(engine.registry))  # fmt: skip
        with gr.Column(scale=3):
            gallery = results_gallery(elem_id="t2i-gallery")
            info = parameters_view()
    history, slot = gr.State([]), job_slot()
    gr.Examples([[e] for e in EXAMPLES], inputs=[prompt])

    @user_errors
    @gpu
    def text_to_image(prompt, negative_prompt="", seed=0, steps=defaults.steps, guidance=defaults.guidance,
                      scheduler="", num_images=1, adapters="", preset=engine.default_preset, fast_decode=None,
                      width=defaults.width,
                      height=defaults.height, history=None, slot=None, progress=gr.Progress()):  # fmt: skip
        options = sampling_options(negative_prompt, seed, steps, guidance, scheduler, num_images, adapters, preset, fast_decode)
        return run_and_show(engine.text_to_image, slot, history, progress, prompt=prompt, width=whole(width),
                            height=whole(height), **options)  # fmt: skip

    event = gr.on(
        [run.click, prompt.submit], text_to_image, [prompt, *controls.inputs(), width, height, history, slot],
        [gallery, info, history], api_name="text_to_image", concurrency_id="base_pipeline",
    )  # fmt: skip
    wire_stop(stop, slot, [event])

    def native_size(name):
        chosen = engine.preset(name)
        return gr.update(value=chosen.width), gr.update(value=chosen.height)

    controls.preset.input(native_size, controls.preset, [width, height], api_visibility="private")
