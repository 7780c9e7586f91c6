"""Compile paid once per machine, in one git-ignored folder (`DEPICT_COMPILE_CACHE`) stamped with the torch version;
a stale or corrupt cache is rebuilt, never a crash.

On CPU a compiled UNet is an AOTInductor package per input signature (`compile_ahead`): exported and compiled on
the first call of a shape, its shared library kept beside the others, and loaded by later starts in about a second
and a half, with no Dynamo and no Inductor in the way. It is frozen: the weights are folded in as oneDNN-prepacked
constants, which is what makes compiling pay on CPU (SD-Turbo bf16 UNet at 512x512: 0.99 s a pass against 1.13 s
eager; unfrozen 1.31 s), so the library carries them and its name holds a digest of them, a fused speed LoRA
included. (An unfrozen package handed the module's tensors through `load_constants` does not do: it drew another
model's image wrong by up to 0.05, having folded in some of the weights it was compiled with.) On CUDA, where a
second copy of the weights would cost device memory, the UNet goes through `torch.compile`, as does the int8 graph;
their FX graph and AOTAutograd caches live in the same folder (`prepare`, `guarded_call`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import pickle
import shutil
import time
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path

import diffusers
import torch

from .cpu import cpu_has_amx, cpu_has_native_bf16, cpu_has_vnni
from .graphs import GraphForward, Interface, Positional, signature
from .settings import compile_cache_bytes, compile_cache_dir

log = logging.getLogger(__name__)

STAMP = "depict-compile-cache"  # marks a folder this cache made; holds the torch version that wrote it
LEGACY_STAMP = "torch_version"  # the stamp of caches made before v2, whose whole folder was the cache's
LIBRARY = "*-" + "?" * 20 + ".so"  # a library's name: its class, then 20 hex digits of its key (`library_path`)
INDUCTOR = "inductor"  # Inductor's on-disk caches (CUDA's torch.compile, the int8 graph), a subfolder of its own
OPENVINO = "openvino"  # OpenVINO's IR files and compiled blobs (`models.openvino_runtime`)
OPENVINO_BLOBS = "blobs"  # OpenVINO's compiled-model cache (its `CACHE_DIR`), a subfolder of `OPENVINO`
MAX_LIBRARIES = 8  # compiled libraries kept, least recently used removed first (a frozen SD-sized one: ~1.7 GB)
SAMPLES_PER_TENSOR = 256  # weight values per tensor in a library's digest
# what a broken cache or a failed compile raises; anything else is the request's own error
COMPILE_ERRORS = (torch._dynamo.exc.TorchDynamoException, pickle.UnpicklingError, EOFError, OSError, ImportError)


class CacheRefused(RuntimeError):
    """The compile cache folder is not one this cache may write: compiling is off, the request runs eagerly."""


def _written_here(folder: Path) -> list[Path]:
    """What this cache writes in its folder: libraries, their partial files, Inductor's subfolder, the stamp."""
    return [*folder.glob(LIBRARY), *folder.glob("*.partial*"), folder / INDUCTOR, folder / OPENVINO, folder / STAMP]


def clear(folder: Path) -> None:
    """Remove what this cache wrote in `folder` (nothing else) and stamp it with this torch's version."""
    if (folder / LEGACY_STAMP).is_file():  # made whole by an earlier version of this cache
        shutil.rmtree(folder, ignore_errors=True)
    for path in _written_here(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).write_text(torch.__version__)


