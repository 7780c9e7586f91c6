"""Image inputs of the tabs: each upload's bytes and declared pixel count are checked before anything decodes it."""

from __future__ import annotations

import gradio as gr
from gradio.data_classes import FileData

from models.images import check_upload


def image_input(**kwargs) -> gr.Image:
    """A `gr.Image` handing the job a file path: gradio reads only the header, and the engine checks bytes and
    pixel count before it decodes."""
    return gr.Image(type="filepath", image_mode=None, format="png", **kwargs)


class CheckedImageEditor(gr.ImageEditor):
    """`gr.ImageEditor` whose pictures (background, layers, composite) are checked before gradio decodes them: the
    stock editor converts each to RGBA with PIL's decompression-bomb check off. A gradio template (as `gr.ImageMask`
    is), so the page draws it as the stock editor."""

    is_template = True

    def convert_and_format_image(self, file, flatten_on_white: bool = False):
        if file is not None:
            try:
                check_upload(file.path if isinstance(file, FileData) else bytes(file), name="image")
            except ValueError as error:
                raise gr.Error(str(error)) from None
        return super().convert_and_format_image(file, flatten_on_white)
