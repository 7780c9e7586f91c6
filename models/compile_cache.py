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

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from .graphs import GraphForward, Interface, Positional, signature
from .settings import compile_cache_dir

log = logging.getLogger(__name__)

STAMP = "torch_version"
MAX_LIBRARIES = 8  # compiled libraries kept, least recently used removed first (a frozen SD-sized one: ~1.7 GB)
SAMPLES_PER_TENSOR = 256  # weight values per tensor in a library's digest
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
    """The cache folder (rebuilt when another torch wrote it or it is unreadable), with Inductor's on-disk caches
    pointed at it."""
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


def weights_digest(recorded: torch.nn.Module) -> str:
    """Names, shapes, dtypes, layouts and evenly spaced values of every weight: what a frozen library was built
    from (another checkpoint or a fused LoRA changes values throughout)."""
    digest = hashlib.sha256()
    for name, tensor in (*recorded.named_parameters(), *recorded.named_buffers()):
        flat = tensor.detach().reshape(-1)
        count = min(flat.numel(), SAMPLES_PER_TENSOR)
        picks = torch.arange(count) * (flat.numel() - 1) // max(count - 1, 1)  # integers: exact at any size
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}{tensor.stride()}".encode())
        digest.update(flat[picks].float().cpu().numpy().tobytes())
    return digest.hexdigest()


def library_path(recorded: Positional, inputs: tuple) -> Path:
    """Where the compiled library for these inputs lives: its name holds everything the compiled code depends on."""
    module = recorded.module
    facts = {
        "torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(), "class": type(module).__name__,
        "config": dict(getattr(module, "config", {})),
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
    libraries = sorted((p for p in path.parent.glob("*.so") if ".partial" not in p.name),
                       key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
    for stale in libraries[MAX_LIBRARIES:]:
        stale.unlink(missing_ok=True)


def load(path: Path) -> Callable:
    """The compiled library at `path` as a callable (inputs made contiguous, as they were exported). Loaded by
    AOTInductor's CPU runner itself: `aoti_load_package` first unpacks the whole archive, which took 7-8 s for an
    SD-sized one against 1.3 s for its library alone."""
    runner = torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1)
    path.touch()  # recently used: pruned last
    return lambda *inputs: runner.run([t.contiguous() for t in inputs])[0]


def library_for(recorded: Positional, inputs: tuple) -> Callable:
    """The compiled library for these inputs: loaded from the cache folder, else (or when it cannot be read)
    compiled into it."""
    path = library_path(recorded, inputs)
    if path.is_file():
        try:
            return load(path)
        except Exception as error:  # whatever a broken file raises: compile it again
            log.warning("compiled library %s unreadable (%s: %s); compiling again", path.name, type(error).__name__,
                        str(error)[:200])  # fmt: skip
            path.unlink(missing_ok=True)
    build(recorded, inputs, path)
    return load(path)


def compile_ahead(module: torch.nn.Module, interface: Interface) -> GraphForward:
    """Run `module` (on CPU) through frozen AOTInductor libraries, one per input signature (`library_for`, on the
    first call of a signature); a signature that does not compile runs eagerly."""
    stand_in = GraphForward(module, interface, "compiled")
    recorded = Positional(module, stand_in.eager, interface).eval()

    def make(inputs: tuple) -> Callable | None:
        try:
            return library_for(recorded, tuple(t.contiguous() for t in inputs))
        except Exception as error:  # whatever stops a compile, the request runs eagerly
            log.warning("compiling %s failed (%s: %s); it runs eagerly at %s", type(module).__name__,
                        type(error).__name__, str(error)[:200], signature(inputs))  # fmt: skip
            return None

    stand_in.make = make
    return stand_in
