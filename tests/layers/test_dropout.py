"""rnnkit's dropout draws torch's distribution (oracle: the Bernoulli(1 - p) law and its
moments, the exact kept values x / (1 - p), and autograd's gradient of the same product)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnkit.layers.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_keeps_a_one_minus_p_share_and_scales_what_it_keeps(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 0.5  # never zero, so a zero output means dropped
    y = dropout(x, p)
    kept = y != 0
    n = x.numel()
    share = kept.float().mean().item()
    # Binomial(n, 1 - p): within 5 standard deviations.
    assert abs(share - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))


def test_mask_is_independent_across_elements():
    torch.manual_seed(1)
    kept = (dropout(torch.ones(2000, 500), 0.5) != 0).float()
    # Neighbouring elements: P(both kept) = 1/4 for independent draws.
    both = (kept[:, 1:] * kept[:, :-1]).mean().item()
    assert abs(both - 0.25) < 5 * math.sqrt(0.25 * 0.75 / kept[:, 1:].numel())


def test_gradient_is_the_scaled_mask():
    torch.manual_seed(0)
    x = (torch.rand(64, 33, dtype=torch.float64) + 0.5).requires_grad_()
    y = dropout(x, 0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).double() / 0.7)


def test_eval_mode_p_zero_and_p_one():
    x = torch.randn(5, 7)
    layer = Dropout(0.4).eval()
    assert layer(x) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))


def test_seeded_draws_repeat_and_bfloat16_keeps_its_dtype():
    x = torch.randn(8, 16, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = dropout(x, 0.25)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x, 0.25)) and first.dtype == torch.bfloat16


def test_module_is_an_nn_dropout_with_the_same_state():
    layer = Dropout(0.2)
    assert isinstance(layer, nn.Dropout) and layer.state_dict() == {}
    assert repr(layer) == repr(nn.Dropout(0.2))
