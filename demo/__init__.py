"""Depict's UI: one Gradio Blocks app, one module per tab. Never touches tensors."""

from __future__ import annotations

import os

import gradio as gr

from models import Engine

from . import describe, edit, history, style, text_to_image
from .controls import CSS

QUEUE_SIZE = int(os.environ.get("DEPICT_QUEUE_SIZE", "64"))
TABS = (("Describe → regenerate", describe), ("Text → image", text_to_image), ("Style transfer", style), ("Edit", edit),
        ("History", history))  # fmt: skip


def build(engine: Engine) -> gr.Blocks:
    """The whole app on one engine; queued, one job at a time per pipeline."""
    with gr.Blocks(title="Depict") as blocks:
        gr.Markdown("# Depict\nDescribe, generate and edit images. Every image downloads as a PNG with its settings.")
        with gr.Tabs():
            for title, tab in TABS:
                with gr.Tab(title):
                    tab.build(engine)
    blocks.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return blocks


__all__ = ["CSS", "build"]
