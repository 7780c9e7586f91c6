"""Compile paid once per machine: Inductor's FX graph and AOTAutograd caches in one git-ignored folder
(`DEPICT_COMPILE_CACHE`), stamped with the torch version; a stale or corrupt cache is rebuilt, never a crash."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from .settings import compile_cache_dir

log = logging.getLogger(__name__)

STAMP = "torch_version"
# what a broken cache or a failed compile raises; anything else is the request's own error
COMPILE_ERRORS = (torch._dynamo.exc.TorchDynamoException, pickle.UnpicklingError, EOFError, OSError, ImportError)


def rebuild(folder: Path) -> None:
    """An empty cache folder stamped with this torch's version."""
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.exists():
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).write_text(torch.__version__)


def prepare() -> Path:
    """Point Inductor's on-disk caches at the folder (rebuilt when another torch wrote it or it is unreadable)."""
    folder = compile_cache_dir().resolve()
    try:
        fresh = (folder / STAMP).read_text() == torch.__version__
    except (OSError, UnicodeDecodeError):
        fresh = False
    if not fresh:
        log.info("compile cache %s: new or stale, rebuilt", folder)
        rebuild(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    torch._inductor.config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True
    return folder


def guarded_call(run: Callable, eager: Callable[[], None]):
    """`run()` through something compiled; on a compile or cache failure the cache is rebuilt and it compiles again,
    and if that fails too `eager()` switches it to its uncompiled path and it runs so."""
    try:
        return run()
    except COMPILE_ERRORS as error:
        log.warning("compile failed (%s: %s); rebuilding the compile cache", type(error).__name__, str(error)[:200])
    rebuild(compile_cache_dir().resolve())
    torch._dynamo.reset()
    try:
        return run()
    except COMPILE_ERRORS as error:
        log.warning("compile failed again (%s); running eagerly", type(error).__name__)
    eager()
    return run()
