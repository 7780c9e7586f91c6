"""Style transfer tab: a content image redrawn in a style: a style adapter (LoRA), a style preset (prompt template)
or the style of a reference image (IP-Adapter, on the presets that have one)."""

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
    wire_stop,
)
from .errors import user_errors
from .examples import example_images
from .gpu import gpu
from .settings import settings_loader
from .uploads import image_input

JOB = "style_transfer"  # the engine job this tab runs (its preset defaults differ: see `Preset.default_guidance`)


def build(engine: Engine) -> None:
    defaults = engine.preset()
    guidance_default = defaults.default_guidance(JOB)
    styles = engine.styles()
    with gr.Row():
        with gr.Column(scale=2):
            image = image_input(label="Content image", elem_id="style-image", elem_classes=["depict-pixelated"], height=280)
            style = gr.Dropdown(styles, value=styles[0] if styles else None, label="Style (adapter or style preset)",
                                allow_custom_value=True)  # fmt: skip
            style_image = image_input(label="Style reference image (optional; SD 1.5 and SDXL presets)",
                                      elem_id="style-reference", height=160)  # fmt: skip
            strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="Strength (how much is redrawn)")
            style_weight = gr.Slider(0.0, LIMITS.max_adapter_weight, value=1.0, step=0.05, label="Style weight")
            prompt = gr.Textbox(label="Content description (empty: described automatically)", value="", lines=1,
                                max_length=LIMITS.max_prompt_chars)  # fmt: skip
            controls = sampling_controls(engine, job=JOB)
            run, stop = run_buttons("Apply style", "style-run")
            settings_loader({"style": style, "strength": strength, "style_weight": style_weight, "prompt": prompt,
                             **controls.fields()}, list(engine.registry))  # fmt: skip
        with gr.Column(scale=3):
            gallery = results_gallery(elem_id="style-gallery")
            info = parameters_view()
    history, slot = gr.State([]), job_slot()
    gr.Examples([[p] for p in example_images()], inputs=[image])

    @user_errors
    @gpu
    def style_transfer(image, style=None, style_image=None, strength=0.6, style_weight=1.0, prompt="", negative_prompt="",
                       seed=0, steps=defaults.steps, guidance=guidance_default, scheduler="", num_images=1, adapters="",
                       preset=engine.default_preset, fast_decode=None, history=None, slot=None, progress=gr.Progress()):  # fmt: skip
        options = sampling_options(negative_prompt, seed, steps, guidance, scheduler, num_images, adapters, preset, fast_decode)
        return run_and_show(engine.style_transfer, slot, history, progress, image=image, style=style or None,
                            style_image=style_image, strength=float(strength), style_weight=float(style_weight),
                            prompt=prompt or "", **options)  # fmt: skip

    event = run.click(
        style_transfer, [image, style, style_image, strength, style_weight, prompt, *controls.inputs(), history, slot],
        [gallery, info, history], api_name="style_transfer", concurrency_id="base_pipeline",
    )  # fmt: skip
    wire_stop(stop, slot, [event])
    controls.preset.change(lambda name: gr.update(choices=engine.styles(name)), controls.preset, style,
                           api_visibility="private")  # fmt: skip
