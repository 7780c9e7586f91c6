"""Edit tab: paint a mask and say what goes there (inpainting), or type an instruction."""

from __future__ import annotations

import gradio as gr
from PIL import Image

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
    with gr.Row():
        with gr.Column(scale=2):
            editor = gr.ImageEditor(label="Image (paint over what to change)", elem_id="edit-editor", type="pil", image_mode="RGBA",
                                    brush=gr.Brush(colors=["#ffffff"], default_size=8), height=320,
                                    elem_classes=["depict-pixelated"])  # fmt: skip
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
            controls = sampling_controls(engine)
            settings_loader({"prompt": prompt, "strength": strength, "instruction": instruction,
                             "image_guidance": image_guidance, **controls.fields()}, list(engine.registry))  # fmt: skip
        with gr.Column(scale=3):
            gallery = results_gallery(elem_id="edit-gallery")
            info = parameters_view()
    history, slot = gr.State([]), job_slot()
    gr.Examples([[p] for p in example_images()], inputs=[editor])

    @user_errors
    @gpu
    def inpaint(image, mask, prompt, strength=1.0, negative_prompt="", seed=0, steps=defaults.steps,
                guidance=defaults.guidance, scheduler="", num_images=1, adapters="", preset=engine.default_preset, fast_decode=None,
                history=None, slot=None, progress=gr.Progress()):  # fmt: skip
        options = sampling_options(negative_prompt, seed, steps, guidance, scheduler, num_images, adapters, preset, fast_decode)
        return run_and_show(engine.inpaint, slot, history, progress, image=image, mask=mask, prompt=prompt,
                            strength=float(strength), **options)  # fmt: skip

    @user_errors
    @gpu
    def instruct_edit(image, instruction, image_guidance=defaults.image_guidance, negative_prompt="", seed=0,
                      steps=defaults.steps, guidance=defaults.guidance, scheduler="", num_images=1,
                      preset=engine.default_preset, fast_decode=None, history=None, slot=None, progress=gr.Progress()):  # fmt: skip
        options = sampling_options(negative_prompt, seed, steps, guidance, scheduler, num_images, "", preset, fast_decode)
        return run_and_show(engine.instruct_edit, slot, history, progress, image=image, instruction=instruction,
                            image_guidance=float(image_guidance), **options)  # fmt: skip

    def from_editor(button: gr.Button):
        """Clicking a run button first hands the editor's picture and strokes to the job's `image` and `mask`."""
        return button.click(split_editor, editor, [image, mask], queue=False, api_visibility="private",
                            show_progress="hidden")  # fmt: skip

    c = controls
    inpaint_event = from_editor(inpaint_button).then(
        inpaint, [image, mask, prompt, strength, *c.inputs(), history, slot], [gallery, info, history],
        api_name="inpaint", concurrency_id="base_pipeline",
    )  # fmt: skip
    instruct_event = from_editor(instruct_button).then(
        instruct_edit,
        [image, instruction, image_guidance, c.negative_prompt, c.seed, c.steps, c.guidance, c.scheduler, c.num_images,
         c.preset, c.fast_decode, history, slot],
        [gallery, info, history], api_name="instruct_edit", concurrency_id="instruct_pipeline",
    )  # fmt: skip
    wire_stop(inpaint_stop, slot, [inpaint_event])
    wire_stop(instruct_stop, slot, [instruct_event])
