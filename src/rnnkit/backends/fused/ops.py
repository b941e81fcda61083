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


def _grad_gates_dtype(state_like, bf16):
    """The dtype of a backward op's grad_gates_x."""
    return torch.bfloat16 if bf16 else state_like.dtype


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
        torch.empty_like(gates, dtype=_grad_gates_dtype(gates, bf16)), torch.empty_like(h0),
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
    return (saved.new_empty(steps, batch, 3 * width // 4, dtype=_grad_gates_dtype(saved, bf16)),
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
    return (torch.empty_like(output, dtype=_grad_gates_dtype(output, bf16)), torch.empty_like(h0),
            torch.empty_like(weight_hh),
            weight_hh.new_empty(weight_hh.shape[0]))


# ---- dense products (oneDNN where usable) --------------------------------------------------------
@torch.library.register_fake("rnnkit::matmul")
def _matmul_fake(a, b):
    return a.new_empty(a.shape[0], b.shape[1])


@torch.library.register_fake("rnnkit::linear")
def _linear_fake(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])

