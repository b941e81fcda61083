"""Fake (meta) registrations of the fused ops defined in C++ (``torch.ops.rnnkit``).

Each cell family has a ``*_forward`` op that runs the whole sequence and saves what backward
needs, and a ``*_backward`` op that runs the sequence in reverse. Their autograd formulas are
registered in C++ (csrc/autograd.cpp: a Python autograd wrapper cost more than the work at small
sizes). Imported by build.py only after the library is loaded, since registration needs the op
schemas.

Outputs take the state's dtype (h0). With ``bf16=True`` (CPU bfloat16 autocast) gates_x may be
bfloat16 under a float32 state, and the backward ops return grad_gates_x in bfloat16.
"""

from __future__ import annotations

import torch
from torch._prims_common import make_contiguous_strides_for


def _grad_gates_dtype(state_like, bf16):
    """The dtype of a backward op's grad_gates_x."""
    return torch.bfloat16 if bf16 else state_like.dtype


def _grad_gates_x(like, steps, batch, width, bf16):
    """A backward op's grad_gates_x, (T, B, width), with the strides the kernels give it.

    In float32 and float64 its rows are one cache line longer than ``width`` when a row is a
    multiple of 2 KB (``gradient_row_stride`` in csrc/common.h, which says why); bfloat16 rows
    are contiguous. The fake output must match the real one's strides for torch.compile.
    """
    dtype = _grad_gates_dtype(like, bf16)
    item = dtype.itemsize
    row = width + 64 // item if not bf16 and width > 0 and width * item % 2048 == 0 else width
    # the strides of the (T, B, row) buffer the op allocates, which count an empty dim as 1
    strides = make_contiguous_strides_for((steps, batch, row))
    return like.new_empty_strided((steps, batch, width), strides, dtype=dtype)


# ---- LSTM ---------------------------------------------------------------------------------------
@torch.library.register_fake("rnnkit::lstm_forward")
def _lstm_forward_fake(gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse, training,
                       bf16=False):
    steps, batch, width = gates_x.shape
    hidden = width // 4
    out_width = h0.shape[-1]
    saved = (steps, batch) if training else None
    return (
        h0.new_empty(steps, batch, out_width), h0.new_empty(batch, out_width),
        h0.new_empty(batch, hidden),
        h0.new_empty(*saved, width) if saved else h0.new_empty(0),
        h0.new_empty(*saved, hidden) if saved else h0.new_empty(0),
    )


@torch.library.register_fake("rnnkit::lstm_inference")
def _lstm_inference_fake(x, h0, c0, weight_ih, bias_ih, weight_hh, bias_hh, weight_hr, lengths,
                         reverse):
    steps, batch, _ = x.shape
    return (x.new_empty(steps, batch, h0.shape[-1]), x.new_empty(batch, h0.shape[-1]),
            x.new_empty(batch, c0.shape[-1]))


@torch.library.register_fake("rnnkit::lstm_backward")
def _lstm_backward_fake(grad_output, grad_h_n, grad_c_n, output, gates, cells, h0, c0, weight_hh,
                        weight_hr, lengths, reverse, bf16=False):
    return (
        _grad_gates_x(gates, *gates.shape, bf16), torch.empty_like(h0),
        torch.empty_like(c0),
        torch.empty_like(weight_hh), weight_hh.new_empty(weight_hh.shape[0]),
        torch.empty_like(weight_hr) if weight_hr is not None else weight_hh.new_empty(0),
    )


# ---- GRU ----------------------------------------------------------------------------------------
@torch.library.register_fake("rnnkit::gru_forward")
def _gru_forward_fake(gates_x, h0, weight_hh, bias_hh, lengths, reverse, training, bf16=False):
    steps, batch, width = gates_x.shape
    hidden = width // 3
    return (h0.new_empty(steps, batch, hidden), h0.new_empty(batch, hidden),
            h0.new_empty(steps, batch, 4 * hidden) if training else h0.new_empty(0))


@torch.library.register_fake("rnnkit::gru_backward")
def _gru_backward_fake(grad_output, grad_h_n, output, saved, h0, weight_hh, lengths, reverse,
                       bf16=False):
    steps, batch, width = saved.shape
    return (_grad_gates_x(saved, steps, batch, 3 * width // 4, bf16),
            torch.empty_like(h0),
            torch.empty_like(weight_hh), weight_hh.new_empty(weight_hh.shape[0]))


# ---- Elman --------------------------------------------------------------------------------------
@torch.library.register_fake("rnnkit::elman_forward")
def _elman_forward_fake(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu, bf16=False):
    steps, batch, hidden = gates_x.shape
    return h0.new_empty(steps, batch, hidden), h0.new_empty(batch, hidden)


@torch.library.register_fake("rnnkit::elman_backward")
def _elman_backward_fake(grad_output, grad_h_n, output, h0, weight_hh, lengths, reverse, relu,
                         bf16=False):
    return (_grad_gates_x(output, *output.shape, bf16), torch.empty_like(h0),
            torch.empty_like(weight_hh),
            weight_hh.new_empty(weight_hh.shape[0]))


# ---- dense products (oneDNN where usable) --------------------------------------------------------
@torch.library.register_fake("rnnkit::matmul")
def _matmul_fake(a, b):
    return a.new_empty(a.shape[0], b.shape[1])


@torch.library.register_fake("rnnkit::linear")
def _linear_fake(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])

