"""Edit tab: paint a mask and say what goes there (inpainting), type an instruction, or upscale the picture."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from models import Engine
from models.jobs import InpaintParams, InstructEditParams
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
from .uploads import CheckedImageEditor, image_input
from .upscale import results_action, scale_picker, upscale_endpoint


def split_editor(editor: dict | None):
    """The editor's picture and its painted strokes' alpha as the mask."""
    if not editor or editor.get("background") is None:
        return None, None
    background = editor["background"].convert("RGB")
    layers = editor.get("layers") or []
    mask = layers[0].getchannel("A") if layers else Image.new("L", background.size, 0)
    return background, mask


def build(engine: Engine) -> None:
    defaults = engine.preset()
    history, slot = gr.State([]), job_slot()
    with gr.Row():
        with gr.Column(scale=2):
            editor = CheckedImageEditor(label="Image (paint over what to change)", elem_id="edit-editor", type="pil",
                                        image_mode="RGBA", brush=gr.Brush(colors=["#ffffff"], default_size=8),
                                        height=320, elem_classes=["depict-pixelated"])  # fmt: skip
            image = image_input(label="image", visible=False)
            mask = image_input(label="mask", visible=False)
            with gr.Tab("Inpaint"):
                prompt = gr.Textbox(label="What goes in the painted region", elem_id="inpaint-prompt", lines=1, max_length=LIMITS.max_prompt_chars)
                gr.Examples([["a large red star in the center on a white background"]], inputs=[prompt])
                strength = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Strength")
                inpaint_button, inpaint_stop = run_buttons("Inpaint", "inpaint-run")
            with gr.Tab("Instruction"):
                instruction = gr.Textbox(label="Instruction", elem_id="instruct-text", placeholder="make the circle green", lines=1,
                                         max_length=LIMITS.max_prompt_chars)  # fmt: skip
                image_guidance = gr.Slider(0.0, 10.0, value=defaults.image_guidance, step=0.1,
                                           label="Image guidance (how closely to keep the picture)")  # fmt: skip
                instruct_button, instruct_stop = run_buttons("Apply instruction", "instruct-run")
                gr.Examples([["make the circle blue"], ["change the background to yellow"], ["turn it into a star"],
                             ["make it small"], ["move it to the left"]], inputs=[instruction])  # fmt: skip
            with gr.Tab("Upscale"):
                scale = scale_picker()
                upscale_button, upscale_stop = run_buttons("Upscale", "upscale-run")
            controls = sampling_controls(engine)
            settings_loader({"prompt": prompt, "strength": strength, "instruction": instruction,
                             "image_guidance": image_guidance, **controls.widgets}, list(engine.registry))  # fmt: skip
        with gr.Column(scale=3):
            gallery = results_gallery(elem_id="edit-gallery")
            info = parameters_view()
            results_action(engine, gallery, info, controls.preset, history)
    gr.Examples([[p] for p in example_images()], inputs=[editor])

    def inpaint(options, progress, history, slot):
        """Repaint the masked region of a picture with what the prompt says."""
        return run_and_show(engine.inpaint, slot, history, progress, **options)

    def instruct_edit(options, progress, history, slot):
        """Edit a picture by an instruction (`make the circle green`)."""
        return run_and_show(engine.instruct_edit, slot, history, progress, **options)

    def from_editor(button: gr.Button):
        """Clicking a run button first hands the editor's picture and strokes to the job's `image` and `mask`."""
        return button.click(split_editor, editor, [image, mask], api_visibility="private", show_progress="hidden")

    # an upload is checked as it arrives (reading the editor's value checks it): a picture too large is refused at
    # once, not at the first run
    editor.upload(lambda _: None, editor, None, api_visibility="private", show_progress="hidden")

    states = {"history": history, "slot": slot}
    inpaint_inputs = {"image": image, "mask": mask, "prompt": prompt, "strength": strength, **controls.widgets}
    inpaint_handler, inpaint_handler_inputs = job_endpoint(InpaintParams, inpaint_inputs, states, inpaint)
    inpaint_event = from_editor(inpaint_button).success(
        inpaint_handler, inpaint_handler_inputs, [gallery, info], api_name="inpaint",
        concurrency_id="base_pipeline",
    )  # fmt: skip
    instruct_inputs = {"image": image, "instruction": instruction, "image_guidance": image_guidance,
                       **controls.without("adapters")}  # instruction editing takes no adapters
    instruct_handler, instruct_handler_inputs = job_endpoint(InstructEditParams, instruct_inputs, states, instruct_edit)
    instruct_event = from_editor(instruct_button).success(
        instruct_handler, instruct_handler_inputs, [gallery, info], api_name="instruct_edit",
        concurrency_id="instruct_pipeline",
    )  # fmt: skip
    upscale_event = upscale_endpoint(engine, image, scale, controls.preset, upscale_button, (gallery, info, history),
                                     slot, trigger=from_editor(upscale_button).success)  # fmt: skip
    wire_stop(inpaint_stop, slot, [inpaint_event])
    wire_stop(instruct_stop, slot, [instruct_event])
    wire_stop(upscale_stop, slot, [upscale_event])
