"""Graph stand-ins (`models/graphs.py`): which calls run a traced graph, one graph per input signature, and on the
bundled models every job's pixels exactly those of the eager path (the policy that picks tracing:
tests/test_speed_policy.py)."""

from __future__ import annotations

import copy
import logging
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from models import Engine, graphs, openvino_runtime
from models.shapes import parse, region_mask, render, vocabulary
from tests.hub_cache import UNET_SDXL
from tests.hub_cache import WIDTH as HUB_WIDTH
from training.diffusion import build_text_encoder, build_unet
from training.macs import unet_macs
from training.tokenizer import build_tokenizer
from training.train_structure import CONDITIONING_CHANNELS

TEXT_WIDTH = 32


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return build_unet((32, 64), TEXT_WIDTH).eval()


def inputs(batch: int = 1, size: int = 8) -> tuple:
    return torch.randn(batch, 4, size, size), torch.tensor(999), torch.randn(batch, 5, TEXT_WIDTH)


def built(stand_in: graphs.GraphForward, run):
    """`run()` twice: the first sight of a signature runs the module itself while its graph is built in the
    background (no graph call), the call after the build runs the graph."""
    calls = stand_in.calls
    first = run()
    assert stand_in.calls == calls and graphs.wait_for_builds(timeout=120)
    return first, run()


@pytest.mark.parametrize(
    "call, traced",
    [
        (lambda u, s, t, e: u(s, t, e), True),
        (lambda u, s, t, e: u(s, t, encoder_hidden_states=e, return_dict=False)[0], True),
        (lambda u, s, t, e: u(sample=s, timestep=t, encoder_hidden_states=e, added_cond_kwargs={}).sample, True),
        (lambda u, s, t, e: u(s, t, e, cross_attention_kwargs={"scale": 0.5}).sample, False),  # asks for something
        (lambda u, s, t, e: u(s, 999, e).sample, False),  # a timestep that is not a tensor
    ],
)  # fmt: skip
@torch.no_grad()
def test_plain_calls_run_the_graph_and_others_the_module(unet, call, traced):
    sample, timestep, text = inputs()
    expected = unet(sample, timestep, text).sample
    stand_in = graphs.trace(unet, graphs.UNET)
    first, out = built(stand_in, lambda: call(unet, sample, timestep, text))
    first, out = (o.sample if hasattr(o, "sample") else o for o in (first, out))
    assert stand_in.calls == int(traced) and len(stand_in.graphs) == int(traced)
    assert torch.equal(first, expected) and torch.equal(out, expected)
    stand_in.enabled = False  # what a request with LoRA adapters sets
    assert torch.equal(unet(sample, timestep, text).sample, expected) and stand_in.calls == int(traced)


@torch.no_grad()
def test_a_call_never_waits_for_a_graph_being_built(unet):
    """While a signature's graph is being made, every call of it runs the module itself; the next call after the
    build runs the graph."""
    stand_in = graphs.trace(unet, graphs.UNET)
    trace, release = stand_in.make, threading.Event()
    stand_in.make = lambda example: release.wait(120) and trace(example)
    tensors = inputs()
    expected = stand_in.eager(*tensors).sample
    for _ in range(3):  # the build is held back: these calls would hang if they waited for it
        assert torch.equal(unet(*tensors).sample, expected)
    assert stand_in.calls == 0 and stand_in.building == {graphs.signature(tensors)}
    release.set()
    assert graphs.wait_for_builds(timeout=120) and not stand_in.building
    assert torch.equal(unet(*tensors).sample, expected) and stand_in.calls == 1


