"""The oracle of the fused kernels' bfloat16 recurrent products (bf16=True, used under CPU
bfloat16 autocast): the reference backend with each ``h W_hh^T + b_hh`` computed from h and
W_hh rounded to bfloat16 and summed in float64, which is what the AMX tiles compute up to the
rounding of a float32 sum. Tests opt in with the ``bf16_reference`` fixture of their module:
``from bf16_oracle import bf16_reference``.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.cells import elman as elman_module
from rnnkit.cells import gru as gru_module
from rnnkit.cells import lstm as lstm_module


def round_bf16(t: torch.Tensor) -> torch.Tensor:
    return t.bfloat16().to(t.dtype)


class Bf16Product(torch.autograd.Function):
    """h W^T + b with h and W rounded to bfloat16 and the products summed in float64.
    Backward as the kernel: dh = bf16(g) bf16(W) and dW = bf16(g)^T bf16(h), db = sum g."""

    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        out = round_bf16(h).double() @ round_bf16(weight).double().t()
        return (out + bias.double() if bias is not None else out).to(h.dtype)

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        g = round_bf16(grad).double()
        grad_h = (g @ round_bf16(weight).double()).to(h.dtype)
        grad_w = (g.t() @ round_bf16(h).double()).to(weight.dtype)
        return grad_h, grad_w, grad.sum(0) if ctx.has_bias else None


class _Bf16Functional:
    """Stands in for torch.nn.functional inside the cell modules: linear is Bf16Product."""

    @staticmethod
    def linear(h, weight, bias=None):
        return Bf16Product.apply(h, weight, bias)

    # (the cell modules call nothing else of it)


@pytest.fixture
def bf16_reference(monkeypatch):
    """The reference backend with bfloat16 recurrent products (the oracle)."""
    monkeypatch.setattr(gru_module, "F", _Bf16Functional)
    monkeypatch.setattr(elman_module, "F", _Bf16Functional)
    monkeypatch.setattr(lstm_module, "F", _Bf16Functional)
