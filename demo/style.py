"""Style transfer tab: a content image redrawn in a style: a style adapter (LoRA), a style preset (prompt template)
or the style of a reference image (IP-Adapter, on the presets that have one)."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.jobs import StyleTransferParams
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
from .examples import example_images
from .load_settings import settings_loader
from .uploads import image_input
from .upscale import results_action

JOB = "style_transfer"  # the engine job this tab runs (its preset defaults differ: see `Preset.default_guidance`)


def build(engine: Engine) -> None:
    styles = engine.styles()
    history, slot = gr.State([]), job_slot()
    with gr.Row():
        with gr.Column(scale=2):
            image = image_input(label="Content image", elem_id="style-image", elem_classes=["depict-pixelated"], height=280)
            style = gr.Dropdown(styles, value=styles[0] if styles else None, label="Style (adapter or style preset)",
                                allow_custom_value=True)  # fmt: skip
            style_image = image_input(label="Style reference image (optional; SD 1.5 and SDXL presets)",
                                      elem_id="style-reference", height=160)  # fmt: skip
            strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="Strength (how much is redrawn)")
            structure = gr.Slider(0.0, 2.0, value=0.0, step=0.05,
                                  label="Structure (the content's edges also guide the redrawing; 0 = off)")
            style_weight = gr.Slider(0.0, LIMITS.max_adapter_weight, value=1.0, step=0.05, label="Style weight")
            prompt = gr.Textbox(label="Content description (empty: described automatically)", value="", lines=1,
                                max_length=LIMITS.max_prompt_chars)  # fmt: skip
            controls = sampling_controls(engine, job=JOB)
            run, stop = run_buttons("Apply style", "style-run")
            settings = {"style": style, "strength": strength, "structure": structure, "style_weight": style_weight,
                        "prompt": prompt, **controls.widgets}  # fmt: skip
            settings_loader(settings, list(engine.registry))
        with gr.Column(scale=3):
            gallery = results_gallery(elem_id="style-gallery")
            info = parameters_view()
            results_action(engine, gallery, info, controls.preset, history)
    gr.Examples([[p] for p in example_images()], inputs=[image])

    def style_transfer(options, progress, history, slot):
        """Redraw a content picture in a style: a style adapter or style preset by name, and/or a reference
        picture's style."""
        return run_and_show(engine.style_transfer, slot, history, progress, **options)

    inputs = {"image": image, "style_image": style_image, **settings}  # pictures are not settings a PNG restores
    handler, handler_inputs = job_endpoint(StyleTransferParams, inputs, {"history": history, "slot": slot}, style_transfer)
    event = run.click(handler, handler_inputs, [gallery, info], api_name="style_transfer",
                      concurrency_id="base_pipeline")  # fmt: skip
    wire_stop(stop, slot, [event])
    controls.preset.change(lambda name: gr.update(choices=engine.styles(name)), controls.preset, style,
                           api_visibility="private")  # fmt: skip
