"""History tab: the images kept in the outputs folder, newest first, across restarts."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.outputs import recent
from models.settings import outputs_dir

from .controls import results_gallery
from .load_settings import read_settings

SHOWN = 48


def history_items() -> list[tuple[str, str]]:
    """The newest kept images as (path, caption) gallery items: `[]` when outputs are not kept."""
    folder = outputs_dir()
    if folder is None:
        return []
    return [(str(path), f"{path.parent.parent.name.replace('_', ' ')}, {path.parent.name}")
            for path in recent(folder, SHOWN)]  # fmt: skip


def build(engine: Engine) -> None:
    folder = outputs_dir()
    where = f"kept in `{folder}`" if folder else "not kept: `DEPICT_OUTPUTS` is `off`"
    gr.Markdown(f"Every image the app makes is {where}. Pick one to see its settings; drop its PNG into a tab's "
                "**Load settings** to use them again.")  # fmt: skip
    with gr.Row():
        with gr.Column(scale=3):
            gallery = results_gallery("Recent images, newest first", elem_id="history-gallery", value=history_items)
            refresh = gr.Button("Refresh", elem_id="history-refresh")
        with gr.Column(scale=2):
            download = gr.File(label="PNG with its settings", interactive=False)
            settings = gr.JSON(label="Settings")

    def pick(items, selected: gr.SelectData):
        path = items[selected.index][0]
        return path, read_settings(path)

    refresh.click(history_items, None, gallery, api_name="history")
    gallery.select(pick, gallery, [download, settings], api_visibility="private")