@torch.no_grad()
def test_no_heavy_build_starts_while_a_request_runs(unet):
    """A compile or a conversion waits until no request has run for `QUIET_BEFORE_BUILD_S` (on 2 cores a conversion
    beside a request slowed it many times over); then it runs."""
    stand_in = graphs.trace(unet, graphs.UNET)
    stand_in.waits_for_quiet = True  # as a compiled or converted stand-in's builds do
    trace, started = stand_in.make, []
    stand_in.make = lambda example: started.append(time.monotonic()) or trace(example)
    with graphs.request_running():
        unet(*inputs())
        assert not graphs.wait_for_builds(timeout=2 * graphs.QUIET_BEFORE_BUILD_S) and not started
        ended = time.monotonic()
    assert graphs.wait_for_builds(timeout=120) and started[0] - ended >= graphs.QUIET_BEFORE_BUILD_S
    assert stand_in.graphs and not stand_in.building


@torch.no_grad()
def test_a_trace_is_made_on_a_server_that_never_goes_quiet(unet):
    """Traces take under a second: waiting for a quiet CPU would leave a busy server's requests eager for good."""
    stand_in = graphs.trace(unet, graphs.UNET)
    with graphs.request_running():
        unet(*inputs())
        assert graphs.wait_for_builds(timeout=60) and stand_in.graphs
        unet(*inputs())
    assert stand_in.calls == 1


@torch.no_grad()
def test_a_graph_that_cannot_be_made_leaves_its_signature_eager(unet, caplog):
    stand_in = graphs.trace(unet, graphs.UNET)
    stand_in.make = lambda example: 1 / 0
    tensors = inputs()
    with caplog.at_level(logging.WARNING, logger="models.graphs"):
        first, later = built(stand_in, lambda: unet(*tensors).sample)
    assert torch.equal(first, later) and stand_in.calls == 0 and stand_in.graphs == {graphs.signature(tensors): None}
    assert "runs eagerly" in caplog.text and not stand_in.building


@torch.no_grad()
def test_a_build_broken_by_a_module_changing_under_it_is_made_again(unet, caplog):
    """A request loading a LoRA adapter (peft's new layers hold no weights while it injects them) broke the trace
    the preset's priming had started: that signature stayed eager for good, every later request included."""
    stand_in = graphs.trace(unet, graphs.UNET)
    trace, broken = stand_in.make, []

    def make(example):
        if not broken:  # what the adapter's injection does to the module under the first build
            broken.append(unet.register_parameter("injected", torch.nn.Parameter(torch.zeros(1))))
            raise NotImplementedError("Cannot copy out of meta tensor; no data!")
        return trace(example)

    stand_in.make, tensors = make, inputs()
    with caplog.at_level(logging.WARNING, logger="models.graphs"):
        built(stand_in, lambda: unet(*tensors).sample)
    assert stand_in.calls == 0 and not stand_in.graphs and "made again at the next call" in caplog.text
    built(stand_in, lambda: unet(*tensors).sample)
    assert stand_in.calls == 1 and stand_in.graphs[graphs.signature(tensors)] is not None


