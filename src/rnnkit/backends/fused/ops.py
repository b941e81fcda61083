"""Autograd and fake (meta) registrations of the fused ops defined in C++ (``torch.ops.rnnkit``).

Each cell family has a ``*_forward`` op that runs the whole sequence and saves what backward
needs, and a ``*_backward`` op that runs the sequence in reverse. Imported by build.py only after
the library is loaded, since registration needs the op schemas.
"""

from __future__ import annotations

import torch

_lib = torch.ops.rnnkit


def _zeros_if_none(grad, like):
    return torch.zeros_like(like) if grad is None else grad


# ---- LSTM ---------------------------------------------------------------------------------------
@torch.library.register_fake("rnnkit::lstm_forward")
def _lstm_forward_fake(gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse, training):
    steps, batch, width = gates_x.shape
    hidden = width // 4
    out_width = h0.shape[-1]
    saved = (steps, batch) if training else None
    return (
        gates_x.new_empty(steps, batch, out_width), gates_x.new_empty(batch, out_width),
        gates_x.new_empty(batch, hidden),
        gates_x.new_empty(*saved, width) if saved else gates_x.new_empty(0),
        gates_x.new_empty(*saved, hidden) if saved else gates_x.new_empty(0),
    )


@torch.library.register_fake("rnnkit::lstm_backward")
def _lstm_backward_fake(grad_output, grad_h_n, grad_c_n, output, gates, cells, h0, c0, weight_hh,
                        weight_hr, lengths, reverse):
    return (
        torch.empty_like(gates), torch.empty_like(h0), torch.empty_like(c0),
        torch.empty_like(weight_hh), weight_hh.new_empty(weight_hh.shape[0]),
        torch.empty_like(weight_hr) if weight_hr is not None else weight_hh.new_empty(0),
    )


def _lstm_setup_context(ctx, inputs, output):
    gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse, training = inputs
    out, _, _, gates, cells = output
    ctx.save_for_backward(out, gates, cells, h0, c0, weight_hh, weight_hr, lengths)
    ctx.reverse = reverse
    ctx.has_bias = bias_hh is not None


def _lstm_backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_gates, _grad_cells):
    out, gates, cells, h0, c0, weight_hh, weight_hr, lengths = ctx.saved_tensors
    if gates.numel() == 0 and out.numel() != 0:
        raise RuntimeError("rnnkit fused LSTM: forward ran without saving for backward")
    grads = _lib.lstm_backward(
        _zeros_if_none(grad_output, out), _zeros_if_none(grad_h_n, h0),
        _zeros_if_none(grad_c_n, c0), out, gates, cells, h0, c0, weight_hh, weight_hr, lengths,
        ctx.reverse,
    )
    grad_gates_x, grad_h0, grad_c0, grad_w_hh, grad_b_hh, grad_w_hr = grads
    return (grad_gates_x, grad_h0, grad_c0, grad_w_hh, grad_b_hh if ctx.has_bias else None,
            grad_w_hr if weight_hr is not None else None, None, None, None)


torch.library.register_autograd("rnnkit::lstm_forward", _lstm_backward,
                                setup_context=_lstm_setup_context)


# ---- GRU ----------------------------------------------------------------------------------------
@torch.library.register_fake("rnnkit::gru_forward")
def _gru_forward_fake(gates_x, h0, weight_hh, bias_hh, lengths, reverse, training):
    steps, batch, width = gates_x.shape
    hidden = width // 3
    return (gates_x.new_empty(steps, batch, hidden), gates_x.new_empty(batch, hidden),
            gates_x.new_empty(steps, batch, 4 * hidden) if training else gates_x.new_empty(0))