def prepare() -> Path:
    """The cache folder, made and stamped when new, cleared when another torch wrote it or it is unreadable, with
    Inductor's on-disk caches pointed at its subfolder. `CacheRefused` for a folder this cache did not make that
    holds other files, or one that other users may write (a library there would run as this process's code)."""
    folder = compile_cache_dir().resolve()
    if folder.exists() and not folder.is_dir():
        raise CacheRefused(f"`DEPICT_COMPILE_CACHE` {folder} is a file, not a folder; compiling is off.")
    stamp = folder / STAMP
    if folder.is_dir() and not stamp.is_file() and not (folder / LEGACY_STAMP).is_file() and any(folder.iterdir()):
        raise CacheRefused(f"`DEPICT_COMPILE_CACHE` {folder} holds files this cache did not write; point it at an "
                           "empty or new folder (compiling is off until then).")  # fmt: skip
    if folder.is_dir() and folder.stat().st_mode & 0o022:
        raise CacheRefused(f"`DEPICT_COMPILE_CACHE` {folder} may be written by other users, and its libraries run as "
                           "this process's code; make it private (chmod go-w) (compiling is off until then).")  # fmt: skip
    try:
        fresh = stamp.read_text() == torch.__version__
    except (OSError, UnicodeDecodeError):
        fresh = False
    if not fresh:
        log.info("compile cache %s: new or stale, cleared", folder)
        clear(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / INDUCTOR)
    torch._inductor.config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True
    return folder


def guarded_call(run: Callable, eager: Callable[[], None]):
    """`run()` through something compiled; on a compile or cache failure the cache is cleared and it compiles again,
    and if that fails too `eager()` switches it to its uncompiled path and it runs so."""
    try:
        return run()
    except COMPILE_ERRORS as error:
        log.warning("compile failed (%s: %s); clearing the compile cache", type(error).__name__, str(error)[:200])
    clear(compile_cache_dir().resolve())
    torch._dynamo.reset()
    try:
        return run()
    except COMPILE_ERRORS as error:
        log.warning("compile failed again (%s); running eagerly", type(error).__name__)
    eager()
    return run()


def weights_digest(recorded: torch.nn.Module) -> str:
    """Names, shapes, dtypes, layouts and evenly spaced values of every weight: what a frozen library was built
    from (another checkpoint or a fused LoRA changes values throughout). Taken once per module, at its first build
    or read, after its load (a fused speed LoRA included): a request's own LoRA layers, added later, are never part of
    its graphs."""
    if recorded not in _DIGESTS:
        _DIGESTS[recorded] = _digest(recorded)
    return _DIGESTS[recorded]


_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _digest(recorded: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in (*recorded.named_parameters(), *recorded.named_buffers()):
        flat = tensor.detach().reshape(-1)
        count = min(flat.numel(), SAMPLES_PER_TENSOR)
        picks = torch.arange(count) * (flat.numel() - 1) // max(count - 1, 1)  # integers: exact at any size
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}{tensor.stride()}".encode())
        digest.update(flat[picks].float().cpu().numpy().tobytes())
    return digest.hexdigest()


def config_of(module: torch.nn.Module) -> dict:
    """A module's configuration as a dict: diffusers' (a FrozenDict) or transformers' (a PretrainedConfig)."""
    config = getattr(module, "config", {})
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def library_path(recorded: Positional, inputs: tuple) -> Path:
    """Where the compiled library for these inputs lives: its name holds everything the compiled code depends on."""
    module = recorded.module
    facts = {
        "torch": torch.__version__, "diffusers": diffusers.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": [cpu_has_native_bf16(), cpu_has_amx(), cpu_has_vnni()], "class": type(module).__name__,
        "config": config_of(module),
        "interface": [recorded.interface.names, recorded.interface.nested],
        "inputs": [(*key, tuple(t.stride())) for key, t in zip(signature(inputs), inputs, strict=True)],
        "weights": weights_digest(recorded),
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return compile_cache_dir().resolve() / f"{type(module).__name__}-{key}.so"


def build(recorded: Positional, inputs: tuple, path: Path) -> None:
    """Export `recorded` at `inputs`, compile it, frozen, into an AOTInductor package and keep the package's one
    shared library at `path` (written whole, then renamed); the least recently used beyond `MAX_LIBRARIES` are
    removed."""
    started = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(recorded, inputs)
    package, library = (path.with_name(f"{path.stem}.{os.getpid()}.partial{suffix}") for suffix in (".pt2", ".so"))
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(package),
                                                 inductor_configs={"freezing": True})  # fmt: skip
        with zipfile.ZipFile(package) as archive, open(library, "wb") as out:
            member = next(name for name in archive.namelist() if name.endswith(".wrapper.so"))
            shutil.copyfileobj(archive.open(member), out)
        os.replace(library, path)
    finally:
        package.unlink(missing_ok=True)
        library.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    log.info("compiled %s at %s in %.1fs", type(recorded.module).__name__, signature(inputs), seconds)
    prune(path.parent)


