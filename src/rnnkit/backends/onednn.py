"""oneDNN's LSTM primitive (``torch.lstm`` on the CPU) as a route for rnnkit's LSTM layers.

torch.nn.LSTM on the CPU runs oneDNN's fused LSTM: per step one product of ``[x_t, h_{t-1}]``
by the stacked weights and the gate math, the products split over threads by output columns.
rnnkit's LSTM layers call the same primitive, one layer and one direction at a time, in two
places where it beats the fused kernels:

* **float32 inference** from H = 192 with B >= 8 rows (B >= 4 with two or more threads), on
  ``backend="auto"`` (:func:`onednn_inference_pays`). There each step's products are
  compute-bound, and with few rows per thread the fused kernels' row split leaves each thread
  a thin product: inference A/B in one process (Intel host, AVX-512, T = 100, medians of 7,
  torch.nn.LSTM's time over the fused kernels'), 2 threads: B = 8, H = 256 0.60x; B = 16, H =
  256 0.77-0.79x; B = 16, H = 512 0.85x; B = 16, H = 256, T = 500 0.73x; 1 thread: 0.79-0.93x
  for B >= 8 at H = 256-512. At B = 1 (2 threads: 1.17-1.32x) and at H <= 128 (2 threads:
  1.04-3.4x) the fused kernels stay ahead, and so does B = 4 with one thread (1.25-1.42x);
  H = 192 was level to 0.88x. Training stays on the fused kernels, which are level with or
  ahead of oneDNN's there (``benchmarks/results/targets.txt``).
* **bfloat16** (:mod:`.lowered` under CPU autocast, :mod:`.widened` for bfloat16 parameters):
  the weights are cast to bfloat16 per call and the primitive keeps its gates and cell state
  in float32.

What the primitive cannot run goes to the fused kernels (:func:`onednn_lstm_unsupported`): a
projection (``proj_size``: torch runs it without oneDNN), ``lengths``, calls inside torch.func
transforms or forward-mode AD, and cells that are not rnnkit's own LSTMCell (a subclass may
change the step). Reversed directions flip the time axis, which is exact without lengths.

    x (T, B, I) or (B, T, I), h_0, c_0 (B, H)  ->  oneDNN LSTM  ->  output, h_T, c_T
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.autograd import forward_ad

from ..cells import LSTMCell, cell_class

#: The narrowest hidden state whose float32 inference goes to oneDNN (see the module docstring).
INFERENCE_MIN_HIDDEN = 192

#: The fewest rows (B) for it: with one thread, and with two or more.
INFERENCE_MIN_ROWS = {False: 8, True: 4}


def onednn_lstm_unsupported(cell, lengths) -> str | None:
    """Why oneDNN's LSTM cannot run this call of ``cell``, or None."""
    if cell_class(cell) is not LSTMCell:  # not isinstance: a subclass may change the step
        return f"only LSTM cells have it (got {type(cell).__name__})"
    if cell.weight_hr is not None:
        return "oneDNN's LSTM has no projection (proj_size)"
    if lengths is not None:
        return "oneDNN's LSTM has no per-sequence lengths"
    if torch._C._functorch.maybe_current_level() is not None:
        return "oneDNN's LSTM cannot run inside torch.func transforms (vmap, grad, ...)"
    if forward_ad._current_level >= 0:
        return "oneDNN's LSTM has no forward-mode derivative (torch.autograd.forward_ad)"
    return None


def onednn_inference_pays(cell, x: torch.Tensor, lengths, batch_first: bool) -> bool:
    """Whether a float32 LSTM call without gradients runs faster on oneDNN's LSTM than on the
    fused kernels, and can run there (see the module docstring). Checked by the layers for
    ``backend="auto"`` only: ``"fused"`` means the fused kernels."""
    if (x.dtype != torch.float32 or cell.weight_hh.dtype != torch.float32 or not x.is_cpu
            or torch.compiler.is_compiling()):
        # traced, the size tests below would become guards (one graph per side)
        return False
    if cell.hidden_size < INFERENCE_MIN_HIDDEN:
        return False
    rows = x.size(0 if batch_first else 1)
    if rows < INFERENCE_MIN_ROWS[torch.get_num_threads() > 1]:
        return False
    # Without oneDNN (a torch built without it, or torch.backends.mkldnn.enabled = False)
    # torch.lstm runs its own per-step loop, slower than the fused kernels.
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    return onednn_lstm_unsupported(cell, lengths) is None


def onednn_lstm(cell: LSTMCell, x: torch.Tensor, state0: NamedTuple, *, reverse: bool,
                batch_first: bool, training: bool,
                dtype: torch.dtype | None = None) -> tuple[torch.Tensor, NamedTuple]:
    """One direction of an LSTM layer on oneDNN's LSTM, x in the layer's layout; with
    ``dtype``, x, the weights and the state are cast to it first (bfloat16; the casts are
    differentiable, so gradients reach the parameters in their own dtype). Returns the output
    in that dtype and the final state in the parameters' dtype."""
    dtype = dtype or x.dtype
    time_axis = 1 if batch_first else 0
    x = x.to(dtype)
    if reverse:
        x = x.flip(time_axis)  # no lengths here, so reversing the whole time axis is exact
    weights = [cell.weight_ih.to(dtype), cell.weight_hh.to(dtype)]
    if cell.bias_ih is not None:
        weights += [cell.bias_ih.to(dtype), cell.bias_hh.to(dtype)]
    hx = (state0.h.to(dtype).unsqueeze(0), state0.c.to(dtype).unsqueeze(0))
    # train=True makes oneDNN keep the workspace its backward needs.
    output, h_n, c_n = torch.lstm(x, hx, weights, cell.bias_ih is not None, 1, 0.0, training,
                                  False, batch_first)
    if reverse:
        output = output.flip(time_axis)
    own = cell.weight_hh.dtype
    return output, cell.state_type(h_n.squeeze(0).to(own), c_n.squeeze(0).to(own))