@torch.library.register_fake("rnnkit::gru_backward")
def _gru_backward_fake(grad_output, grad_h_n, output, saved, h0, weight_hh, lengths, reverse):
    steps, batch, width = saved.shape
    return (saved.new_empty(steps, batch, 3 * width // 4), torch.empty_like(h0),
            torch.empty_like(weight_hh), weight_hh.new_empty(weight_hh.shape[0]))


def _gru_setup_context(ctx, inputs, output):
    gates_x, h0, weight_hh, bias_hh, lengths, reverse, training = inputs
    out, _, saved = output
    ctx.save_for_backward(out, saved, h0, weight_hh, lengths)
    ctx.reverse = reverse
    ctx.has_bias = bias_hh is not None


def _gru_backward(ctx, grad_output, grad_h_n, _grad_saved):
    out, saved, h0, weight_hh, lengths = ctx.saved_tensors
    if saved.numel() == 0 and out.numel() != 0:
        raise RuntimeError("rnnkit fused GRU: forward ran without saving for backward")
    grad_gates_x, grad_h0, grad_w_hh, grad_b_hh = _lib.gru_backward(
        _zeros_if_none(grad_output, out), _zeros_if_none(grad_h_n, h0), out, saved, h0,
        weight_hh, lengths, ctx.reverse,
    )
    return (grad_gates_x, grad_h0, grad_w_hh, grad_b_hh if ctx.has_bias else None,
            None, None, None)


torch.library.register_autograd("rnnkit::gru_forward", _gru_backward,
                                setup_context=_gru_setup_context)


# ---- Elman --------------------------------------------------------------------------------------
@torch.library.register_fake("rnnkit::elman_forward")
def _elman_forward_fake(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu):
    steps, batch, hidden = gates_x.shape
    return gates_x.new_empty(steps, batch, hidden), gates_x.new_empty(batch, hidden)


@torch.library.register_fake("rnnkit::elman_backward")
def _elman_backward_fake(grad_output, grad_h_n, output, h0, weight_hh, lengths, reverse, relu):
    return (torch.empty_like(output), torch.empty_like(h0), torch.empty_like(weight_hh),
            weight_hh.new_empty(weight_hh.shape[0]))


def _elman_setup_context(ctx, inputs, output):
    gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu = inputs
    out, _ = output
    ctx.save_for_backward(out, h0, weight_hh, lengths)
    ctx.reverse, ctx.relu = reverse, relu
    ctx.has_bias = bias_hh is not None


def _elman_backward(ctx, grad_output, grad_h_n):
    out, h0, weight_hh, lengths = ctx.saved_tensors
    grad_gates_x, grad_h0, grad_w_hh, grad_b_hh = _lib.elman_backward(
        _zeros_if_none(grad_output, out), _zeros_if_none(grad_h_n, h0), out, h0, weight_hh,
        lengths, ctx.reverse, ctx.relu,
    )
    return (grad_gates_x, grad_h0, grad_w_hh, grad_b_hh if ctx.has_bias else None,
            None, None, None)


torch.library.register_autograd("rnnkit::elman_forward", _elman_backward,
                                setup_context=_elman_setup_context)


# ---- dense products (oneDNN where usable) --------------------------------------------------------
@torch.library.register_fake("rnnkit::matmul")
def _matmul_fake(a, b):
    return a.new_empty(a.shape[0], b.shape[1])


@torch.library.register_fake("rnnkit::linear")
def _linear_fake(x, weight, bias):
    return x.new_empty(x.shape[0], weight.shape[0])


def _matmul_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _matmul_backward(ctx, grad):
    a, b = ctx.saved_tensors
    grad_a = _lib.matmul(grad, b.t()) if ctx.needs_input_grad[0] else None
    grad_b = _lib.matmul(a.t(), grad) if ctx.needs_input_grad[1] else None
    return grad_a, grad_b


def _linear_setup_context(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _linear_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x = _lib.matmul(grad, weight) if ctx.needs_input_grad[0] else None
    grad_weight = _lib.matmul(grad.t(), x) if ctx.needs_input_grad[1] else None
    grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_x, grad_weight, grad_bias


torch.library.register_autograd("rnnkit::matmul", _matmul_backward,
                                setup_context=_matmul_setup_context)
torch.library.register_autograd("rnnkit::linear", _linear_backward,
                                setup_context=_linear_setup_context)
