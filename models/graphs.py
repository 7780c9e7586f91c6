"""Captured graphs standing in for a module's forward: a plain call runs the graph made for its input signature, any
other call the module's own (eager) forward, whose weights the graphs share.

Three kinds fill them: AOTInductor packages of large UNets (`models.compile_cache`), the int8 UNet
(`models.quantize`, one graph for its calibrated shape) and TorchScript traces (`trace`), which the speed policy
picks for small models on CPU. There a call is mostly Python: one bundled UNet
pass runs ~430 modules whose kernels take microseconds; traced, the bundled UNet pass took 9.1 ms against 12.2 ms
eager and its decode 5.2 against 9.3 ms, with identical outputs, for 0.6 s of tracing per shape (Inductor: ~20%
faster, for a 71 s first compile); its CLIP text encoder 0.68 -> 0.28 ms. While a request's LoRA adapters are
active, every stand-in runs eagerly.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace

import torch
from diffusers import ControlNetModel
from diffusers.models.controlnets.controlnet import ControlNetOutput
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from transformers import CLIPTextModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

log = logging.getLogger(__name__)

MAX_GRAPHS = 8  # traced signatures kept per module, oldest dropped first (each size and batch has its own)
# graphs are made off the request's path, one at a time (two at once on 2 cores slow each other many times over), by
# a daemon thread; a process that exits drops the queued builds and lets the running one finish (torch aborts a
# process that ends inside one)
_QUEUE: queue.Queue = queue.Queue()
_BUILDER_LOCK = threading.Lock()
_BUILDER: list[threading.Thread] = []
_PENDING: set[Future] = set()
_PENDING_LOCK = threading.Lock()
BUILD_NICENESS = 10
_ACCEPTING = threading.Event()
_ACCEPTING.set()
# a heavy build (a compile, a conversion) starts only when no request has run for this long: beside a request on 2
# cores, a conversion and the request's kernels fight for the cores and the memory (an SD-Turbo image took 525 s
# instead of ~10 s beside the UNet's conversion); one already started runs to its end. A trace (under a second, its
# weights shared) starts at once: waiting for quiet starved it on a busy server, whose requests then all ran eagerly
# (bench/load.py's sequential p50 went from 0.85 to 1.88 s)
QUIET_BEFORE_BUILD_S = 1.0
_REQUESTS = threading.Condition()
_running_requests = 0
_last_request_end = 0.0


def _submit(build: Callable, *args, wait_for_quiet: bool) -> Future:
    """Queue `build(*args)` for the builder thread (started on first use), to start once the CPU is quiet
    (`request_running`) if `wait_for_quiet`."""
    future = Future()
    with _PENDING_LOCK:
        _PENDING.add(future)
    future.add_done_callback(_forget)
    _QUEUE.put((future, build, args, wait_for_quiet))
    with _BUILDER_LOCK:
        if not _BUILDER:
            _BUILDER.append(threading.Thread(target=_work, name="depict-graph-builder", daemon=True))
            _BUILDER[0].start()
    return future


@contextlib.contextmanager
def request_running():
    """Mark a request (or a preset's load) as running for the `with`: no build starts until none has run for
    `QUIET_BEFORE_BUILD_S`. A load counts: the builds it queues (its default request's graphs) started the moment it
    ended, and on 2 cores the UNet's conversion then slowed the first requests 1.5x (`docs/benchmarks.md`)."""
    global _running_requests, _last_request_end
    with _REQUESTS:
        _running_requests += 1
    try:
        yield
    finally:
        with _REQUESTS:
            _running_requests -= 1
            _last_request_end = time.monotonic()
            _REQUESTS.notify_all()


def _wait_for_quiet() -> None:
    """Return once no request runs and none has ended within `QUIET_BEFORE_BUILD_S`."""
    with _REQUESTS:
        while True:
            quiet = time.monotonic() - _last_request_end
            if _running_requests == 0 and quiet >= QUIET_BEFORE_BUILD_S:
                return
            _REQUESTS.wait(None if _running_requests else QUIET_BEFORE_BUILD_S - quiet)


def _work() -> None:
    """The builder thread: niced, so builds (and the compilers they start) yield the CPU to requests, and a heavy
    build waits for a quiet moment (`request_running`)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICENESS)
    while True:
        future, build, args, wait_for_quiet = _QUEUE.get()
        if wait_for_quiet:
            _wait_for_quiet()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(build(*args))
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(error)


def _forget(future: Future) -> None:
    with _PENDING_LOCK:
        _PENDING.discard(future)


@contextlib.contextmanager
def builds_paused():
    """No build starts inside the `with` (calls of new signatures stay eager): for one-shot commands, which would not
    live to use a build."""
    _ACCEPTING.clear()
    try:
        yield
    finally:
        _ACCEPTING.set()


def cancel_builds() -> None:
    """Drop the queued builds (their signatures are built when next called) and wait for the running one."""
    with _PENDING_LOCK:
        pending = set(_PENDING)
    for future in pending:
        future.cancel()  # a queued build; the running one goes on
    if wait(pending, timeout=1).not_done:
        log.info("waiting for a graph being built")
        wait(pending)


def stop_builds() -> None:
    """Start no more builds (calls of new signatures stay eager) and drop the queued ones; the running one, if any,
    finishes. At exit."""
    _ACCEPTING.clear()
    cancel_builds()


atexit.register(stop_builds)


def wait_for_builds(timeout: float | None = None) -> bool:
    """Wait until every graph being made has been installed (or failed); False if `timeout` seconds passed first."""
    with _PENDING_LOCK:
        pending = set(_PENDING)
    return not wait(pending, timeout=timeout).not_done


def unset(value) -> bool:
    """Whether a keyword argument asks for nothing (no extra conditioning, no options)."""
    return value is None or value is False or (isinstance(value, dict) and not value)


def signature(tensors) -> tuple:
    return tuple((tuple(t.shape), t.dtype) for t in tensors)


@dataclass(frozen=True)
class Interface:
    """How a module is called: the tensor arguments a graph takes (positional, in order: `names`, then the entries
    of each `nested` dictionary argument), the options its forward is called with inside a graph, how many of its
    outputs a graph returns (one tensor, or a tuple of the first `outputs`) and how a graph's output is returned to
    the caller (`wrap(out, return_dict)`)."""

    names: tuple[str, ...]
    options: tuple[tuple[str, object], ...]
    wrap: Callable
    outputs: int | None = 1  # None: every output, a tuple of tensors and a last tensor flattened (a ControlNet's)
    nested: tuple[tuple[str, tuple[str, ...]], ...] = ()
    control: tuple[str, str] | None = None  # a UNet's ControlNet residuals (one tensor, a tuple): both or neither
    scalars: tuple[str, ...] = ()  # of `names`, those a caller passes as a number: a 0-d float tensor in the graph

    def call_arguments(self, inputs: tuple) -> dict:
        """The keyword arguments of the module's forward for a graph's positional tensors."""
        arguments = dict(zip(self.names, inputs))
        position = len(self.names)
        for name, entries in self.nested:
            arguments[name] = dict(zip(entries, inputs[position: position + len(entries)]))
            position += len(entries)
        if self.control and len(inputs) > position:
            mid, down = self.control
            arguments[mid], arguments[down] = inputs[position], tuple(inputs[position + 1:])
        return {**arguments, **dict(self.options)}


UNET = Interface(("sample", "timestep", "encoder_hidden_states"), (("return_dict", False),),
                 lambda out, return_dict: UNet2DConditionOutput(sample=out) if return_dict else (out,),
                 control=("mid_block_additional_residual", "down_block_additional_residuals"))  # fmt: skip
UNET_XL = replace(UNET, nested=(("added_cond_kwargs", ("text_embeds", "time_ids")),))  # SDXL's pooled text and sizes
CONTROLNET = Interface(("sample", "timestep", "encoder_hidden_states", "controlnet_cond", "conditioning_scale"),
                       (("return_dict", False),), outputs=None, scalars=("conditioning_scale",),
                       wrap=lambda out, rd: ControlNetOutput(out[:-1], out[-1]) if rd else (out[:-1], out[-1]))
CONTROLNET_XL = replace(CONTROLNET, nested=UNET_XL.nested)
AUTOENCODER_HALF = Interface(("sample",), (), lambda out, return_dict: out)  # an AutoencoderKL's encoder or decoder
TINY_DECODER = Interface(("x",), (), lambda out, return_dict: out)  # an AutoencoderTiny's decoder
CLIP_TEXT = Interface(("input_ids",), (("return_dict", False),), outputs=2,  # last hidden state, pooled
                      wrap=lambda out, rd: BaseModelOutputWithPooling(*out) if rd else out)  # fmt: skip


class Positional(torch.nn.Module):
    """`forward` of `module` (held, so its weights are the graph's parameters) taking the interface's tensors
    positionally and returning one tensor: what tracing and export record."""

    def __init__(self, module: torch.nn.Module, forward: Callable, interface: Interface):
        super().__init__()
        self.module, self.call, self.interface = module, forward, interface

    def forward(self, *inputs):
        out = self.call(**self.interface.call_arguments(inputs))
        if self.interface.outputs is None:
            return (*out[0], out[1])
        if self.interface.outputs > 1:
            return tuple(out[: self.interface.outputs])
        return out[0] if isinstance(out, tuple) else out


class GraphForward:
    """Stands in for `module.forward`. A call whose interface tensors are given and whose other arguments are unset
    runs the graph for their signature while `enabled`; every other call runs the module's own forward. A signature
    seen for the first time runs the module's forward too while `make` builds its graph in the background (one build
    at a time, `wait_for_builds`): no request waits for a trace or a compile, and the next call of that signature runs
    the graph. A graph an earlier start made is read from disk (`read(inputs)`, None when there is none) in the
    background the same way: reading OpenVINO's UNet blob recompiles it (5-10 s per shape on 2 cores), which on the
    caller's path made a second start's load and first images 2-6x slower than eager. `calls` counts graph calls,
    `building` holds the signatures being made, `kind` names the graphs ("traced", "compiled", "openvino", "int8");
    builds of every kind but "traced" wait for a quiet CPU (`waits_for_quiet`)."""

    def __init__(self, module: torch.nn.Module, interface: Interface, kind: str, graphs: dict | None = None,
                 make: Callable | None = None, read: Callable[[tuple], Callable | None] | None = None):  # fmt: skip
        self.eager, self.interface, self.kind, self.make, self.read = module.forward, interface, kind, make, read
        self.graphs: dict[tuple, Callable] = dict(graphs or {})
        self.building: set[tuple] = set()
        self.enabled, self.calls, self.waits_for_quiet = True, 0, kind != "traced"
        module.forward = self

    def __call__(self, *args, **kwargs):
        inputs = self._inputs(args, kwargs)
        graph = self._graph(inputs) if inputs else None
        if graph is None:
            return self.eager(*args, **kwargs)
        self.calls += 1
        return self.interface.wrap(graph(*inputs), kwargs.get("return_dict", True))

    def __deepcopy__(self, memo: dict):
        """A copied module (the adapters' decoder copy) gets its own eager forward: these graphs hold the original's
        weights, not the copy's."""
        return copy.deepcopy(self.eager, memo)

    def _inputs(self, args: tuple, kwargs: dict) -> tuple | None:
        """The interface's tensors of a plain call, in order; None for any other call."""
        names, nested = self.interface.names, dict(self.interface.nested)
        if not self.enabled or len(args) > len(names):
            return None
        given = {**kwargs, **dict(zip(names, args))}
        scalars = self.interface.scalars
        inputs = tuple(torch.tensor(float(given[n])) if n in scalars and isinstance(given.get(n), (int, float))
                       else given.get(n) for n in names)  # fmt: skip
        for name, entries in nested.items():
            value = kwargs.get(name)
            if not isinstance(value, dict) or set(value) != set(entries):
                return None
            inputs += tuple(value[entry] for entry in entries)
        control = self.interface.control or ()
        if control:
            mid, down = (kwargs.get(name) for name in control)
            if (mid is None) != (down is None):  # one without the other: not a ControlNet's call
                return None
            inputs += (mid, *down) if mid is not None else ()
        rest = (value for name, value in kwargs.items() if name not in (*names, *nested, *control, "return_dict"))
        return inputs if all(torch.is_tensor(t) for t in inputs) and all(unset(v) for v in rest) else None

    def prime(self, inputs: tuple) -> None:
        """Read or make, in the background, the graph for these example inputs' signature before any call brings it."""
        self._graph(inputs)

    def _graph(self, inputs: tuple) -> Callable | None:
        key = signature(inputs)
        if key in self.graphs or self.make is None or key in self.building or not _ACCEPTING.is_set():
            return self.graphs.get(key)
        self.building.add(key)
        example = tuple(t.detach().clone() for t in inputs)  # the request goes on with its own tensors
        future = _submit(self._build, key, example, wait_for_quiet=self.waits_for_quiet)
        future.add_done_callback(lambda done: done.cancelled() and self.building.discard(key))
        return None

    def _read(self, inputs: tuple) -> Callable | None:
        """The graph for these inputs read from disk; None when there is none to read (or it is unreadable)."""
        if self.read is None:
            return None
        try:
            return self.read(inputs)
        except Exception as error:  # a broken file: the graph is made again
            log.warning("reading a %s graph of %s failed (%s: %s); making it again", self.kind,
                        type(self.eager.__self__).__name__, type(error).__name__, str(error)[:200])  # fmt: skip
            return None

    def _install(self, key: tuple, graph: Callable | None) -> None:
        if len(self.graphs) >= MAX_GRAPHS:
            self.graphs.pop(next(iter(self.graphs)))
        self.graphs[key] = graph

    def _build(self, key: tuple, example: tuple) -> None:
        """Read the graph for `key` from disk, else make it, and install it. When it cannot be made that signature
        runs eagerly; unless the module changed under the build (a request loading a LoRA adapter into it: its new
        layers hold no weights while peft injects them), which leaves the signature to be made again at its next
        call."""
        module = self.eager.__self__
        before = _parameter_count(module)
        try:
            with torch.no_grad():
                graph = self._read(example) or self.make(example)
        except Exception as error:  # whatever stops a trace or a compile, that signature runs eagerly
            changed = _parameter_count(module) != before
            log.warning("making a %s graph of %s failed (%s: %s); %s %s", self.kind, type(module).__name__,
                        type(error).__name__, str(error)[:200],
                        "the module changed meanwhile: made again at the next call of" if changed else
                        "it runs eagerly at", key)  # fmt: skip
            self.building.discard(key)
            if changed:
                return
            graph = None
        self._install(key, graph)
        self.building.discard(key)


def _parameter_count(module: torch.nn.Module) -> int:
    return sum(1 for _ in module.parameters())


def trace(module: torch.nn.Module, interface: Interface) -> GraphForward:
    """Run `module` through TorchScript graphs traced per input signature (its weights shared, not copied); the
    installed stand-in, or the one already there."""
    installed = graph_of(module)
    if installed:
        return installed
    stand_in = GraphForward(module, interface, "traced")
    recorded = Positional(module, stand_in.eager, interface).eval()

    def make(inputs: tuple):
        started = time.perf_counter()
        with warnings.catch_warnings():  # deprecated for torch.export, whose compile costs a minute here (module doc)
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated")
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape-specialised branches: one graph a shape
            graph = torch.jit.trace(recorded, inputs, check_trace=False)
        log.info("traced %s at %s in %.2fs", type(module).__name__, signature(inputs), time.perf_counter() - started)
        return graph

    stand_in.make = make
    return stand_in


def stand_in_pipeline(pipeline, components: tuple[str, ...], install: Callable) -> None:
    """Put `install(module, interface)` stand-ins (`trace`, or another runtime's) in the pipeline's UNet (`unet` in
    `components`), its autoencoder's encoder and decoder (`vae`) and its CLIP text encoder (`text_encoder`; other text
    encoders run as they are)."""
    unet, vae = getattr(pipeline, "unet", None), getattr(pipeline, "vae", None)
    if "unet" in components and unet is not None:
        install(unet, unet_interface(unet))
    controlnet = getattr(pipeline, "controlnet", None)
    if "unet" in components and isinstance(controlnet, ControlNetModel):  # it runs beside the UNet, as the UNet does
        install(controlnet, controlnet_interface(controlnet))
    text_encoder = getattr(pipeline, "text_encoder", None)
    if "text_encoder" in components and type(text_encoder) is CLIPTextModel:
        install(text_encoder, CLIP_TEXT)
    if "vae" in components and vae is not None:
        for half in (getattr(vae, "encoder", None), getattr(vae, "decoder", None)):
            if half is not None:
                install(half, AUTOENCODER_HALF)


def unet_interface(unet) -> Interface:
    """SDXL's interface for a UNet conditioned on pooled text and sizes, else the plain one."""
    return UNET_XL if unet.config.get("addition_embed_type") == "text_time" else UNET


def controlnet_interface(controlnet) -> Interface:
    """SDXL's interface for a ControlNet conditioned on pooled text and sizes, else the plain one."""
    return CONTROLNET_XL if controlnet.config.get("addition_embed_type") == "text_time" else CONTROLNET


def graph_of(module) -> GraphForward | None:
    """The graph stand-in installed in `module`, if any."""
    forward = getattr(module, "forward", None)
    return forward if isinstance(forward, GraphForward) else None


def stand_ins(pipeline) -> list[GraphForward]:
    """The graph stand-ins installed in the pipeline's UNet, autoencoder and text encoder."""
    vae = getattr(pipeline, "vae", None)
    modules = (getattr(pipeline, "unet", None), getattr(vae, "encoder", None), getattr(vae, "decoder", None),
               getattr(pipeline, "text_encoder", None), getattr(pipeline, "controlnet", None))  # fmt: skip
    return [graph for graph in map(graph_of, modules) if graph is not None]
