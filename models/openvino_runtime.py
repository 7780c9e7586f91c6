"""OpenVINO as a second CPU runtime: a module converted straight from its loaded torch weights (`openvino.convert_model`;
optimum-intel pins transformers below 5.6, so it is not used), kept as IR in the compile cache under a name holding
a digest of its weights, and compiled per input shape with OpenVINO's own blob cache (`CACHE_DIR`), so a later start
reads both instead of converting and compiling again. OpenVINO picks its precision from the CPU itself (bf16 where
AVX512-BF16/AMX run it natively, fp32 otherwise). It runs through the same graph stand-ins as the traced and compiled
graphs (`models.graphs`): built in the background, eager while a request's own LoRA adapters are active.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import openvino
import torch

from . import openvino_int8
from .compile_cache import OPENVINO, OPENVINO_BLOBS, config_of, prepare, prune, weights_digest
from .graphs import GraphForward, Interface, Positional, graph_of, signature

log = logging.getLogger(__name__)
CONFIG = {"PERFORMANCE_HINT": "LATENCY"}


@functools.cache
def core() -> openvino.Core:
    return openvino.Core()


def nncf_available() -> bool:
    return importlib.util.find_spec("nncf") is not None


def ir_path(recorded: Positional, inputs: int, int8: bool = False) -> Path:
    """Where the module's IR taking this many inputs lives (a UNet's call with ControlNet residuals takes more): its
    name holds the weights (and whether NNCF quantised them), the class, its config and OpenVINO's version (one IR
    serves every input shape: it is converted with dynamic dimensions). An int8 IR found to stray from the float
    module (`models.openvino_int8`) is the float one's path."""
    module = recorded.module
    facts = {"openvino": openvino.__version__, "class": type(module).__name__, "config": config_of(module),
             "interface": [recorded.interface.names, recorded.interface.nested], "weights": weights_digest(recorded),
             "converted from": "float32", "saved as": "fp16", "inputs": inputs,
             **({"nncf": f"hybrid int8, example and {openvino_int8.CALIBRATION}"} if int8 else {})}  # fmt: skip
    key = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = prepare() / OPENVINO / f"{type(module).__name__}-{key}.xml"
    return ir_path(recorded, inputs) if int8 and openvino_int8.rejected_marker(path).is_file() else path


def read_ir(path: Path):
    """The IR at `path` (marked recently used: pruned last); None when there is none or it cannot be read."""
    if not path.is_file():
        return None
    try:
        path.touch()
        return core().read_model(path)
    except Exception as error:  # a broken IR is converted again
        log.warning("OpenVINO IR %s unreadable (%s); converting again", path.name, type(error).__name__)
        return None


def float32_copy(recorded: Positional) -> Positional:
    """`recorded` with float32, contiguous weights: what OpenVINO converts. From a bf16 module (the policy's on CPUs
    with native bf16) it is a copy: converted as bf16, casts sat at the graph's edges and the CPU plugin ran it 4-35%
    slower than the same model converted from float32, where the plugin picks bf16 itself; and OpenVINO's frontend
    kept pointers into freed copies of channels-last bf16 weights (NaN images, or a segfault in `convert_model`)."""
    weights = (*recorded.parameters(), *recorded.buffers())
    if all(t.dtype != torch.bfloat16 and t.dtype != torch.float16 and t.is_contiguous() for t in weights):
        return recorded
    copied = copy.deepcopy(recorded).float()
    for tensor in (*copied.parameters(), *copied.buffers()):
        tensor.data = tensor.data.contiguous()
    return copied


