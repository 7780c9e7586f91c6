"""Progress reporting and cancellation for a running job, wired to diffusers' `callback_on_step_end`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class JobControl:
    """`on_step(done, total)` is called after every denoising step, `on_message(text)` when the job waits for
    something (compilation); setting `cancel` stops the loop."""

    on_step: Callable[[int, int], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    on_message: Callable[[str], None] | None = None

    def report(self, message: str) -> None:
        if self.on_message is not None:
            self.on_message(message)

    def callback(self, total: int):
        """A `callback_on_step_end` that reports progress and raises the pipeline's interrupt flag on cancel."""

        def on_step_end(pipeline, step: int, timestep, tensors: dict) -> dict:
            if self.on_step is not None:
                self.on_step(step + 1, getattr(pipeline, "num_timesteps", None) or total)
            if self.cancel.is_set():
                pipeline._interrupt = True
            return tensors

        return on_step_end
