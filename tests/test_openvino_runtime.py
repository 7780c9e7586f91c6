"""The OpenVINO runtime's conversion against the module it stands in for."""

from __future__ import annotations

import pytest
import torch

from models import openvino_runtime
from models.graphs import AUTOENCODER_HALF, Positional


class Convolutions(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(*[torch.nn.Conv2d(16, 16, 3, padding=1) for _ in range(4)])

    def forward(self, sample):
        return (self.body(sample),)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_a_channels_last_module_converts_to_the_same_outputs(dtype, tmp_path, monkeypatch):
    """The policy lays bf16 UNets out channels-last; OpenVINO's frontend kept pointers into freed copies of such
    weights (NaN outputs here; a segfault converting SD-Turbo's UNet on an AVX512-BF16 CPU). Memory freed during the
    conversion is reused at once, so shared freed weights would show."""
    monkeypatch.setenv("DEPICT_COMPILE_CACHE", str(tmp_path))
    torch.manual_seed(0)
    module = Convolutions().to(dtype).to(memory_format=torch.channels_last).eval()
    recorded = Positional(module, module.forward, AUTOENCODER_HALF).eval()
    sample = torch.randn(1, 16, 12, 12).to(dtype)
    with torch.no_grad():
        model = openvino_runtime.read_or_convert(recorded, (sample,))
        reused = [torch.full((16, 16, 3, 3), 7.0, dtype=dtype) for _ in range(100)]  # noqa: F841 - takes freed memory
        run = openvino_runtime.compiled_for(model, openvino_runtime.ir_path(recorded, 1), (sample,), 1, dtype)
        expected = module(sample)[0].float()
    got = run(sample).float()
    assert torch.isfinite(got).all()
    assert torch.allclose(got, expected, atol=0.05 * expected.abs().max().item())
