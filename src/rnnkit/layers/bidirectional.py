"""``Bidirectional``: a forward and a backward recurrence over the same input, merged."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..backends import check_backend_name
from ..cells.base import RecurrentCell
from ..errors import describe_container
from .autocast import recurrence_outside_autocast
from .checks import check_layer_call, name_mismatched_parameters
from .recurrent import Recurrent

MERGE_MODES = ("concat", "sum", "mean", "mul")


class BidirectionalState(NamedTuple):
    forward: NamedTuple  #: final state of the left-to-right direction
    backward: NamedTuple  #: final state of the right-to-left direction (at each sequence's start)


class Bidirectional(nn.Module):
    """Run one layer left to right and another right to left, and merge their outputs per step.

    ``forward_layer`` and ``backward_layer`` are rnnkit cells (wrapped in :class:`Recurrent`) or
    Recurrent layers; the backward one runs with ``reverse=True``, each sequence reversed within
    its length. Merge modes, for outputs o_f and o_b of shape (B, T, H_out):

    * ``concat``: [o_f, o_b] on the feature axis -> (B, T, 2 H_out) (torch.nn's layout)
    * ``sum``: o_f + o_b,  ``mean``: (o_f + o_b) / 2,  ``mul``: o_f * o_b -> (B, T, H_out)

    ``batch_first`` (default True) and ``backend`` (default "auto") configure the Recurrent
    layers made from cells; given Recurrent layers keep their own, and a value passed here that
    contradicts them is an error rather than silently ignored.

    forward(x, state=None, *, lengths=None) -> (output, BidirectionalState)
    """

    def __init__(
        self,
        forward_layer: Recurrent | RecurrentCell,
        backward_layer: Recurrent | RecurrentCell,
        *,
        merge: str = "concat",
        batch_first: bool | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if backend is not None:
            check_backend_name(backend)
        if merge not in MERGE_MODES:
            raise ValueError(f"merge must be one of {MERGE_MODES}; got {merge!r}")
        layers = []
        for name, layer, reverse in (("forward_layer", forward_layer, False),
                                     ("backward_layer", backward_layer, True)):
            if isinstance(layer, RecurrentCell):
                layer = Recurrent(layer, reverse=reverse,
                                  batch_first=True if batch_first is None else batch_first,
                                  backend=backend or "auto")
            elif not isinstance(layer, Recurrent):
                raise TypeError(f"{name} must be an rnnkit cell or Recurrent layer; got "
                                f"{type(layer).__name__}")
            elif layer.reverse != reverse:
                raise ValueError(f"{name} must have reverse={reverse}; got reverse={layer.reverse}")
            else:
                for option, given in (("batch_first", batch_first), ("backend", backend)):
                    if given is not None and getattr(layer, option) != given:
                        raise ValueError(f"{name} has {option}={getattr(layer, option)!r} but "
                                         f"{option}={given!r} was passed; a given Recurrent "
                                         f"layer keeps its own, so pass cells or drop {option}")
            layers.append(layer)
        forward_layer, backward_layer = layers
        if forward_layer.batch_first != backward_layer.batch_first:
            raise ValueError("forward_layer and backward_layer must agree on batch_first")
        if forward_layer.input_size != backward_layer.input_size:
            raise ValueError(
                f"both directions must take the same input_size; got "
                f"{forward_layer.input_size} and {backward_layer.input_size}"
            )
        if merge != "concat" and forward_layer.output_size != backward_layer.output_size:
            raise ValueError(
                f"merge={merge!r} needs equal output sizes; got {forward_layer.output_size} and "
                f"{backward_layer.output_size} (use merge='concat')"
            )
        self.forward_layer = forward_layer
        self.backward_layer = backward_layer
        self.merge = merge

    @property
    def batch_first(self) -> bool:
        return self.forward_layer.batch_first

    @property
    def input_size(self) -> int:
        return self.forward_layer.input_size

    @property
    def output_size(self) -> int:
        size = self.forward_layer.output_size
        return size + self.backward_layer.output_size if self.merge == "concat" else size

    @name_mismatched_parameters
    @recurrence_outside_autocast
    def forward(self, x: torch.Tensor, state=None, *, lengths=None):
        lengths = check_layer_call(x, self.input_size, self.forward_layer.cell.weight_ih,
                                   self.batch_first, lengths)
        return self._forward(x, self.check_state(state, x), lengths)

    def check_state(self, state, x: torch.Tensor, name: str = "state"):
        if state is None:
            return None
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"{name} must be a BidirectionalState(forward, backward) of 2 "
                            f"states; got {describe_container(state)}")
        return BidirectionalState(
            self.forward_layer.check_state(state[0], x, f"{name}.forward"),
            self.backward_layer.check_state(state[1], x, f"{name}.backward"),
        )

    def _forward(self, x, state: BidirectionalState | None, lengths):
        state = state or BidirectionalState(None, None)
        out_f, final_f = self.forward_layer._forward(x, state.forward, lengths)
        out_b, final_b = self.backward_layer._forward(x, state.backward, lengths)
        return merge_directions(out_f, out_b, self.merge), BidirectionalState(final_f, final_b)

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}"


def merge_directions(out_f: torch.Tensor, out_b: torch.Tensor, mode: str) -> torch.Tensor:
    """Combine per-step outputs of the two directions (see :class:`Bidirectional`)."""
    if mode == "concat":
        return torch.cat((out_f, out_b), dim=-1)
    if mode == "sum":
        return out_f + out_b
    if mode == "mean":
        return (out_f + out_b) * 0.5
    if mode == "mul":
        return out_f * out_b
    # a merge set on the layer after construction ("avg") was run as "mul" without a word
    raise ValueError(f"merge must be one of {MERGE_MODES}; got {mode!r}")
