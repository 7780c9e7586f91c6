"""Describe -> regenerate tab: caption an image, edit the caption, make the image again beside the original."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.jobs import RegenerateParams
from models.settings import LIMITS

from .controls import (
    job_endpoint,
    job_slot,
    results_gallery,
    run_and_show,
    run_buttons,
    sampling_controls,
    wire_stop,
)
from .examples import example_images
from .gpu import gpu
from .load_settings import settings_loader
from .uploads import image_input
from .upscale import results_action
from .user_errors import user_errors

LAYOUT, STRUCTURE = "layout (img2img)", "structure (edges)"
KEEP = (LAYOUT, STRUCTURE)


def build(engine: Engine) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image = image_input(label="Image", elem_id="describe-image", elem_classes=["depict-pixelated"], height=280)
            with gr.Row():
                describe_button = gr.Button("Describe", elem_id="describe-run")
                detailed = gr.Checkbox(False, label="Detailed (where the captioner offers it: Florence-2 on hub presets)")
            description = gr.Textbox(label="Description (edit it, then regenerate)", elem_id="describe-text", lines=2,
                                     max_length=LIMITS.max_prompt_chars)  # fmt: skip
            keep = gr.Radio(list(KEEP), value=LAYOUT, label="Keep", elem_id="regenerate-keep",
                            info="layout: img2img from the original's pixels; structure: fresh noise following its "
                                 "edges, so edited colours and shapes apply in full")  # fmt: skip
            keep_layout = gr.Slider(0.0, 0.95, value=0.0, step=0.05,
                                    label="Keep layout (0 = fresh image, higher keeps more of the original)")  # fmt: skip
            structure = gr.Slider(0.0, 2.0, value=0.0, step=0.05, visible=False, elem_id="regenerate-structure",
                                  label="Structure (how strongly the original's edges guide it; 0 = fresh image)")
            controls = sampling_controls(engine)
            regenerate_button, stop = run_buttons("Regenerate", "regenerate-run")
            settings = {"description": description, "keep_layout": keep_layout, "structure": structure,
                        **controls.widgets}  # fmt: skip
            settings_loader(settings, list(engine.registry))
        with gr.Column(scale=3):
            comparison = results_gallery("Original and regenerated", elem_id="regenerate-gallery")
            fidelity = gr.JSON(label="Fidelity and parameters")
            results_action(engine, comparison, fidelity, controls.preset)
    slot = job_slot()
    gr.Examples([[p] for p in example_images()], inputs=[image])

    @user_errors
    @gpu
    def describe(image, preset=engine.default_preset, detailed=False):
        """Describe a picture in words (the captioner of the preset).

        Args:
            image: the picture: an http(s) URL, a data: URL (base64) or an uploaded file
            preset: model preset whose captioner describes it
            detailed: a longer description, where the captioner offers one (Florence-2 on hub presets)

        Returns:
            the description
        """
        return engine.describe(image, preset=preset or None, detail="detailed" if detailed else "short")

    def regenerate(options, progress, slot):
        """Make a picture again from its (edited) description, fresh, keeping its layout (img2img) or following its
        edges (structure); the gallery starts with the original (and the edges followed), and the JSON holds PSNR/SSIM
        against it."""
        conditions = []

        def run(**kwargs):
            result = engine.regenerate(**kwargs)
            conditions.append(result.condition)
            return result

        shown, meta = run_and_show(run, slot, None, progress, **options)
        edges = [(conditions[0], "edges followed")] if conditions and conditions[0] is not None else []
        return [(options["image"], "original"), *edges, *shown], meta

    handler, handler_inputs = job_endpoint(RegenerateParams, {"image": image, **settings}, {"slot": slot}, regenerate)

    describe_event = gr.on([describe_button.click, image.upload], describe, [image, controls.preset, detailed],
                           description, api_name="describe", concurrency_id="captioner")  # fmt: skip
    regenerate_event = regenerate_button.click(handler, handler_inputs, [comparison, fidelity], api_name="regenerate",
                                               concurrency_id="base_pipeline")  # fmt: skip
    wire_stop(stop, slot, [describe_event, regenerate_event])
    keep.change(keep_sliders, keep, [keep_layout, structure], api_visibility="private")


def keep_sliders(mode: str):
    """Show the chosen way of keeping the original and zero the other (the job takes one at a time)."""
    if mode == LAYOUT:
        return gr.update(visible=True), gr.update(visible=False, value=0.0)
    return gr.update(visible=False, value=0.0), gr.update(visible=True, value=1.0)
