"""oneDNN's LSTM primitive (``torch.lstm`` on the CPU) as a route for rnnkit's LSTM layers.

torch.nn.LSTM on the CPU runs oneDNN's fused LSTM: per step one product of ``[x_t, h_{t-1}]``
by the stacked weights and the gate math, the products split over threads by output columns.
rnnkit's LSTM layers call the same primitive, one layer and one direction at a time, in two
places where it beats the fused kernels:

* **float32 inference** from H = 256 on ``backend="auto"`` (:func:`onednn_inference_pays`;
  from H = 160 with one thread on Intel CPUs, and there from H = 128 with 32 rows or more:
  :func:`inference_min_hidden`),
  from 12 rows per thread on Intel CPUs and 8 elsewhere (:func:`inference_min_rows_per_thread`;
  on Intel B >= 12 with one thread, B >= 24 with two), with one thread from T = 64 steps, and
  off Intel with more threads from T = 16 steps.
  There each step's products are compute-bound: oneDNN splits them by output columns and runs
  its GEMM closer to the peak than the fused kernels' row blocks.
  Inference A/B in one process (Intel host, AVX-512, T = 100, medians of 7-11, two runs where
  a range is given; torch.nn.LSTM's time over the fused kernels', at H = 256 / 384 / 512):

  | rows B | one thread | two threads |
  |---|---|---|
  | 4 | 1.53 / 1.54 / 1.41 | 1.19 / 1.67 / 1.45 |
  | 8 | 1.07-1.10 / 1.06-1.10 / 0.96-1.03 | 1.05-1.06 / 1.19-1.23 / 1.04-1.07 |
  | 16 | 0.99-1.01 / 0.98-1.12 / 0.97-0.99 | 0.98-1.02 / 1.16-1.17 / 1.03-1.04 |
  | 24 | 0.88 / 0.86 / 0.86 | 0.93 / 0.99 / 0.90 |
  | 32 | 0.87-0.91 / 0.87-0.94 / 0.85-0.86 | 0.93-0.96 / 0.94-1.00 / 0.92-0.95 |
  | 64 | 0.87 / 0.91 / 0.90 | 0.90 / 0.98 / 0.88 |

  (Before the fused kernels split a few rows of a wide state by units and stopped projecting
  inside the loop with few rows per thread, the two-thread column read 0.58-0.85 from B = 8,
  and the route started at B = 4 there; see docs/decisions/fused-kernels.md.) Per call oneDNN
  first reorders the weights, which short calls on one thread do not repay: at T = 1-8 the
  route ran 0.64-0.93x the fused kernels' speed on one thread (B = 8-64, H = 192-512), and
  1.08-1.40x on two (H >= 256). The fused kernels stay ahead at H <= 128 (2 threads:
  1.04-3.4x); H = 192 was 0.87-1.04x at T = 100, not worth a switch then (revised for one
  thread below, from another Intel host's measurements). Training stays on the
  fused kernels, ahead of or within a few percent of oneDNN's there
  (``benchmarks/results/intel-207-amx/targets-lstm-onednn.txt``).

  On the AMD Zen 4 host (1 MB L2) the fused kernels split more than 2 rows per thread by rows
  (more than 3 for a weight past L2: ``csrc/unit_team.h``, where the units plan paid only for
  1-3 rows per thread). At 8 rows per thread on two threads they trailed oneDNN in every run
  (B = 16: 0.94-0.96 at H = 256, 0.89-0.94 at H = 384, 0.90-0.91 at H = 512, three runs). On
  one thread at B = 8 they trailed in all but two of ten runs over H = 256-512 (0.88-0.94; one
  read 1.01, one 1.15). From 2 to 6 rows per thread the two were within this host's noise
  (H = 512, B = 6: 0.92-0.95 in one run, 1.10-1.14 in the next), so the route starts at 8 rows
  per thread there (B >= 8 and T >= 64 on one thread, B >= 16 on two). CPUs of other vendors
  take that rule too, unmeasured.

  Short calls there stay on the fused kernels. Measured with
  ``benchmarks/bench_fused_ab.py --only onednn-route --threads 2`` at 3a0435f (results in
  ``benchmarks/results/zen4-avx512bf16/fused_ab-onednn-route-2threads.*``), oneDNN's time over
  the fused kernels' at B = 16 / 32 / 64:

  | H | T = 1 | T = 4 | T = 8 | T = 16 | T = 64 |
  |---|---|---|---|---|---|
  | 256 | 1.30 / 1.15 / 1.02 | 1.08 / 1.01 / 1.02 | 1.04 / 1.02 / 0.97 | 1.01 / 0.99 / 0.98 | 1.00 / 0.93 / 0.95 |
  | 384 | 0.68 / 1.03 / 1.16 | 0.96 / 0.93 / 1.03 | 1.03 / 0.95 / 0.98 | 1.00 / 0.94 / 0.93 | 0.94 / 0.95 / 0.94 |
  | 512 | 1.07 / 1.06 / 1.15 | 1.07 / 1.08 / 0.99 | 1.07 / 0.98 / 0.91 | 1.01 / 0.92 / 0.96 | 0.93 / 0.89 / 0.97 |

  At H = 256 each thread of the fused kernels packs its own copy of the weights
  (csrc/common.h, BlockWeight), while oneDNN reorders them on every call, which a call of one
  step does not repay. At H = 384-512 the fused kernels keep one shared copy, which both
  threads pack (csrc/gemm.h); before they did, the fused side of T = 1 calls took 1.3-1.8x
  longer. From T = 4 to 16 the two are within this host's noise (0.91-1.08), and from T = 64
  oneDNN leads (0.89-1.00). So with two threads the route starts at T = 16 there
  (:data:`INFERENCE_MIN_STEPS_OTHER`); the 0.68 is a single point, and the rule errs towards
  the fused kernels where the two are level. More than two threads were not measured. On the
  Intel host, before both threads packed the shared copy, the route ran short calls 1.08-1.40x
  faster (above); that rule stays as measured. Remeasured after it, on an Intel VM of the same
  model without AMX (two runs, ``benchmarks/results/intel-207-noamx/fused_ab-onednn-route-*``),
  oneDNN's time over the fused kernels' at T = 1 / 4 / 8 / 16 / 64, two threads: where the route
  runs, H = 384-512 with B = 32-64 gave 0.83-0.99 (one 1.07 at T = 1), oneDNN ahead as the rule
  has it; H = 256 gave 1.00-1.11 at B = 32 and 0.92-1.08 at B = 64, level within this host's
  noise. Where the fused kernels run (B = 8-16) they led by up to 1.68x, except for H = 512,
  B = 16 at T = 1 and 4 (0.89-0.99). So the rule stands.

  Narrower states on one thread, Intel (2026-12-07, family 6 model 106, Ice Lake class, 1.25
  MB L2 per core; the route forced on and off alternately in one process, medians of 11),
  oneDNN's time over the fused kernels' at B = 12 / 16 / 32 / 64:

  | H | T = 64 | T = 100 |
  |---|---|---|
  | 128 | | 1.05 (B = 16) / 0.99 (B = 32) / 0.91 (B = 64) |
  | 160 | 0.95 / 0.96 / 0.94 / 0.86 | 0.90 / 0.91 / 0.82 / 0.86 |
  | 192 | 0.94 / 0.93 / 0.90 / 0.89 | 0.88 / 0.93 / 0.87 / 0.86 (an earlier run, B = 16-64: 0.95 / 0.85 / 0.80) |
  | 224 | 0.87 / 0.95 / 0.94 / 0.85 | 0.88 / 0.97 / 0.95 / 0.94 |

  The model-207 host had read H = 192 at 0.87-1.04 and H = 128 at 0.92-0.97 with one thread.
  With two threads (this host, B = 16-64, T = 100) the fused kernels stayed ahead at H = 128
  (1.05-1.27) and level at H = 192 (0.93-1.06), so there the route keeps H = 256. With one
  thread on Intel it now starts at H = 160; H = 128 stays on the fused kernels, level or ahead
  but at B = 64. Other vendors were not measured there and keep H = 256. Rerun with
  ``benchmarks/bench_fused_ab.py --only onednn-route --threads 1 --hidden 128,160,192,224
  --batch 12,16,32,64 --steps 64,100``: 0.75-1.06 from H = 160 (median 0.92), 0.87-1.31 at
  H = 128 (``benchmarks/results/intel-106-noamx/fused_ab-onednn-route-narrow-1thread.*``).

  H = 128 from 32 rows, one thread, Intel (the same host, a later session). Six quiet runs of
  the same A/B on one thread, counting the two above, read H = 128 at 0.83-1.11 from B = 32
  (26 points, median 0.935; a seventh run, taken while other work shared the machine, read
  0.70-1.34) and at 0.95-1.31 with 12-16 rows, while the fused kernels were level or ahead at
  H = 112 (0.90-1.29, two runs). So with one thread on Intel the route also takes H = 128-159
  from 32 rows
  (``INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS``, ``INFERENCE_MANY_ROWS_ONE_THREAD_INTEL``).
  The repository's run, ``bench_fused_ab.py --only onednn-route --threads 1 --hidden
  112,128,144 --batch 16,32,64,128 --steps 64,100 --repeats 15``
  (``benchmarks/results/intel-106-noamx/fused_ab-onednn-route-h128-1thread.*``), oneDNN's time
  over the fused kernels' at B = 16 / 32 / 64 / 128:

  | H | T = 64 | T = 100 |
  |---|---|---|
  | 112 | 1.22 / 1.07 / 1.01 / 0.97 | 1.29 / 1.13 / 1.00 / 1.00 |
  | 128 | 1.17 / 0.99 / 0.92 / 0.93 | 1.03 / 0.95 / 1.07 / 0.91 |
  | 144 | 1.10 / 0.95 / 0.88 / 0.86 | 0.94 / 0.90 / 0.87 / 0.88 |

  The route makes a call's last bits depend on its size: oneDNN and the fused kernels sum in
  different orders (~2e-7 apart in float32), so B = 11 and B = 12 rows on one thread on Intel
  (7 and 8 elsewhere; 23 and 24, or 15 and 16, on two; at H = 128-159, 31 and 32 on one thread
  on Intel), or one and two threads in between, do not round alike. Where it runs, the output is torch.nn.LSTM's bit for bit.
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

import functools
from typing import NamedTuple

import torch
from torch.autograd import forward_ad

from ..cells import LSTMCell, cell_class

#: The narrowest hidden state whose float32 inference goes to oneDNN (see the module docstring).
INFERENCE_MIN_HIDDEN = 256
#: The same with one thread on Intel CPUs, where oneDNN led from H = 160 (measured on two hosts).
INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL = 160
#: ... and from H = 128 with this many rows or more, where oneDNN led at H = 128 too.
INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS = 128
INFERENCE_MANY_ROWS_ONE_THREAD_INTEL = 32

#: The fewest rows per thread for it (B >= this x torch.get_num_threads()) on Intel CPUs, where
#: the fused kernels were level or ahead up to 8 rows per thread (by units from H = 384).
INFERENCE_MIN_ROWS_PER_THREAD_INTEL = 12
#: The same on other CPUs, measured on AMD Zen 4, where they trailed from 8.
INFERENCE_MIN_ROWS_PER_THREAD_OTHER = 8

#: The fewest steps for it with one thread: oneDNN's per-call weight reorder needs a long call
#: to be repaid there (with two threads the route pays from T = 1 on Intel CPUs).
INFERENCE_MIN_STEPS_ONE_THREAD = 64

#: The fewest steps for it on other CPUs with two or more threads (measured with two): on AMD
#: Zen 4 the fused kernels led at one step and were within noise of oneDNN from 4 to 16 steps.
INFERENCE_MIN_STEPS_OTHER = 16


_intel_by_kernels: bool | None = None


def cpu_is_intel() -> bool:
    """Whether this CPU is Intel's, as the fused kernels read it (cpuid, the ``cpu_is_intel``
    op), so that this route and the kernels' own plans follow one vendor. Before the kernels
    are loaded, or where they cannot be, /proc/cpuinfo says (False without it)."""
    global _intel_by_kernels
    if _intel_by_kernels is None:
        try:
            _intel_by_kernels = bool(torch.ops.rnnkit.cpu_is_intel())
        except (AttributeError, RuntimeError):  # the fused library is not loaded
            return _cpuinfo_says_intel()
    return _intel_by_kernels


@functools.cache
def _cpuinfo_says_intel() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip() == "GenuineIntel"
    except OSError:
        pass
    return False


def inference_min_hidden(threads: int, rows: int) -> int:
    """The narrowest hidden state whose float32 LSTM inference of ``rows`` rows (B) goes to
    oneDNN on ``threads``."""
    if threads != 1 or not cpu_is_intel():
        return INFERENCE_MIN_HIDDEN
    if rows >= INFERENCE_MANY_ROWS_ONE_THREAD_INTEL:
        return INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS
    return INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL


def inference_min_rows_per_thread() -> int:
    """The fewest rows per thread for which float32 LSTM inference goes to oneDNN here."""
    return (INFERENCE_MIN_ROWS_PER_THREAD_INTEL if cpu_is_intel()
            else INFERENCE_MIN_ROWS_PER_THREAD_OTHER)


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
    if (cell_class(cell) is not LSTMCell or x.dtype != torch.float32
            or cell.weight_hh.dtype != torch.float32 or not x.is_cpu
            or torch.compiler.is_compiling()):
        # traced, the size tests below would become guards (one graph per side)
        return False
    threads = torch.get_num_threads()
    rows, steps = (x.size(0), x.size(1)) if batch_first else (x.size(1), x.size(0))
    if cell.hidden_size < inference_min_hidden(threads, rows):
        return False
    if rows < inference_min_rows_per_thread() * max(threads, 1):
        return False
    if threads == 1 and steps < INFERENCE_MIN_STEPS_ONE_THREAD:
        return False
    if steps < INFERENCE_MIN_STEPS_OTHER and not cpu_is_intel():
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
    weight_hh, bias_ih = cell.weight_hh, cell.bias_ih
    own = weight_hh.dtype
    dtype = dtype or x.dtype

    def cast(t: torch.Tensor) -> torch.Tensor:
        # Tensor.to costs ~1 us even when it returns its input: float32 inference passes seven
        # tensors in and two out, in a call of ~250 us (B = 16, T = 1).
        return t if t.dtype == dtype else t.to(dtype)

    time_axis = 1 if batch_first else 0
    x = cast(x)
    if reverse:
        x = x.flip(time_axis)  # no lengths here, so reversing the whole time axis is exact
    weights = [cast(cell.weight_ih), cast(weight_hh)]
    if bias_ih is not None:
        weights += [cast(bias_ih), cast(cell.bias_hh)]
    hx = (cast(state0.h).unsqueeze(0), cast(state0.c).unsqueeze(0))
    # train=True makes oneDNN keep the workspace its backward needs.
    output, h_n, c_n = torch.lstm(x, hx, weights, bias_ih is not None, 1, 0.0, training,
                                  False, batch_first)
    if reverse:
        output = output.flip(time_axis)
    h_n, c_n = h_n.squeeze(0), c_n.squeeze(0)
    if h_n.dtype != own:
        h_n, c_n = h_n.to(own), c_n.to(own)
    return output, cell.state_type(h_n, c_n)