def read_or_convert(recorded: Positional, example: tuple, int8: bool = False):
    """The module's IR: read from the cache, else converted from the loaded module (a UNet or VAE decoder quantised by
    NNCF when `int8` and its output holds: `models.openvino_int8`) and saved (the weights file first, the model file
    last, each written whole and renamed: a model file means a whole IR)."""
    path = ir_path(recorded, len(example), int8)
    model = read_ir(path)
    if model is not None:
        return model
    started = time.perf_counter()
    example = tuple(t.float() if t.is_floating_point() else t for t in example)
    source = float32_copy(recorded).eval()
    model = openvino.convert_model(source, example_input=example)
    path.parent.mkdir(parents=True, exist_ok=True)
    if int8:
        model = openvino_int8.hybrid_int8(model, source, example, path) or model
        path = ir_path(recorded, len(example), int8)  # the float IR's when it strayed
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.xml")
    try:
        # fp16 on disk: the float32 copy's IR would take twice the bf16 model's space (SD 1.5's UNet 3.4 GB, two of
        # them with a ControlNet's residuals: past the 8 GB budget); the plugin widens the weights when it compiles
        openvino.save_model(model, partial, compress_to_fp16=True)
        os.replace(partial.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
        partial.with_suffix(".bin").unlink(missing_ok=True)
    log.info("converted %s to OpenVINO in %.1fs", type(recorded.module).__name__, time.perf_counter() - started)
    prune(path.parent.parent)
    # read back from its file: a model compiled from the converted one (its weights in this process's memory) writes
    # its weights into every blob (3.5 GB per shape for SD-Turbo's UNet), one read from a file writes weightless blobs
    return core().read_model(path)


def compiled_marker(ir: Path, inputs: tuple) -> Path:
    """The file saying that `ir` was compiled at these inputs' shapes: their blob is in OpenVINO's cache."""
    shapes = hashlib.sha256(repr(signature(inputs)).encode()).hexdigest()[:12]
    return ir.parent / OPENVINO_BLOBS / f"{ir.stem}-{shapes}.compiled"


def compiled_for(model, ir: Path, inputs: tuple, outputs: int, dtype: torch.dtype) -> Callable:
    """`model` (the IR at `ir`) reshaped to these inputs' static shapes and compiled for the CPU (read from OpenVINO's
    blob cache when compiled before): a callable taking torch tensors and returning them in `dtype`."""
    static = model.clone()
    static.reshape({port.get_any_name(): list(t.shape) for port, t in zip(static.inputs, inputs)})
    marker = compiled_marker(ir, inputs)
    # weightless blobs (the weights are mapped from the IR's own file): 4 KB instead of a copy of the weights per shape
    cache = {"CACHE_DIR": str(marker.parent), "CACHE_MODE": "OPTIMIZE_SIZE"}
    compiled = core().compile_model(static, "CPU", {**CONFIG, **cache})
    marker.touch()
    prune(marker.parent.parent.parent)
    request = compiled.create_infer_request()

    def run(*tensors):
        results = request.infer(openvino_int8.arrays(tensors))
        out = [torch.from_numpy(results[port].copy()).to(dtype) for port in compiled.outputs[:outputs]]
        return out[0] if outputs == 1 else tuple(out)

    return run


def install(module: torch.nn.Module, interface: Interface, int8: bool = False) -> GraphForward:
    """Run `module` through OpenVINO, one compiled model per input signature (made in the background from the first
    call of a signature, from one IR per module; read, also in the background, where compiled before); the installed
    stand-in, or the one already there. `int8`: a UNet or VAE decoder quantised by NNCF (`models.openvino_int8`; other
    modules stay float)."""
    installed = graph_of(module)
    if installed:
        return installed
    int8 = int8 and openvino_int8.quantizes(module, interface)
    stand_in = GraphForward(module, interface, "openvino")
    recorded = Positional(module, stand_in.eager, interface).eval()
    dtype = next(module.parameters()).dtype
    converted = {}

    def compiled(model, inputs: tuple) -> Callable:
        started = time.perf_counter()
        run = compiled_for(model, ir_path(recorded, len(inputs), int8), inputs, interface.outputs, dtype)
        seconds = time.perf_counter() - started
        log.info("OpenVINO %s at %s ready in %.1fs", type(module).__name__, signature(inputs), seconds)
        return run

    def make(inputs: tuple) -> Callable:
        if len(inputs) not in converted:
            converted[len(inputs)] = read_or_convert(recorded, inputs, int8)
        return compiled(converted[len(inputs)], inputs)

    def read(inputs: tuple) -> Callable | None:
        """Compiled at these shapes before (by this or an earlier start): the IR and the blob read; else None."""
        path = ir_path(recorded, len(inputs), int8)
        if not compiled_marker(path, inputs).is_file():
            return None
        if len(inputs) not in converted:
            model = read_ir(path)
            if model is None:
                return None
            converted[len(inputs)] = model
        return compiled(converted[len(inputs)], inputs)

    stand_in.make, stand_in.read = make, read
    return stand_in
