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
    _check_nonlinearity(nonlinearity)
    pre = gates_x_t + F.linear(state.h, weight_hh, bias_hh)
    return ElmanState(torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre))


def _check_nonlinearity(value) -> None:
    if value not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}; got {value!r}")


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
        _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    @property
    def nonlinearity(self) -> str:
        return self._nonlinearity

    @nonlinearity.setter
    def nonlinearity(self, value: str) -> None:
        # checked when set later too: the fused kernels read any value but "relu" as tanh and
        # the reference loop any but "tanh" as relu, two functions and no error
        _check_nonlinearity(value)
        self._nonlinearity = value

    def __setstate__(self, state: dict) -> None:
        # a cell pickled before nonlinearity became a property kept it under its plain name
        if "nonlinearity" in state and "_nonlinearity" not in state:
            state = dict(state)
            state["_nonlinearity"] = state.pop("nonlinearity")
        super().__setstate__(state)

    def step(self, gates_x_t: torch.Tensor, state: ElmanState) -> ElmanState:
        self.check_step(gates_x_t, state)
        return elman_step(gates_x_t, state, self.weight_hh, self.bias_hh, self.nonlinearity)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity}"  # unquoted, as torch.nn.RNNCell
        return text
