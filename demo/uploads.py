"""Image inputs of the tabs."""

from __future__ import annotations

import gradio as gr


def image_input(**kwargs) -> gr.Image:
    """A `gr.Image` handing the job a file path: gradio reads only the header, and the engine checks bytes and
    pixel count before it decodes (a `gr.Image` subclass would do it earlier, but the page cannot draw one)."""
    return gr.Image(type="filepath", image_mode=None, format="png", **kwargs)
