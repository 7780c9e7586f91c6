"""The image upload component: unreadable or oversized files are refused with a clear message before decoding."""

from __future__ import annotations

import gradio as gr

from models.images import check_image_file

from gradio.events import Dependency

class ImageUpload(gr.Image):
    """A file-path `gr.Image` whose uploads are checked (bytes, header, pixel count) before gradio opens them.

    `name` is the argument the engine knows it by, so messages read the same as the engine's own.
    """

    def __init__(self, *, name: str = "image", **kwargs):
        self.argument = name
        super().__init__(type="filepath", image_mode=None, format="png", **kwargs)

    def preprocess(self, payload):
        if payload is not None and payload.path:
            try:
                check_image_file(payload.path, name=self.argument)
            except ValueError as error:
                raise gr.Error(str(error), title="Cannot use that upload") from error
        return super().preprocess(payload)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component