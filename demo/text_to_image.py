"""Text -> image tab."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.jobs import TextToImageParams
from models.settings import LIMITS

from .controls import (
    job_endpoint,
    job_slot,
    parameters_view,
    results_gallery,
    run_and_show,
    run_buttons,
    sampling_controls,
    wire_stop,
)
from .load_settings import settings_loader
from .uploads import image_input
from .upscale import results_action

EXAMPLES = [
    "a small red star at the top on a blue background",
    "a large yellow circle in the center on a purple background",
    "a small white cross on the left on a black background",
    "a large green triangle at the bottom on a pink background",
]


def build(engine: Engine) -> None:
    defaults = engine.preset()
    history, slot = gr.State([]), job_slot()
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", elem_id="t2i-prompt", lines=2, max_length=LIMITS.max_prompt_chars,
                                placeholder="a small red star at the top on a blue background")  # fmt: skip
            with gr.Row():
                width = gr.Slider(LIMITS.min_side, LIMITS.max_side, value=defaults.width, step=8, label="Width")
                height = gr.Slider(LIMITS.min_side, LIMITS.max_side, value=defaults.height, step=8, label="Height")
            with gr.Accordion("Structure (follow a picture's edges)", open=False):
                structure_image = image_input(label="Structure image (its edges guide the layout)", height=160,
                                              elem_id="t2i-structure-image")  # fmt: skip
                structure = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Structure (how strongly; 0 = off)")
            controls = sampling_controls(engine)
            run, stop = run_buttons("Generate", "t2i-run")
            inputs = {"prompt": prompt, "width": width, "height": height, "structure_image": structure_image,
                      "structure": structure, **controls.widgets}  # fmt: skip
            settings_loader(inputs, list(engine.registry))
        with gr.Column(scale=3):
            gallery = results_gallery(elem_id="t2i-gallery")
            info = parameters_view()
            results_action(engine, gallery, info, controls.preset, history)
    gr.Examples([[e] for e in EXAMPLES], inputs=[prompt])

    def text_to_image(options, progress, history, slot):
        """Draw images from a text prompt (on the bundled models: `a {size} {color} {shape} {position} on a
        {background} background`)."""
        return run_and_show(engine.text_to_image, slot, history, progress, **options)

    handler, handler_inputs = job_endpoint(TextToImageParams, inputs, {"history": history, "slot": slot}, text_to_image)
    event = gr.on([run.click, prompt.submit], handler, handler_inputs, [gallery, info],
                  api_name="text_to_image", concurrency_id="base_pipeline")  # fmt: skip
    wire_stop(stop, slot, [event])

    def native_size(name):
        chosen = engine.preset(name)
        return gr.update(value=chosen.width), gr.update(value=chosen.height)

    controls.preset.input(native_size, controls.preset, [width, height], api_visibility="private")
