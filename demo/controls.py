"""Widgets every tab shares, built by factories so no tab copies another's sliders."""

from __future__ import annotations

import inspect
import math
import random
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields

import gradio as gr

from models import Engine, JobControl
from models.adapters import parse_adapters
from models.jobs import SamplingParams
from models.jobs.docs import field_docs
from models.schedulers import SCHEDULERS
from models.settings import LIMITS

from .gpu import gpu
from .results import add_to_history, save_result
from .user_errors import user_errors

MAX_SEED = LIMITS.max_seed
GALLERY_CLASS = "depict-gallery"
CSS = f""".{GALLERY_CLASS} img, .depict-pixelated img {{ image-rendering: pixelated; }}"""
WIDGET_DOCS = {"seed": "seed of the first image (image i of a batch uses seed + i); -1: a random seed",
               "adapters": "LoRA adapters and their weights as `name:weight, ...` (empty: none)",
               "image": "a picture: an http(s) URL, a data: URL (base64) or an uploaded file",
               "mask": "white (or opaque) where to repaint, the image's size: a URL, a data: URL or a file",
               "style_image": "optional picture whose style is taken (IP-Adapter presets): a URL or a data: URL"}
ENDPOINT_RETURNS = ("a gallery of PNG images, each carrying its generation parameters (its `image` a file URL), "
                    "and the parameters used as JSON")


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
    """The advanced settings of a generating tab: a widget per field of the engine's `SamplingParams`, by name."""

    widgets: dict[str, gr.components.Component]

    @property
    def preset(self) -> gr.Dropdown:
        return self.widgets["preset"]

    def without(self, *names: str) -> dict[str, gr.components.Component]:
        """The widgets but those named (fields a job does not take)."""
        return {name: widget for name, widget in self.widgets.items() if name not in names}


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
        picker.change(user_errors(format_adapters), [picker, adapters], adapters, api_visibility="private")
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
    built = {"negative_prompt": negative_prompt, "seed": seed, "steps": steps, "guidance": guidance, "scheduler": scheduler,
             "num_images": num_images, "adapters": adapters, "preset": preset_box, "fast_decode": fast_decode}  # fmt: skip
    return SamplingControls({field.name: built[field.name] for field in fields(SamplingParams)})


def results_gallery(label: str = "Results", elem_id: str | None = None, value=None) -> gr.Gallery:
    """Newest results first; PNGs at native size (with their parameters), shown upscaled."""
    return gr.Gallery(value, label=label, format="png", columns=4, fit_columns=False, height=420, object_fit="contain",
                      elem_id=elem_id, elem_classes=[GALLERY_CLASS], interactive=False)  # fmt: skip


def engine_options(params: type, values: dict) -> dict:
    """Widget values -> the keyword options of the engine job taking `params`, each converted by its field's type
    (sliders send 4.0 for 4; an empty box means the field's default; adapters are typed as `name:weight, ...`; a seed
    of -1 is random). A value that cannot be converted goes to the engine unchanged, so its checks name the field."""
    hints = typing.get_type_hints(params)
    defaults = {f.name for f in fields(params) if f.default is not MISSING or f.default_factory is not MISSING}
    options = {}
    for name, value in values.items():
        kinds = set(typing.get_args(hints[name])) or {hints[name]}
        if name == "seed":
            value = resolve_seed(value)
        elif value is None or (isinstance(value, str) and not value and kinds != {str}):
            if name in defaults:
                continue
        elif dict in kinds or typing.get_origin(hints[name]) is dict:
            value = parse_adapters(value) if isinstance(value, str) else value
        elif int in kinds:
            value = whole(value)
        elif float in kinds and isinstance(value, (int, float)):
            value = float(value)
        elif bool in kinds:
            value = bool(value)
        options[name] = value
    return options


def endpoint_doc(summary: str, params: type, names: list[str]) -> str:
    """An endpoint's docstring in the layout Gradio reads for its API page and MCP tools: `summary`, an `Args:` line
    per parameter (the params field's own comment, or how the page takes it), and `Returns:`."""
    docs = {**field_docs(params), **WIDGET_DOCS}
    args = "\n".join(f"    {name}: {docs[name]}" for name in names)
    return f"{summary}\n\nArgs:\n{args}\n\nReturns:\n    {ENDPOINT_RETURNS}"


def job_endpoint(params: type, inputs: dict, states: dict[str, gr.State], body: Callable) -> tuple[Callable, list]:
    """A tab's event handler and its input list: the handler takes `inputs`' widget values by name, then `states`'
    values; its signature names them (the endpoint's API parameters, defaulting to the widgets' initial values; a
    field the engine job requires has no default). `body(options, progress, **states)` gets the job's keyword options
    (`engine_options`). Engine errors become messages (`user_errors`); on ZeroGPU the call holds a GPU. The handler
    takes `body`'s name and, with each parameter documented, its docstring: an MCP tool of that name (`--mcp`)."""
    required = {f.name for f in fields(params) if f.default is MISSING and f.default_factory is MISSING}
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(name, keyword, default=inspect.Parameter.empty if name in required else widget.value)
                  for name, widget in inputs.items()]  # fmt: skip
    parameters += [inspect.Parameter(name, keyword, default=None) for name in states]
    parameters.append(inspect.Parameter("progress", keyword, default=gr.Progress()))

    def handler(*args, **kwargs):
        values = handler.__signature__.bind(*args, **kwargs)
        values.apply_defaults()
        arguments = dict(values.arguments)
        progress = arguments.pop("progress")
        held = {name: arguments.pop(name) for name in states}
        return body(engine_options(params, arguments), progress, **held)

    handler.__signature__ = inspect.Signature(parameters)
    handler.__name__ = handler.__qualname__ = body.__name__
    handler.__doc__ = endpoint_doc(inspect.getdoc(body) or "", params, list(inputs))
    return user_errors(gpu(handler)), [*inputs.values(), *states.values()]


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


def run_and_show(job, slot: dict | None, history: list | None, progress: gr.Progress, **kwargs):
    """Run an engine job with progress and a cancel handle; (gallery items, metadata). The session's `history` (a
    `gr.State` list, None outside a page session) takes the new images first, in place: no event outputs a state,
    so an MCP tool call returns just the gallery and the parameters.

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
    shown = add_to_history(history, saved)
    if history is not None:
        history[:] = shown
    return shown, metadata