def prune(folder: Path) -> None:
    """Remove the least recently used libraries beyond `MAX_LIBRARIES`, and libraries, OpenVINO models and OpenVINO's
    compiled blobs beyond the disk budget (`DEPICT_COMPILE_CACHE_GB`)."""
    libraries = [[path] for path in folder.glob(LIBRARY) if ".partial" not in path.name]
    models = [[path, path.with_suffix(".bin")] for path in (folder / OPENVINO).glob(LIBRARY.replace(".so", ".xml"))
              if ".partial" not in path.name]  # fmt: skip
    blobs = [[path] for path in (folder / OPENVINO / OPENVINO_BLOBS).glob("*.blob")]  # OpenVINO's compiled models
    newest_first = sorted(libraries + models + blobs, key=lambda files: files[0].stat().st_mtime, reverse=True)
    used, kept_libraries = 0, 0
    for files in newest_first:
        used += sum(path.stat().st_size for path in files if path.exists())
        kept_libraries += files[0].suffix == ".so"
        if used > compile_cache_bytes() or kept_libraries > MAX_LIBRARIES:
            for path in files:
                path.unlink(missing_ok=True)


def load(path: Path) -> Callable:
    """The compiled library at `path` as a callable (inputs made contiguous, as they were exported). Loaded by
    AOTInductor's CPU runner itself: `aoti_load_package` first unpacks the whole archive, which took 7-8 s for an
    SD-sized one against 1.3 s for its library alone."""
    runner = torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1)
    path.touch()  # recently used: pruned last
    return lambda *inputs: runner.run([t.contiguous() for t in inputs])[0]


def read_library(recorded: Positional, inputs: tuple) -> Callable | None:
    """The compiled library for these inputs from the cache folder; None when it is not there or cannot be read
    (then it is removed)."""
    path = library_path(recorded, inputs)
    if not path.is_file():
        return None
    try:
        return load(path)
    except Exception as error:  # whatever a broken file raises: compile it again
        log.warning("compiled library %s unreadable (%s: %s); compiling again", path.name, type(error).__name__,
                    str(error)[:200])  # fmt: skip
        path.unlink(missing_ok=True)
        return None


def library_for(recorded: Positional, inputs: tuple) -> Callable:
    """The compiled library for these inputs: read from the cache folder, else compiled into it from a copy of the
    module."""
    library = read_library(recorded, inputs)
    if library is not None:
        return library
    path = library_path(recorded, inputs)
    build(copy.deepcopy(recorded), inputs, path)  # export swaps the module's weights while it traces: a request
    return load(path)  # running the module meanwhile must see its own


def compile_ahead(module: torch.nn.Module, interface: Interface) -> GraphForward:
    """Run `module` (on CPU) through frozen AOTInductor libraries, one per input signature (`library_for`, made in
    the background from the first call of a signature, or read there when already compiled); a signature
    that does not compile runs eagerly."""
    stand_in = GraphForward(module, interface, "compiled")
    recorded = Positional(module, stand_in.eager, interface).eval()

    stand_in.make = lambda inputs: library_for(recorded, tuple(t.contiguous() for t in inputs))
    stand_in.read = lambda inputs: read_library(recorded, tuple(t.contiguous() for t in inputs))
    return stand_in
