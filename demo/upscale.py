"""Upscale: a picture made 2x or 4x larger, from the Edit tab (the `/upscale` endpoint) or from a results gallery
(its selected picture), the upscaled picture joining that gallery."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.jobs import SCALES, UpscaleParams

from .controls import job_endpoint, run_and_show
from .user_errors import user_errors


def scale_picker() -> gr.Radio:
    return gr.Radio(list(SCALES), value=SCALES[0], label="Upscale by")


def upscale_endpoint(engine: Engine, image: gr.Image, scale: gr.Radio, preset: gr.Dropdown, button: gr.Button,
                     outputs: tuple[gr.Gallery, gr.JSON, gr.State], slot: gr.State, trigger=None):  # fmt: skip
    """The named `/upscale` endpoint: `image` at `scale` with `preset`'s upscaler; the result joins the gallery's
    history. `trigger` (a button's click by default) may first fill `image`."""
    gallery, info, history = outputs

    def upscale(options, progress, history, slot):
        """Make a picture 2x or 4x larger with the preset's upscaler (`scale`: 2 or 4)."""
        return run_and_show(engine.upscale, slot, history, progress, **options)

    inputs = {"image": image, "scale": scale, "preset": preset}
    handler, handler_inputs = job_endpoint(UpscaleParams, inputs, {"history": history, "slot": slot}, upscale)
    return (trigger or button.click)(handler, handler_inputs, [gallery, info], api_name="upscale",
                                     concurrency_id="upscaler")  # fmt: skip


def results_action(engine: Engine, gallery: gr.Gallery, info: gr.JSON, preset: gr.Dropdown,
                   history: gr.State | None = None) -> None:  # fmt: skip
    """Under a results gallery: upscale the picture picked in it; the upscaled one is put first in the gallery (and
    in the tab's `history`, when it keeps one)."""
    with gr.Row():
        scale = scale_picker()
        button = gr.Button("Upscale the picked result")
    picked = gr.State(None)

    def pick_result(items, selected: gr.SelectData):
        return items[selected.index][0]

    @user_errors
    def upscale_picked(items, path, scale, preset, history, progress=gr.Progress()):  # apart from `/upscale`
        if path is None:
            raise gr.Error("Pick a result in the gallery first, then upscale it.", title="Nothing picked")
        shown, metadata = run_and_show(engine.upscale, None, items, progress, image=path, scale=int(scale),
                                       preset=preset or None)  # fmt: skip
        history[:] = shown  # the tab's next job keeps the upscaled picture in its gallery
        return shown, metadata

    gallery.select(pick_result, gallery, picked, api_visibility="private")
    history = history if history is not None else gr.State([])
    button.click(upscale_picked, [gallery, picked, scale, preset, history], [gallery, info], api_visibility="private",
                 concurrency_id="upscaler")  # fmt: skip
