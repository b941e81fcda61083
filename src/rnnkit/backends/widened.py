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

The float32 run, with ``backend="auto"``, where it pays and only there (:func:`widens`). Each
call casts the G x (I + H) weights and packs them for the kernels, a pass that the steps must
repay, so a call is widened from ``ceil((I + H) / STEP_WIDTH)`` steps (at least
``MIN_STEPS`` = 2): 4 steps at I = H = 128, 8 at 256, 16 at 512. A float32 step is then far
cheaper than the bfloat16 reference's step in Python, until the step itself is large: the
reference's bfloat16 matmuls run on AMX, and beyond B x H x (I + H) = ``STEP_WORK`` (2^21)
multiply-adds per thread an inference step ran faster there than the float32 kernels' (so such
calls are not widened), and a training call needed ``LONG_CALL_STEPS`` = 32 steps beyond twice
that. Hidden sizes stay capped where the float32 kernels lost at every length: 256 in
inference, 512 in training (H = 1024 ran 0.4-0.8x at T = 32-100).

Measured on the Intel AMX host (bfloat16 GRU and Elman layers, speed relative to torch.nn in
bfloat16, in one process interleaved, 1 and 2 threads), a widened call against what such a
call ran before, the step loop in bfloat16 (the reference backend):

=====================================================  ==============  ====================
calls                                                  widened         bfloat16 reference
=====================================================  ==============  ====================
H = 64-128, B = 1-64, T = 4-16                         0.90-8.1x       0.60-0.92x
H = 256, B = 1-16, T = 8-16                            0.88-4.1x       0.71-0.92x
H = 512, B = 1-4, T = 16, training                     1.28-3.0x       0.79-0.95x
H = 256, B = 64, T = 8-100, inference (not widened)    0.56-0.82x      0.87-1.11x
T = 1 (not widened)                                    0.12-1.21x      0.63-0.95x
=====================================================  ==============  ====================

LSTM layers with ``lengths`` cross over at the same step counts (B = 1-16, the reference's time
over the widened call: at H = 128 1.91-3.40 from T = 4, at H = 256 0.78-1.10 at T = 2 and
1.14-2.62 from T = 8). Until 2026-12-07 only calls of 32 steps or more were widened, which
left calls of 4-31 steps up to 8x slower than they need be. A call below the minimum, such as
generating one character at a time, runs in the parameters' dtype as before.

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
from .fused.backend import needs_grad, torch_threads
from .lowered import (bf16_recurrence_enabled, cpu_bf16_instructions, lowered_dtype,
                      lowered_precision, run_bf16)
from .onednn import onednn_lstm_unsupported

#: The parameter dtypes whose recurrence runs in float32 (see the module docstring).
LOW_PRECISION = (torch.bfloat16, torch.float16)

#: The tensors the backends read from a cell.
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


#: The fewest steps a widened call may have: a one-step call never repays the casts and packing.
MIN_STEPS = 2

#: Weight columns (I + H) per step of the call that repay their cast and packing: a call is
#: widened from ceil((I + H) / STEP_WIDTH) steps (see the module docstring for the measurements).
STEP_WIDTH = 64

#: Multiply-adds per thread of one step's products, B x H x (I + H), beyond which the bfloat16
#: reference's AMX matmuls stay ahead: no inference call is widened, and a training call needs
#: LONG_CALL_STEPS beyond twice this.
STEP_WORK = 1 << 21

#: The fewest steps of a widened training call whose steps exceed twice STEP_WORK: at B = 64,
#: H = 256 (one thread) T = 8 ran 0.66x torch.nn widened against the reference's 0.80x, T = 32
#: 0.65-0.78x against 0.52x.
LONG_CALL_STEPS = 32

#: The widest hidden state that is widened, in inference and in training: from H = 512 (1024)
#: the float32 kernels ran slower than the bfloat16 reference (oneDNN's bfloat16 matmuls, on the
#: AMX host) even at T = 100, while training calls at H = 512 ran 1.9-2.1x faster widened
#: (B = 16, T = 100: GRU 332 -> 175 ms, Elman 122 -> 58; benchmarks/bench_low_precision.py).
MAX_HIDDEN = {False: 256, True: 512}


def widens(cell, batch: int, steps: int, training: bool) -> bool:
    """Whether a call of ``steps`` steps and ``batch`` rows on ``backend="auto"`` runs faster
    in float32 than in the parameters' dtype (the rule of the module docstring)."""
    hidden = cell.hidden_size
    if hidden > MAX_HIDDEN[training]:
        return False
    width = cell.input_size + hidden
    step_work = batch * hidden * width / torch_threads()
    if step_work > (2 * STEP_WORK if training else STEP_WORK):
        return training and steps >= LONG_CALL_STEPS
    return steps >= max(MIN_STEPS, -(-width // STEP_WIDTH))


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
    if backend == "fused":
        return "float32"
    batch, steps = (x.size(0), x.size(1)) if batch_first else (x.size(1), x.size(0))
    if widens(cell, batch, steps, needs_grad(cell, x)):
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
