"""History tab: the images kept in the outputs folder, newest first, across restarts; with logins, each login's own."""

from __future__ import annotations

import logging

import gradio as gr

from models import Engine
from models.outputs import owner_folder, recent
from models.settings import outputs_dir

from .controls import results_gallery
from .load_settings import read_settings
from .results import shown_copy

SHOWN = 48
log = logging.getLogger(__name__)


def history_items(request: gr.Request | None = None) -> list[tuple[str, str]]:
    """The newest images kept for this request's login (all kept images without logins) as (path, caption) gallery
    items: `[]` when outputs are not kept, and outside a request (the page's built-in value, which every visitor
    gets; each page load then fills it)."""
    folder = outputs_dir()
    if folder is None or request is None:
        return []
    folder, items = owner_folder(folder, request.username), []
    for path in recent(folder, SHOWN):
        caption = f"{path.parent.parent.name.replace('_', ' ')}, {path.parent.name}"
        try:
            items.append((str(shown_copy(path, folder)), caption))
        except OSError as error:  # gone since it was listed, unreadable, or no room for the copy: not shown
            log.warning("History skips %s (%s)", path, error)
    return items


def build(engine: Engine) -> None:
    folder = outputs_dir()
    where = f"kept in `{folder}`" if folder else "not kept: `DEPICT_OUTPUTS` is `off`"
    gr.Markdown(f"Every image the app makes is {where} (with logins, each login sees only its own). Pick one to see "
                "its settings; drop its PNG into a tab's **Load settings** to use them again.")  # fmt: skip
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
