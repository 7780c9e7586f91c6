"""The one wrapper that turns engine errors into `gr.Error` messages a person can act on."""

from __future__ import annotations

import functools
import logging

import gradio as gr

from models import JobCancelled, OutOfMemory, PresetUnavailable

log = logging.getLogger(__name__)


def user_errors(fn):
    """Run a UI handler; bad input and known failures become a `gr.Error` with the engine's sentence."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, PresetUnavailable, OutOfMemory) as error:
            raise gr.Error(str(error), title="Cannot do that") from error
        except JobCancelled as error:
            raise gr.Error("Stopped.", title="Cancelled", duration=3) from error
        except Exception as error:
            log.exception("job failed")
            raise gr.Error(f"The job failed unexpectedly ({type(error).__name__}); please try again.") from error

    return wrapper