@pytest.mark.parametrize("runtime", ["traced", "openvino"])
@torch.no_grad()
def test_a_controlnet_and_the_unet_it_guides_run_their_graphs(unet, runtime, tmp_path, monkeypatch):
    """The structure path's two modules, called as diffusers' ControlNet pipelines call them, run graphs (the
    conditioning scale an input, not a constant of the graph) with the eager outputs; a plain UNet call keeps its own.
    OpenVINO picks bf16 by itself on CPUs that run it natively: its outputs are compared at bf16's precision."""
    monkeypatch.setenv("DEPICT_COMPILE_CACHE", str(tmp_path))
    install = {"traced": graphs.trace, "openvino": openvino_runtime.install}[runtime]
    tolerance = {"traced": 1e-5, "openvino": 0.1}[runtime]  # bf16: 6% of the largest value seen here
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS).eval()
    for weight in controlnet.parameters():  # its zero-initialised outputs: residuals that show the scale
        if not weight.any():
            torch.nn.init.normal_(weight, std=0.05)
    sample, timestep, text = inputs()
    edges = torch.rand(1, 3, 32, 32)

    def guided(scale: float) -> torch.Tensor:
        down, mid = controlnet(sample, timestep, encoder_hidden_states=text, controlnet_cond=edges,
                               conditioning_scale=scale, guess_mode=False, return_dict=False)  # fmt: skip
        return unet(sample, timestep, encoder_hidden_states=text, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid, return_dict=False)[0]  # fmt: skip

    expected = {scale: guided(scale) for scale in (1.0, 0.4)}
    plain = unet(sample, timestep, text).sample
    unet_graph, controlnet_graph = install(unet, graphs.UNET), install(controlnet, graphs.CONTROLNET)
    guided(1.0)
    assert graphs.wait_for_builds(timeout=300) and (unet_graph.calls, controlnet_graph.calls) == (0, 0)
    for scale, image in expected.items():
        assert torch.allclose(guided(scale), image, atol=tolerance * image.abs().max().item())
    assert (unet_graph.calls, controlnet_graph.calls) == (2, 2) and not torch.allclose(expected[1.0], expected[0.4])
    built(unet_graph, lambda: unet(sample, timestep, text))
    assert torch.allclose(unet(sample, timestep, text).sample, plain, atol=tolerance * plain.abs().max().item())
    assert len(unet_graph.graphs) == 2 and None not in unet_graph.graphs.values()


