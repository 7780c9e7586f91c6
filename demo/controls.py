"""Widgets every tab shares, built by factories so no tab copies another's sliders."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import gradio as gr

from models import Engine, JobControl
from models.schedulers import SCHEDULERS
from models.settings import LIMITS

from .outputs import add_to_history, save_result

MAX_SEED = LIMITS.max_seed
GALLERY_CLASS = "depict-gallery"
CSS = f""".{GALLERY_CLASS} img, .depict-pixelated img {{ image-rendering: pixelated; }}"""


def parse_adapters(text: str | None) -> dict[str, float]:
    """`"warm:0.8, cool"` -> {"warm": 0.8, "cool": 1.0} (A1111-like; a bare name means weight 1)."""
    adapters = {}
    for item in filter(None, (part.strip() for part in re.split(r"[,\n]", text or ""))):
        name, _, weight = item.rpartition(":") if ":" in item else (item, "", "1")
        try:
            adapters[name.strip()] = float(weight)
        except ValueError:
            raise gr.Error(f"Adapter weight for {name.strip()!r} must be a number, got {weight!r}.") from None
    return adapters


def format_adapters(names: list[str], current: str) -> str:
    """Adapter text for the picked names, keeping weights already typed."""
    weights = parse_adapters(current)
    return ", ".join(f"{name}:{weights.get(name, 1.0):g}" for name in names)


def whole(value):
    """A widget's number as `int` when it is whole (sliders send 4.0); anything else goes to the engine unchanged,
    so its checks name the field (`steps` must be a whole number...) instead of Python's conversion error."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def resolve_seed(seed):
    """-1 (or empty) means a random seed, as in A1111."""
    seed = whole(seed)
    if seed is None or seed == "" or (isinstance(seed, int) and seed < 0):
        return random.randint(0, MAX_SEED)
    return seed


def preset_choices(engine: Engine) -> list[tuple[str, str]]:
    return [(p["label"] + ("" if p["available"] else " (not downloaded)"), p["name"]) for p in engine.presets()]


@dataclass
class SamplingControls:
    """The advanced settings of a generating tab, in the order its handler takes them."""

    negative_prompt: gr.Textbox
    seed: gr.Number
    steps: gr.Slider
    guidance: gr.Slider
    scheduler: gr.Dropdown
    num_images: gr.Slider
    adapters: gr.Textbox
    preset: gr.Dropdown
    fast_decode: gr.Checkbox

    def inputs(self) -> list:
        return list(self.fields().values())

    def fields(self) -> dict:
        """Parameter name -> widget, in the order handlers take them."""
        return {"negative_prompt": self.negative_prompt, "seed": self.seed, "steps": self.steps,
                "guidance": self.guidance, "scheduler": self.scheduler, "num_images": self.num_images,
                "adapters": self.adapters, "preset": self.preset, "fast_decode": self.fast_decode}  # fmt: skip


def seed_box() -> gr.Number:
    """A seed field with a dice button that draws a random seed."""
    with gr.Row(equal_height=True):
        seed = gr.Number(label="Seed (-1 = random)", value=0, precision=0, minimum=-1, maximum=MAX_SEED, scale=4)
        dice = gr.Button("🎲", scale=1, min_width=40)
    dice.click(lambda: random.randint(0, MAX_SEED), outputs=seed, api_visibility="private")
    return seed


def sampler_choices(preset) -> list[tuple[str, str]]:
    """The samplers a preset's model works with (a distilled student's own only), after its default."""
    return [("model default", "")] + [(name, name) for name in preset.samplers or SCHEDULERS]


