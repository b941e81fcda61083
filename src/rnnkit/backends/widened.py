"""Layers with bfloat16 or float16 parameters on the CPU: the recurrence runs in float32.

A recurrence rounds its state at each of T steps. In bfloat16 (8 significant bits) that error
compounds: torch.nn.GRU and RNN in bfloat16 round every op and drift ~4x further from a float64
run than the bfloat16 rounding of their output alone, and rnnkit's reference backend did the
same for all three cells. torch.nn.LSTM in bfloat16 runs oneDNN's LSTM, which keeps its gates
and cell state in float32. So a layer whose parameters are bfloat16 or float16 runs, on the CPU,
as the float32 layer with exactly the same values:

    x (T, B, I), state_0 fields (B, H)     bfloat16 / float16
      -> float32(x), float32(W), float32(b), float32(state_0)      exact: every value fits
      -> the float32 layer (fused kernels)                         (T, B, H_out), state_T
      -> output and final state rounded to the parameters' dtype

The casts are differentiable, so gradients reach the parameters in their own dtype. An LSTM
layer with bfloat16 parameters runs its float32 copy under the CPU bfloat16 route
(:mod:`rnnkit.backends.lowered`), as under ``torch.autocast("cpu", dtype=torch.bfloat16)``: on a
CPU that multiplies bfloat16 natively that is oneDNN's bfloat16 LSTM, what torch.nn.LSTM runs
(or, in training where they are faster, the fused kernels with bfloat16 products), so it keeps
torch.nn.LSTM's speed and accuracy. GRU and Elman layers stay wholly float32: the bfloat16 route
rounds each step's input projection and the state it multiplies, which on those cells cost
half the accuracy won. Measured (B = 4-16, T = 50-100, H = 32-256; largest error against the
float64 run of the same weights and input): GRU and Elman 0.0020, the rounding of the output
itself (2^-9 near 1), against torch.nn's 0.007-0.010 and the reference backend's 0.005-0.011;
LSTM 0.0020-0.0023, torch.nn's 0.0019-0.0023 (the reference backend's 0.004-0.006).

Left as they were: ``backend="reference"`` (the oracle runs in the parameters' dtype), cells
other than rnnkit's own three (a subclass may change the step) or whose weights are computed
(torch parametrizations), other devices, and calls traced by torch.compile (they run in the
parameters' dtype there, as before; a compiled and an eager call then round differently).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable, NamedTuple

import torch

from ..cells import GRUCell, LSTMCell, RNNCell
from .lowered import lowered_dtype, lowered_precision

#: The parameter dtypes whose recurrence runs in float32 (see the module docstring).
LOW_PRECISION = (torch.bfloat16, torch.float16)

#: The tensors the backends read from a cell.
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def widens(cell, x: torch.Tensor, backend: str) -> bool:
    """Whether this call runs in float32 (see the module docstring). Cheap: a layer in float32
    pays one dtype comparison."""
    return (cell.weight_hh.dtype in LOW_PRECISION and backend != "reference"
            and x.device.type == "cpu" and type(cell) in (LSTMCell, GRUCell, RNNCell)
            and not torch.compiler.is_compiling())


def float32_view_of(cell):
    """A shallow copy of ``cell`` whose parameters are their float32 values (differentiable casts
    of the originals). Its forward pre-hooks are dropped: the layer has already run them on the
    cell itself (:func:`rnnkit.backends.scan.run_forward_pre_hooks`), and what they computed
    (torch.nn.utils.prune's weight, say) is among the attributes copied and widened."""
    view = type(cell).__new__(type(cell))
    state = dict(cell.__dict__)
    state["_parameters"] = {name: _widened(value) for name, value in cell._parameters.items()}
    state["_forward_pre_hooks"] = OrderedDict()
    for name in _WEIGHT_NAMES:
        if isinstance(state.get(name), torch.Tensor):  # a plain attribute (set by a hook)
            state[name] = _widened(state[name])
    view.__dict__.update(state)
    return view


def _widened(value):
    if isinstance(value, torch.Tensor) and value.dtype in LOW_PRECISION:
        return value.float()
    return value


def run_widened(run_layer: Callable, cell, x: torch.Tensor, state0: NamedTuple, **options
                ) -> tuple[torch.Tensor, NamedTuple]:
    """``run_layer(cell, x, state0, **options)`` in float32, rounded back to the parameters'
    dtype (see the module docstring)."""
    dtype = cell.weight_hh.dtype
    view = float32_view_of(cell)
    state0 = type(state0)(*(field.float() for field in state0))
    # An LSTM takes the bfloat16 route, as torch.nn.LSTM in bfloat16 does (see the module).
    lowered = (lowered_precision(torch.bfloat16)
               if dtype is torch.bfloat16 and type(cell) is LSTMCell and lowered_dtype() is None
               else contextlib.nullcontext())
    with lowered:
        output, final = run_layer(view, x.float(), state0, **options)
    return output.to(dtype), type(final)(*(field.to(dtype) for field in final))
