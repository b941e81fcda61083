"""GRU (Cho et al. 2014) with the reset gate applied after the recurrent matmul, as torch and cuDNN.

Gate order is torch's r, z, n. With ``gx = x_t W_ih^T + b_ih`` and ``gh = h_{t-1} W_hh^T + b_hh``,
each split into three (B, H) blocks:

    r = sigmoid(gx_r + gh_r)
    z = sigmoid(gx_z + gh_z)
    n = tanh(gx_n + r * gh_n)
    h_t = (1 - z) * n + z * h_{t-1}

Shapes: x_t (B, I), h (B, H), W_ih (3H, I), W_hh (3H, H), b_* (3H).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .base import RecurrentCell


class GRUState(NamedTuple):
    h: torch.Tensor  #: (B, H)


def gru_step(
    gates_x_t: torch.Tensor,
    state: GRUState,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
) -> GRUState:
    """One GRU step; ``gates_x_t`` (B, 3H) is the precomputed ``x_t W_ih^T + b_ih``.

    With ``gx = gates_x_t`` and ``gh = h_{t-1} W_hh^T + b_hh``, each split into (r, z, n) blocks
    of (B, H)::

        r = sigmoid(gx_r + gh_r)        z = sigmoid(gx_z + gh_z)
        n = tanh(gx_n + r * gh_n)       (the reset gate after the product, as torch.nn.GRU)
        h_t = (1 - z) * n + z * h_{t-1}

    Returns ``GRUState(h_t)``.
    """
    gates_h = F.linear(state.h, weight_hh, bias_hh)
    x_r, x_z, x_n = gates_x_t.chunk(3, dim=-1)
    h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    # (1 - z) * n + z * h, written as one lerp-like expression.
    return GRUState(n + z * (state.h - n))


class GRUCell(RecurrentCell):
    """GRU cell, drop-in for ``torch.nn.GRUCell`` (same arguments, parameters and forward)."""

    state_type = GRUState
    gate_count = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.reset_parameters()

    def step(self, gates_x_t: torch.Tensor, state: GRUState) -> GRUState:
        self.check_step(gates_x_t, state)
        return gru_step(gates_x_t, state, self.weight_hh, self.bias_hh)
