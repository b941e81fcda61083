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
layer with bfloat16 parameters, no projection and no ``lengths``, on a CPU that multiplies
bfloat16 natively, instead runs oneDNN's bfloat16 LSTM on its own weights, as torch.nn.LSTM in
bfloat16 does: its gates and cell state are float32 inside, nothing is cast, and so it keeps
torch.nn.LSTM's speed and accuracy at any length and width. GRU and Elman layers stay wholly
float32: the bfloat16 route rounds each step's input projection and the state it multiplies,
which on those cells cost half the accuracy won. Measured (B = 4-16, T = 50-100, H = 32-256;
largest error against the float64 run of the same weights and input): GRU and Elman 0.0020, the
rounding of the output itself (2^-9 near 1), against torch.nn's 0.007-0.010 and the reference
backend's 0.005-0.011; LSTM 0.0020-0.0023, torch.nn's 0.0019-0.0023 (the reference backend's
0.004-0.006).

The float32 run, with ``backend="auto"``, where it pays and only there: sequences of at least
``MIN_STEPS`` = 32 steps and hidden sizes up to ``MAX_HIDDEN`` = 256 (512 in training). Each
call casts the weights and packs them for the kernels, a pass over them that a short call does
not repay (Intel AMX host, inference: at T = 1 widened calls ran 0.15-0.5x the bfloat16
reference's speed; at H = 256 and T = 32 1.3-2.9x with B = 1 and 1.1-1.4x with B = 16; at T =
100 3.9-4.5x), and at H = 1024 the bfloat16 reference, whose matmuls run on AMX there, stayed
ahead (0.4-0.8x at T = 32-100). Shorter or wider calls, such as generating one character at a
time, run in the parameters' dtype as before; the rounding widening saves builds up over many
steps.

``backend="fused"`` widens every call, as the fused kernels have no lower-precision arithmetic.
Left as they were too: ``backend="reference"`` (the oracle runs in the parameters' dtype), cells
other than rnnkit's own three (a subclass may change the step) or whose weights are computed
(torch parametrizations), parameters of mixed dtypes (refused by the layers' checks), other
devices, and calls traced by torch.compile or torch.export (they run in the parameters' dtype
there; a compiled or exported and an eager call then round differently). A widened call runs on
the fused kernels, which have no second derivatives: double backward needs
``backend="reference"``, as in float32.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable, NamedTuple

import torch

from ..cells import GRUCell, LSTMCell, RNNCell
from .fused.backend import needs_grad
from .lowered import (bf16_recurrence_enabled, cpu_bf16_instructions, lowered_dtype,
                      lowered_precision, run_bf16)
from .onednn import onednn_lstm_unsupported

#: The parameter dtypes whose recurrence runs in float32 (see the module docstring).
LOW_PRECISION = (torch.bfloat16, torch.float16)

#: The tensors the backends read from a cell.
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


#: The shortest sequence that is widened: the casts and the fused kernels' weight packing cost
#: a pass over the weights per call, which a few steps do not repay, and the rounding the
#: widening saves builds up over many steps (see the module docstring).
MIN_STEPS = 32

#: The widest hidden state that is widened, in inference and in training: from H = 512 (1024)
#: the float32 kernels ran slower than the bfloat16 reference (oneDNN's bfloat16 matmuls, on the
#: AMX host) even at T = 100, while training calls at H = 512 ran 1.9-2.1x faster widened
#: (B = 16, T = 100: GRU 332 -> 175 ms, Elman 122 -> 58; benchmarks/bench_low_precision.py).
MAX_HIDDEN = {False: 256, True: 512}


def widening(cell, x: torch.Tensor, backend: str, batch_first: bool, lengths=None) -> str | None:
    """How this call runs (see the module docstring): ``"onednn"`` (a bfloat16 LSTM on oneDNN's
    LSTM), ``"float32"`` (widened), or None (in the parameters' dtype, as before). Cheap: a
    layer in float32 pays one dtype comparison. ``backend="fused"`` widens every call it can:
    the fused kernels have no bfloat16 or float16 arithmetic, and a layer that trained on them
    must not fail on a shorter call."""
    dtype = cell.weight_hh.dtype
    if dtype not in LOW_PRECISION:  # first: every float32 call passes here
        return None
    if (backend == "reference" or x.device.type != "cpu"
            or type(cell) not in (LSTMCell, GRUCell, RNNCell)
            or torch.compiler.is_compiling()
            # parameters of mixed dtypes are the layer's checks' business, as before
            or any(p is not None and p.dtype != dtype for p in cell._parameters.values())):
        return None
    if onednn_lstm_runs(cell, backend, lengths):
        return "onednn"
    if (backend == "fused" or (x.size(1 if batch_first else 0) >= MIN_STEPS
                               and cell.hidden_size <= MAX_HIDDEN[needs_grad(cell, x)])):
        return "float32"
    return None


def onednn_lstm_runs(cell, backend: str, lengths) -> bool:
    """Whether a call of an LSTM layer with bfloat16 parameters runs on oneDNN's bfloat16 LSTM
    with its own weights, as torch.nn.LSTM in bfloat16 does: no projection, no ``lengths``, a
    CPU that multiplies bfloat16 natively, ``backend="auto"`` and the route not turned off
    (:func:`rnnkit.backends.lowered.set_bf16_recurrence`). Nothing is cast, so any length and
    width pays."""
    return (type(cell) is LSTMCell and cell.weight_hh.dtype is torch.bfloat16
            and backend == "auto" and bf16_recurrence_enabled()
            and bool(cpu_bf16_instructions()) and onednn_lstm_unsupported(cell, lengths) is None)


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


def run_widened(run_layer: Callable, route: str, cell, x: torch.Tensor, state0: NamedTuple,
                **options) -> tuple[torch.Tensor, NamedTuple]:
    """``run_layer(cell, x, state0, **options)`` the way :func:`widening` chose (``route``):
    oneDNN's bfloat16 LSTM, or in float32, rounded back to the parameters' dtype."""
    if route == "onednn":
        return run_bf16(cell, x, state0, reverse=options.get("reverse", False),
                        batch_first=options.get("batch_first", False),
                        training=needs_grad(cell, x, *state0))
    dtype = cell.weight_hh.dtype
    view = float32_view_of(cell)
    state0 = type(state0)(*(field.float() for field in state0))
    # Wholly float32, also under bfloat16 autocast: its route rounds each step's input
    # projection and state (a float16 layer kept float16 there before).
    lowered = lowered_precision(None) if lowered_dtype() is not None else contextlib.nullcontext()
    with lowered:
        output, final = run_layer(view, x.float(), state0, **options)
    return output.to(dtype), type(final)(*(field.to(dtype) for field in final))