@torch.no_grad()
def test_a_traced_clip_text_encoder_returns_what_its_callers_read():
    """Both outputs as the model gives them (diffusers' pipelines read `[0]`, others `.pooler_output`); a call asking
    for hidden states (SDXL, clip skip) runs the model itself."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(vocabulary())
    encoder = build_text_encoder(len(tokenizer), TEXT_WIDTH, tokenizer).eval()
    ids = tokenizer(["a small red star"], padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids  # fmt: skip
    expected, expected_hidden = encoder(ids), encoder(ids, output_hidden_states=True).hidden_states
    graphs.stand_in_pipeline(SimpleNamespace(text_encoder=encoder), ("text_encoder",), graphs.trace)
    stand_in = graphs.graph_of(encoder)
    _, out = built(stand_in, lambda: encoder(ids))
    assert stand_in.calls == 1 and torch.equal(out[0], expected[0])
    assert torch.equal(out.last_hidden_state, expected.last_hidden_state)
    assert torch.equal(out.pooler_output, expected.pooler_output)
    last, pooled = encoder(ids, attention_mask=None, return_dict=False)
    assert stand_in.calls == 2 and torch.equal(pooled, expected.pooler_output)
    hidden = encoder(ids, output_hidden_states=True)
    assert stand_in.calls == 2 and all(map(torch.equal, hidden.hidden_states, expected_hidden))


@torch.no_grad()
def test_an_sdxl_unet_runs_its_graph_with_pooled_text_and_sizes():
    torch.manual_seed(0)
    sdxl = UNet2DConditionModel(**UNET_SDXL).eval()
    sample, timestep, text = torch.randn(1, 4, 8, 8), torch.tensor(999), torch.randn(1, 5, 2 * HUB_WIDTH)
    conditions = {"text_embeds": torch.randn(1, HUB_WIDTH), "time_ids": torch.randn(1, 6)}
    expected = sdxl(sample, timestep, text, added_cond_kwargs=conditions).sample
    stand_in = graphs.trace(sdxl, graphs.unet_interface(sdxl))
    _, out = built(stand_in, lambda: sdxl(sample, timestep, encoder_hidden_states=text, added_cond_kwargs=conditions,
                                          return_dict=False)[0])  # fmt: skip
    assert stand_in.calls == 1 and torch.equal(out, expected)
    scaled = sdxl(sample, timestep, text, added_cond_kwargs=conditions, cross_attention_kwargs={"scale": 1.0}).sample
    assert stand_in.calls == 1 and torch.equal(scaled, expected)  # asks for something: the module itself


@torch.no_grad()
def test_one_graph_per_input_signature_the_oldest_dropped(unet):
    stand_in = graphs.trace(unet, graphs.UNET)
    assert graphs.trace(unet, graphs.UNET) is stand_in  # installed once
    shapes = [(batch, size) for size in (8, 16) for batch in range(1, 6)][: graphs.MAX_GRAPHS + 1]
    for batch, size in shapes:
        tensors = inputs(batch, size)
        for out in built(stand_in, lambda: unet(*tensors).sample):
            assert torch.equal(out, stand_in.eager(*tensors).sample)
    assert stand_in.calls == len(shapes) and len(stand_in.graphs) == graphs.MAX_GRAPHS
    assert graphs.signature(inputs(*shapes[0])) not in stand_in.graphs


@pytest.fixture(scope="module")
def traced_bundled():
    return Engine()


@pytest.fixture(scope="module")
def eager_bundled():
    patch = pytest.MonkeyPatch()
    patch.setenv("DEPICT_COMPILE", "off")
    engine = Engine()
    engine.load("bundled-fast")
    patch.undo()
    return engine


PROMPT = "a small red star at the top on a blue background"
JOBS = {  # every job of the bundled family, on the student where it offers it
    "fast text to image": lambda e: e.text_to_image(PROMPT, preset="bundled-fast", seed=2),
    "teacher text to image": lambda e: e.text_to_image(PROMPT, seed=2, num_images=2),
    "keep-layout regenerate": lambda e: e.regenerate(render(PROMPT, seed=3), PROMPT, preset="bundled-fast",
                                                     keep_layout=0.5, seed=2),
    "inpaint": lambda e: e.inpaint(render(PROMPT, seed=3), region_mask(parse(PROMPT), 3),
                                   "a small green circle at the top on a blue background", preset="bundled-fast"),
    "style adapter": lambda e: e.style_transfer(render(PROMPT, seed=3), "striped", seed=2),
    "instruct edit": lambda e: e.instruct_edit(render(PROMPT, seed=3), "make the star green", seed=2),
}  # fmt: skip


@pytest.mark.parametrize("job", JOBS)
def test_traced_bundled_jobs_draw_the_eager_pixels(job, traced_bundled, eager_bundled):
    JOBS[job](traced_bundled)  # its shapes' graphs are built in the background from this first call
    assert graphs.wait_for_builds(timeout=120)
    traced = JOBS[job](traced_bundled)
    eager = JOBS[job](eager_bundled)
    assert traced.metadata["speed_policy"]["traced"] == ["unet", "vae", "text_encoder"]
    assert eager.metadata["unet"] == "float"
    assert traced.metadata["unet"] == ("float" if job == "style adapter" else "traced")  # adapters run eagerly
    for mine, theirs in zip(traced.images, eager.images, strict=True):
        assert np.array_equal(np.asarray(mine), np.asarray(theirs))


@torch.no_grad()
def test_a_copied_module_runs_its_own_weights(unet):
    """The adapters' decoder is a deep copy of the autoencoder: its LoRA must act, not the original's graph."""
    stand_in = graphs.trace(unet, graphs.UNET)
    tensors = inputs()
    _, original = built(stand_in, lambda: unet(*tensors).sample)
    copied = copy.deepcopy(unet)
    assert graphs.graph_of(copied) is None and stand_in.calls == 1
    copied.conv_out.bias.add_(1.0)
    assert torch.allclose(copied(*tensors).sample, original + 1.0, atol=1e-5)
    assert torch.equal(unet(*tensors).sample, original) and stand_in.calls == 2


@torch.no_grad()
def test_macs_of_a_traced_unet_are_its_modules_own(unet):
    eager_macs = unet_macs(unet)
    built(graphs.trace(unet, graphs.UNET), lambda: unet(*inputs()))  # a graph made and run
    assert unet_macs(unet) == eager_macs > 0
