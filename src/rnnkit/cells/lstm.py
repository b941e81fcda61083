"""LSTM: gated memory cell (Hochreiter & Schmidhuber 1997, with forget gate), optional projection.

Gate order is torch's i, f, g, o. With ``gates = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh``
split into four (B, H) blocks:

    i = sigmoid(gates_i)      f = sigmoid(gates_f)
    g = tanh(gates_g)         o = sigmoid(gates_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                     (then h_t = h_t W_hr^T if proj_size > 0)

Shapes: x_t (B, I), c (B, H), h (B, P) with P = proj_size or H, W_ih (4H, I), W_hh (4H, P),
W_hr (P, H), b_* (4H).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import checked_size
from .base import RecurrentCell


class LSTMState(NamedTuple):
    h: torch.Tensor  #: (B, P) output (projected if proj_size > 0)
    c: torch.Tensor  #: (B, H) memory cell


def lstm_step(
    gates_x_t: torch.Tensor,
    state: LSTMState,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
    weight_hr: torch.Tensor | None = None,
) -> LSTMState:
    """One LSTM step; ``gates_x_t`` (B, 4H) is the precomputed ``x_t W_ih^T + b_ih``.

    With ``gates = gates_x_t + h_{t-1} W_hh^T + b_hh`` split into (i, f, g, o), each (B, H)::

        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)            (then h_t W_hr^T: (B, P), with ``weight_hr``)

    Returns ``LSTMState(h_t, c_t)``.
    """
    gates = gates_x_t + F.linear(state.h, weight_hh, bias_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    if weight_hr is not None:
        h = F.linear(h, weight_hr)
    return LSTMState(h, c)


class LSTMCell(RecurrentCell):
    """LSTM cell, drop-in for ``torch.nn.LSTMCell``; also takes ``proj_size`` like ``nn.LSTM``.

    ``forward(input, (h, c))`` returns ``(h', c')``.
    """

    state_type = LSTMState
    gate_count = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        proj_size: int = 0,
    ) -> None:
        hidden_size = checked_size("hidden_size", hidden_size)
        proj_size = checked_size("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size={hidden_size}; got {proj_size}"
            )
        super().__init__(
            input_size, hidden_size, bias,
            recurrent_input_size=proj_size or hidden_size, device=device, dtype=dtype,
        )
        self.proj_size = proj_size
        if proj_size:
            self.weight_hr = nn.Parameter(
                torch.empty(proj_size, hidden_size, device=device, dtype=dtype)
            )
        else:
            self.register_parameter("weight_hr", None)
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def state_sizes(self) -> dict[str, int]:
        return {"h": self.output_size, "c": self.hidden_size}

    def reset_parameters(self) -> None:
        # torch.nn.LSTM bounds every parameter, the projection included, by 1/sqrt(hidden_size).
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def step(self, gates_x_t: torch.Tensor, state: LSTMState) -> LSTMState:
        self.check_step(gates_x_t, state)
        return lstm_step(gates_x_t, state, self.weight_hh, self.bias_hh, self.weight_hr)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        return text
