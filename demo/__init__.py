"""Depict's UI: one Gradio Blocks app, one module per tab. Never touches tensors."""

from __future__ import annotations

import gradio as gr

from models import Engine
from models.settings import queue_size

from . import describe, edit, history, style, text_to_image
from .controls import CSS
from .results import DELETE_CACHE

TABS = (("Describe → regenerate", describe), ("Text → image", text_to_image), ("Style transfer", style), ("Edit", edit),
        ("History", history))  # fmt: skip


def build(engine: Engine) -> gr.Blocks:
    """The whole app on one engine; queued, one job at a time per pipeline."""
    with gr.Blocks(title="Depict", delete_cache=DELETE_CACHE) as blocks:
        gr.Markdown("# Depict\nDescribe, generate and edit images. Every image downloads as a PNG with its settings.")
        with gr.Tabs():
            for title, tab in TABS:
                with gr.Tab(title):
                    tab.build(engine)
    blocks.queue(max_size=queue_size(), default_concurrency_limit=1)
    return blocks


__all__ = ["CSS", "build"]