def sampling_controls(engine: Engine, show_batch: bool = True, job: str = "") -> SamplingControls:
    """The settings every generating tab shares; `job` picks the preset's default guidance for that job."""
    preset = engine.preset()
    with gr.Accordion("Settings", open=False):
        negative_prompt = gr.Textbox(label="Negative prompt", value="", lines=1, max_length=LIMITS.max_prompt_chars)
        seed = seed_box()
        with gr.Row():
            steps = gr.Slider(1, LIMITS.max_steps, value=preset.steps, step=1, label="Steps")
            guidance = gr.Slider(0.0, LIMITS.max_guidance, value=preset.default_guidance(job), step=0.1,
                                 label="Guidance (CFG)")
        with gr.Row():
            scheduler = gr.Dropdown(sampler_choices(preset), value="", label="Sampler")
            num_images = gr.Slider(1, LIMITS.max_images, value=1, step=1, label="Images", visible=show_batch)
        with gr.Row():
            names = engine.adapters()
            picker = gr.Dropdown(names, multiselect=True, label="LoRA adapters", scale=2)
            adapters = gr.Textbox(label="Adapter weights (name:weight, ...)", value="", scale=3)
        picker.change(format_adapters, [picker, adapters], adapters, api_visibility="private")
        preset_box = gr.Dropdown(preset_choices(engine), value=engine.default_preset, label="Model preset")
        fast_decode = gr.Checkbox(value=engine.policy.device == "cpu", label="Fast decode (the preset's tiny autoencoder, if it has one)")

        def preset_defaults(name):
            chosen = engine.preset(name)
            return gr.update(value=chosen.steps), gr.update(value=chosen.default_guidance(job))

        # defaults follow a preset the user picks, not one restored by "Load settings" with its own steps and guidance
        preset_box.input(preset_defaults, preset_box, [steps, guidance], api_visibility="private")
        preset_box.change(lambda name: gr.update(choices=engine.adapters(name), value=[]), preset_box, picker,
                          api_visibility="private")  # fmt: skip

        def preset_samplers(name, current):
            choices = sampler_choices(engine.preset(name))
            return gr.update(choices=choices, value=current if current in dict(choices).values() else "")

        preset_box.change(preset_samplers, [preset_box, scheduler], scheduler, api_visibility="private")
    return SamplingControls(negative_prompt, seed, steps, guidance, scheduler, num_images, adapters, preset_box, fast_decode)


def results_gallery(label: str = "Results", elem_id: str | None = None, value=None) -> gr.Gallery:
    """Newest results first; PNGs at native size (with their parameters), shown upscaled."""
    return gr.Gallery(value, label=label, format="png", columns=4, fit_columns=False, height=420, object_fit="contain",
                      elem_id=elem_id, elem_classes=[GALLERY_CLASS], interactive=False)  # fmt: skip


def sampling_options(negative_prompt, seed, steps, guidance, scheduler, num_images, adapters, preset,
                     fast_decode=None) -> dict:  # fmt: skip
    """Widget values -> the engine's keyword options."""
    return {
        "negative_prompt": negative_prompt or "",
        "seed": resolve_seed(seed),
        "steps": whole(steps),
        "guidance": float(guidance) if guidance is not None else None,
        "scheduler": scheduler or None,
        "num_images": whole(num_images) if num_images is not None else 1,
        "adapters": parse_adapters(adapters),
        "preset": preset or None,
        "fast_decode": bool(fast_decode) if fast_decode is not None else None,
    }


def job_slot() -> gr.State:
    """Per-session holder of the running job's control, so a Stop button can cancel its diffusion loop."""
    return gr.State({})


def run_buttons(label: str, elem_id: str) -> tuple[gr.Button, gr.Button]:
    """A primary run button and a Stop button beside it."""
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=elem_id, scale=3)
        stop = gr.Button("Stop", variant="stop", scale=1)
    return run, stop


def wire_stop(button: gr.Button, slot: gr.State, events: list) -> None:
    """The Stop button cancels the session's running job within one denoising step."""

    def stop(current: dict) -> None:
        control = current.get("control")
        if control is not None:
            control.cancel.set()

    button.click(stop, slot, None, cancels=events, api_visibility="private")


def parameters_view() -> gr.JSON:
    """The last run's full parameters, folded away."""
    with gr.Accordion("Parameters", open=False):
        return gr.JSON(label="Parameters")


def run_and_show(job, slot: dict | None, history, progress: gr.Progress, **kwargs):
    """Run an engine job with progress and a cancel handle; (gallery items, metadata, new history).

    The result's warnings (and any about keeping it on disk) are shown and returned in its metadata."""
    control = JobControl(on_step=lambda done, total: progress((done, total), desc="denoising"),
                         on_message=lambda text: progress(None, desc=text))  # fmt: skip
    if slot is not None:
        slot["control"] = control
    result = job(control=control, **kwargs)
    saved, not_kept = save_result(result)
    metadata = result.metadata
    if not_kept:
        metadata = {**metadata, "warnings": [*metadata.get("warnings", []), *not_kept]}
    for warning in metadata.get("warnings", []):
        gr.Warning(warning)
    history = add_to_history(history, saved)
    return history, metadata, history
