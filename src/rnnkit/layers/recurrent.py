"""``Recurrent``: one cell run over a sequence in one direction."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..backends import check_backend_name, run_layer
from ..cells.base import RecurrentCell, check_cell_state
from ..errors import check_flag
from .autocast import recurrence_outside_autocast
from .checks import check_layer_call, name_mismatched_parameters


class Recurrent(nn.Module):
    """Run ``cell`` over time: ``h_t = cell(x_t, h_{t-1})`` for t = 1..T (or T..1 if ``reverse``).

    forward(x, state=None, *, lengths=None) -> (output, final_state)

    * x: (B, T, I) if ``batch_first`` (the default) else (T, B, I).
    * state: the cell's NamedTuple state with fields (B, *), or None for zeros.
    * lengths: (B,) valid lengths or a boolean mask; steps past a sequence's length leave its
      state unchanged and output zeros; with ``reverse`` each sequence is reversed within its
      length.
    * output: (B, T, H_out) (or (T, B, H_out)); final_state: the cell's state after each
      sequence's last valid step.
    """

    def __init__(
        self,
        cell: RecurrentCell,
        *,
        reverse: bool = False,
        batch_first: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"cell must be an rnnkit cell (RecurrentCell); got {type(cell).__name__}")
        check_flag("reverse", reverse)
        check_flag("batch_first", batch_first)
        check_backend_name(backend)
        self.cell = cell
        self.reverse = reverse
        self.batch_first = batch_first
        self.backend = backend

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    @name_mismatched_parameters
    @recurrence_outside_autocast
    def forward(self, x: torch.Tensor, state=None, *, lengths=None):
        lengths = check_layer_call(x, self.input_size, self.cell.weight_ih, self.batch_first, lengths)
        return self._forward(x, self.check_state(state, x), lengths)

    def check_state(self, state, x: torch.Tensor, name: str = "state"):
        """Validate a user state against the input; returns the cell's NamedTuple (or None)."""
        if state is None:
            return None
        return check_cell_state(self.cell, state, x.size(0) if self.batch_first else x.size(1),
                                x, name)

    def _forward(self, x: torch.Tensor, state: NamedTuple | None, lengths: torch.Tensor | None):
        """forward() without argument checks, for layers that have already checked them."""
        if state is None:
            batch = x.size(0) if self.batch_first else x.size(1)
            state = self.cell.zero_state_like(x, batch)
        return run_layer(self.cell, x, state, lengths=lengths, reverse=self.reverse,
                         batch_first=self.batch_first, backend=self.backend)

    def extra_repr(self) -> str:
        parts = [f"reverse={self.reverse}"] if self.reverse else []
        if not self.batch_first:
            parts.append("batch_first=False")
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
