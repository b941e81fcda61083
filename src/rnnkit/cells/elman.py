"""Elman RNN: the simplest recurrence, with a tanh or ReLU nonlinearity.

    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act in {tanh, relu}

Shapes: x_t (B, I), h (B, H), W_ih (H, I), W_hh (H, H), b_* (H).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .base import RecurrentCell

NONLINEARITIES = ("tanh", "relu")


class ElmanState(NamedTuple):
    h: torch.Tensor  #: (B, H)


def elman_step(
    gates_x_t: torch.Tensor,
    state: ElmanState,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
    nonlinearity: str = "tanh",
) -> ElmanState:
    """One Elman step.

    ``gates_x_t`` (B, H) is the precomputed ``x_t W_ih^T + b_ih``; returns
    ``ElmanState(act(gates_x_t + h W_hh^T + b_hh))``.
    """
    pre = gates_x_t + F.linear(state.h, weight_hh, bias_hh)
    return ElmanState(torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre))


class RNNCell(RecurrentCell):
    """Elman cell, drop-in for ``torch.nn.RNNCell`` (same arguments, parameters and forward)."""

    state_type = ElmanState
    gate_count = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity must be one of {NONLINEARITIES}; got {nonlinearity!r}"
            )
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def step(self, gates_x_t: torch.Tensor, state: ElmanState) -> ElmanState:
        return elman_step(gates_x_t, state, self.weight_hh, self.bias_hh, self.nonlinearity)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity}"  # unquoted, as torch.nn.RNNCell
        return text
