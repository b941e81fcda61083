"""Run a cell's recurrence with the fused C++ ops: the ``fused`` backend of :func:`rnnkit.scan`."""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad

from ...cells import GRUCell, LSTMCell, RNNCell, cell_class
from .build import load_error

_SUPPORTED_CELLS = (LSTMCell, GRUCell, RNNCell)
_SUPPORTED_DTYPES = (torch.float32, torch.float64)


# Marked constant for torch.compile: dynamo calls it instead of tracing into it (its lock is
# untraceable, so a first fused call under fullgraph=True failed), and the answer does not change
# once given.
@torch.compiler.assume_constant_result
def fused_unavailable() -> str | None:
    """None when the kernels are built and loaded here (building them on first call)."""
    return load_error()


def fused_unsupported(cell, gates_x: torch.Tensor) -> str | None:
    """Why the fused kernels cannot run this call, or None."""
    if cell_class(cell) not in _SUPPORTED_CELLS:
        return f"no fused kernel for {type(cell).__name__}"
    if not gates_x.is_cpu:  # not .device.type: building the device object costs ~0.5 us
        return f"fused kernels run on the CPU only; got a tensor on {gates_x.device}"
    if gates_x.dtype not in _SUPPORTED_DTYPES:
        return f"fused kernels support float32 and float64; got {gates_x.dtype}"
    if torch._C._functorch.maybe_current_level() is not None:
        # torch.func.grad, vmap, jacrev, ... refuse C++ autograd Functions, which is what the
        # fused ops' autograd is (csrc/autograd.cpp); the reference backend's loop runs there.
        return "fused kernels cannot run inside torch.func transforms (grad, vmap, ...)"
    if forward_ad._current_level >= 0:
        # Inside torch.autograd.forward_ad.dual_level: the ops' C++ autograd has no jvp.
        return "fused kernels have no forward-mode derivatives (torch.autograd.forward_ad)"
    return None


def fused_project(cell, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """``x @ W_ih^T + b_ih`` for all steps at once: (..., I) -> (..., G); without ``+ b_ih``
    when ``bias`` is False (only where :func:`folds_input_bias` said so).

    float32 goes through ``rnnkit::linear`` (the packed AVX-512 GEMM, rows split across
    threads; ``at::mm`` for small products); other dtypes through the cell's own projection.
    """
    if x.dtype != torch.float32 or x.dim() < 2:  # rnnkit::linear takes (..., I) with a row
        return cell.project_input(x) if bias else F.linear(x, cell.weight_ih)
    return torch.ops.rnnkit.linear(x, cell.weight_ih, cell.bias_ih if bias else None)


#: A projection with fewer gate values (T * B * G) keeps its bias: see folds_input_bias.
_MIN_GATE_VALUES_TO_FOLD_BIAS = 1 << 18


def folds_input_bias(cell, x: torch.Tensor) -> bool:
    """Whether a layer call projects x (..., I) without b_ih and lets the recurrence add
    ``b_ih + b_hh`` instead (``fused_project(..., bias=False)``, then
    ``fused_scan(..., input_bias_folded=True)``).

    An LSTM's and an Elman cell's pre-activations take both biases at the same place,

        gates_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,

    and the recurrence adds b_hh anyway as it reads each gates_x row. Moving b_ih there saves
    two passes over the (T, B, G) gates: the projection's own bias pass (MKL's addmm fills its
    output with the bias, then reads it back to add the product) and, in backward, the sum of
    the gate gradient over all T * B rows for b_ih's gradient, the sum the recurrence's backward
    already makes for b_hh's (autograd hands the one gradient of ``b_ih + b_hh`` to both). A
    GRU's b_hn is scaled by the reset gate, so its b_ih cannot move.

    Measured, layers at T = 100 on the Intel model-106 host (one and two threads, both ways
    in one process; ``benchmarks/bench_fused_ab.py --only fold``): where this rule folds, LSTM
    layers took 0.81-1.02 of the time (15 of 20 points 0.92-0.98), Elman layers 0.84-1.18
    of it (median 0.99; single points beyond this host's ~5% noise either way); the LM's
    two-layer training step (two threads) 0.97-0.98; from 3k to 205k gate values 0.97-1.13,
    where the passes run in cache and cost less than the extra add and its autograd node.
    So calls from 256k gate values (1 MB) fold, smaller ones keep the bias in the projection.
    Not while compiling, exporting or tracing, where the size test would become a guard on
    the shapes; float32 only (the dtype rnnkit::linear projects). The results differ from
    the unfolded sum's in the last bits only (docs/decisions/fused-kernels.md, "b_ih rides
    with b_hh")."""
    if x.dtype != torch.float32 or x.dim() < 2 or cell_class(cell) not in (LSTMCell, RNNCell):
        return False
    # the size from plain attributes: reading a parameter goes through Module.__getattr__, and
    # through a parametrization's whole computation where there is one (weight_norm: ~0.1 ms)
    gate_values = x.numel() // max(1, x.size(-1)) * cell.gate_count * cell.hidden_size
    if gate_values < _MIN_GATE_VALUES_TO_FOLD_BIAS:
        return False
    if torch.compiler.is_compiling() or torch._C._is_tracing():
        return False
    return cell.bias_ih is not None and cell.bias_hh is not None


def needs_grad(cell, *tensors) -> bool:
    """Whether autograd will need gradients through any of these tensors or ``cell``'s
    parameters. Checked lazily, cheapest first: under ``no_grad`` nothing is looked at, and in
    training the input usually requires grad, so the parameter walk (a few microseconds, which
    counts in a batch-1 call of ~100 us) is rarely reached.

    Under ``torch.jit.trace`` and ``torch.export`` always True: the traced graph must not
    depend on grad mode (the trace check reruns it under no_grad, and a module traced or
    exported under no_grad may be trained; torch.nn's LSTM exported so trains)."""
    if torch.compiler.is_exporting():
        return True
    if not torch.compiler.is_compiling() and torch._C._is_tracing():  # dynamo can't call it
        return True
    if not torch.is_grad_enabled():
        return False
    if any(t is not None and t.requires_grad for t in tensors):
        return True
    if any(p.requires_grad for p in cell.parameters()):
        return True
    # a weight set as a plain tensor (a hypernetwork's output, fast weights) is no parameter,
    # yet its gradient is wanted: the ops must save what backward needs
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in vars(cell).values())


def with_unit_stride_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` with stride 1 along its last dim, as the kernels read each row.

    ``contiguous()`` alone misses one case: a last dim of size 1 may carry any stride (a
    channels-first (1, T, B) signal permuted to (T, B, 1)) and still count as contiguous, so it
    comes back unchanged and the kernels refused it."""
    if t.stride(-1) == 1:
        return t
    return t.clone(memory_format=torch.contiguous_format) if t.is_contiguous() else t.contiguous()


_MIN_ROWS_PER_THREAD_IN_LOOP = 16
#: None: one core's L2, as the kernels read it (benchmarks set a number to lift the limit).
_MAX_WEIGHT_BYTES_IN_LOOP: float | None = None


@functools.cache
def _l2_cache_bytes() -> int:
    """One core's L2 in bytes, as the kernels' own plans read it (glibc's sysconf; 1 MiB where
    it is unknown). Python's os.sysconf has no name for it."""
    return torch.ops.rnnkit.l2_cache_bytes()


def projects_in_loop(cell, x: torch.Tensor) -> bool:
    """Whether :func:`fused_run_without_grad` runs this call of ``cell`` on time-major x
    (T, B, I): an LSTM with enough rows per thread and weights under L2 (its docstring has the
    measurements)."""
    if not isinstance(cell, LSTMCell) or torch.compiler.is_compiling():
        # Traced, the batch-size test below would be a guard on B: torch.export with a
        # dynamic batch refused every B on the other side of the limit, and torch.compile made
        # one graph per side. Project + scan serves every B.
        return False
    if x.size(1) < _MIN_ROWS_PER_THREAD_IN_LOOP * max(1, torch.get_num_threads()):
        return False
    weight_bytes = (cell.weight_ih.numel() + cell.weight_hh.numel()) * x.element_size()
    limit = _MAX_WEIGHT_BYTES_IN_LOOP
    return weight_bytes < (_l2_cache_bytes() if limit is None else limit)


def fused_run_without_grad(cell, x: torch.Tensor, state0: NamedTuple, lengths=None, reverse=False):
    """An LSTM over x (T, B, I) when no gradient is needed, its input projection inside the time
    loop (``rnnkit::lstm_inference``: no (T, B, 4H) gates_x is written and read back). Returns
    (output, state) as :func:`fused_scan`, or None (then project + scan) for other cells and
    where the separate projection is faster. In the loop each thread multiplies its rows by
    W_ih and W_hh at every step, so the two weights' bytes are read per step and thread; one
    GEMM over all T x B rows reads W_ih once. Measured (Intel host, 2 MB L2, T = 100, both ways
    in one process, interleaved), the loop's speedup:

    * 16+ rows per thread, W_ih and W_hh together under L2: 1.01-1.14 (one thread, H = 64-192,
      B = 16-64; two threads, H = 64-192, B = 32-64: 1.02-1.10);
    * fewer rows per thread: 0.58-1.02 (two threads, H = 256, B = 8: 0.58; H = 192, B = 16:
      0.86), as each step's product over W_ih then reuses each value for few rows;
    * weights of L2's size or more: 0.80-1.01 (H = 256, 2 MB; earlier, H = 512 with two
      threads: 0.83-0.86).
    """
    if not projects_in_loop(cell, x):
        return None
    x = with_unit_stride_rows(x)
    if lengths is not None:
        lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()
    output, h_n, c_n = torch.ops.rnnkit.lstm_inference(
        x, state0.h, state0.c, cell.weight_ih, cell.bias_ih, cell.weight_hh, cell.bias_hh,
        cell.weight_hr, lengths, reverse,
    )
    return output, cell.state_type(h_n, c_n)


def amx_bf16_usable() -> bool:
    """Whether the built kernels have the AMX bfloat16 product (csrc/gemm_amx.h) and the OS lets
    this process use the tiles."""
    return bf16_products_kernel() == "amx"


@torch.compiler.assume_constant_result  # as fused_unavailable: a lock and a string-valued op
def bf16_products_kernel() -> str:
    """Which kernel runs the fused ops' bfloat16 products (``bf16=True``) here: ``"amx"`` (tile
    products, csrc/gemm_amx.h), ``"avx512_bf16"`` (VDPBF16PS dot products on CPUs without AMX,
    such as AMD Zen 4; csrc/gemm_avx512bf16.h), or ``""`` when neither can run (then the layers
    keep float32 products)."""
    global _bf16_kernel
    if _bf16_kernel is None:
        _bf16_kernel = (str(torch.ops.rnnkit.bf16_products_kernel()) if load_error() is None
                        else "")
    return _bf16_kernel


_bf16_kernel: str | None = None


def fused_scan_bf16(cell, gates_x: torch.Tensor, state0: NamedTuple, lengths=None,
                    reverse=False):
    """:func:`fused_scan` with the recurrent products ``h W_hh^T`` (and an LSTM's projection
    ``m W_hr^T``; in backward ``dG W_hh`` and the weight gradients) in bfloat16 (AMX tiles, or
    AVX512-BF16 dot products), float32 everywhere else; None (decline) for float64, where
    neither kernel is usable, or where they do not pay (:func:`bf16_products_pay`). For
    layers under CPU bfloat16 autocast (:mod:`rnnkit.backends.lowered`). gates_x may be
    bfloat16 (the autocast projection's output), read as it is, or float32; the state and
    outputs are in the parameters' dtype, float32."""
    if (gates_x.dtype not in (torch.float32, torch.bfloat16)
            or cell.weight_hh.dtype != torch.float32 or not bf16_products_kernel()):
        return None
    if not bf16_products_pay(gates_x.size(1), cell.weight_hh.size(1),
                             recurrent_weight_values(cell)):
        return None
    return fused_scan(cell, gates_x, state0, lengths, reverse, bf16=True)


# Where the tile products pay, from `benchmarks/bench_fused_ab.py --only bf16` on the 2-core
# Intel host (training and inference, GRU, Elman and LSTM with a projection, T = 100, 1 and 2
# threads; results/fused_ab-bf16-*.json). A tile holds 16 rows, so a thread with few rows
# multiplies mostly zero padding, and every step converts and copies its rows:
# * 8 or more rows per thread and a weight at least 128 deep: 1.13-2.3x faster (1.00-1.05x at
#   the edge, Elman and a projection 64 wide);
# * a weight of 400k values or more (GRU, or LSTM with its projection, at H = 512) even with 2
#   rows per thread: 1.5-1.9x, from half the bytes of weight to stream per step. With one row
#   per thread too, when there is one thread (1.56-2.13x); with two threads one row loses
#   (0.6-0.7x), as the float32 GEMM then splits its columns over both threads.
# Below that the tiles lost up to ~25% (0.43x for Elman inference at B = 1, H = 512, 2 threads),
# or won by at most 1.3x (one thread, 4 rows, H = 256; a weight 64 deep at 64 rows): the rule
# errs towards float32, which is also the more accurate.
# The AVX512-BF16 dot products (no AMX; the 2-core AMD Zen 4 host of 2026-12-04, same benchmark,
# results/zen4-avx512bf16/fused_ab-bf16-*) have no 16-row tiles to fill: with 8 or more rows per
# thread they won at every width from 32 to 512 (training 1.12-1.75x, inference 1.10-1.60x but
# for one 0.94), and with fewer they lost or tied (2 threads: 0.47-1.26x, inference mostly below
# 1; 1 thread: 0.67-1.22x), as the float32 GEMM splits a few rows' product over both threads'
# columns and they do not. So there the rule is the row count alone.
_MIN_ROWS_BF16 = 8
_MIN_WIDTH_BF16 = 128
_LARGE_WEIGHT_BF16 = 400_000


def recurrent_weight_values(cell) -> int:
    """How many values the per-step products read: W_hh, and an LSTM's projection W_hr."""
    weight_hr = getattr(cell, "weight_hr", None)
    return cell.weight_hh.numel() + (weight_hr.numel() if weight_hr is not None else 0)


# Marked constant for torch.compile, which cannot call torch.get_num_threads (it returns no
# tensor). A compiled graph keeps the route the thread count gave when it was traced: only speed
# depends on it, and both routes round as bfloat16 autocast allows.
@torch.compiler.assume_constant_result
def torch_threads() -> int:
    """torch.get_num_threads(), callable under torch.compile."""
    return torch.get_num_threads()


def bf16_products_pay(batch: int, width: int, weight_values: int) -> bool:
    """Whether ``batch`` rows multiplied by recurrent weights of ``weight_values`` values in all,
    ``width`` deep (H, or P with a projection), run faster as bfloat16 products (AMX tiles or
    AVX512-BF16 dot products, whichever :func:`bf16_products_kernel` says) than as the float32
    GEMM. Each thread takes its own block of rows through every step."""
    threads = max(1, min(torch_threads(), batch))
    rows_per_thread = -(-batch // threads)
    if bf16_products_kernel() == "avx512_bf16":
        return rows_per_thread >= _MIN_ROWS_BF16
    if rows_per_thread >= _MIN_ROWS_BF16 and width >= _MIN_WIDTH_BF16:
        return True
    return weight_values >= _LARGE_WEIGHT_BF16 and (rows_per_thread >= 2 or
                                                     torch_threads() == 1)


# Under autocast, a plain LSTM layer (no projection, no lengths) may run oneDNN's bfloat16 LSTM
# (what torch.nn.LSTM runs) or the fused kernels (bfloat16 projection, tile products where
# bf16_products_pay, float32 state). `benchmarks/bench_fused_ab.py --only lstm-route` at 1 and 2
# threads (results/fused_ab-lstm-route-*.txt), training:
# * the fused kernels won by 1.1-3.8x with at most 8 rows per thread (B = 1: 1.4-3.8x), and with
#   more rows where the tile products pay on a weight 256 or more deep (1.1-2.0x; the default
#   character model's B = 32, T = 64, H = 512: 1.39-1.44x), or 128 deep with 2 threads
#   (1.39-1.84x);
# * they lost with many rows on a narrow weight (H = 64, B >= 16, 1 thread: 0.55-0.69x; B = 64,
#   2 threads: 0.87x), and were level at H = 128, B >= 16 on one thread (0.85-1.12x).
# Inference stays on oneDNN: there the fused kernels won only in scattered cases (B <= 16 at
# H = 64 with 2 threads, 1.3-1.9x; B = 4-16 at H = 512 with 1 thread) and lost at most other
# sizes (0.44-0.97x).
# With AVX512-BF16 dot products instead of tiles (the Zen 4 host of 2026-12-04,
# results/zen4-avx512bf16/fused_ab-lstm-route-*), training on the fused kernels won at nearly
# every size (2 threads 1.05-2.12x; 1 thread 0.95-2.18x, the few points below 1 within 5%),
# B = 1 by 1.4-2.2x; inference lost to oneDNN at most sizes (0.58-1.34x, median 0.87-0.93), so
# it stays there as with AMX.
_MAX_ROWS_FUSED_LSTM = 8


def fused_lstm_pays_bf16(batch: int, hidden: int, training: bool) -> bool:
    """Whether a call of a plain LSTM layer under CPU bfloat16 autocast (a training call, one
    that saves for backward, when ``training``) runs faster on the fused kernels than on
    oneDNN's bfloat16 LSTM (the comment above has the numbers)."""
    if not training:
        return False
    kernel = bf16_products_kernel()
    if kernel == "avx512_bf16":
        return True
    if kernel != "amx":
        return False
    threads = torch_threads()
    rows_per_thread = -(-batch // max(1, min(threads, batch)))
    if rows_per_thread <= _MAX_ROWS_FUSED_LSTM:
        return True
    return bf16_products_pay(batch, hidden, 4 * hidden * hidden) and (hidden >= 256 or threads >= 2)


def fused_scan(cell, gates_x: torch.Tensor, state0: NamedTuple, lengths=None, reverse=False,
               bf16: bool = False, input_bias_folded: bool = False):
    """Same contract as :func:`rnnkit.backends.reference.reference_scan`; ``bf16`` (float32
    only) multiplies by the recurrent weights in bfloat16 on AMX (:func:`fused_scan_bf16`).
    ``input_bias_folded``: gates_x lacks b_ih, which the recurrence adds with b_hh (LSTM and
    Elman cells, where :func:`folds_input_bias` says so)."""
    gates_x = with_unit_stride_rows(gates_x)
    if lengths is not None:
        lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()
    ops = torch.ops.rnnkit
    bias_hh = cell.bias_hh
    if input_bias_folded:
        if isinstance(cell, GRUCell):
            raise ValueError("a GRU's b_ih cannot be added in the recurrence (b_hn is scaled "
                             "by the reset gate); project with the bias")
        bias_hh = cell.bias_ih + cell.bias_hh
    if isinstance(cell, LSTMCell):
        training = needs_grad(cell, gates_x, *state0)
        output, h_n, c_n, _, _ = ops.lstm_forward(
            gates_x, state0.h, state0.c, cell.weight_hh, bias_hh, cell.weight_hr, lengths,
            reverse, training, bf16,
        )
        return output, cell.state_type(h_n, c_n)
    if isinstance(cell, GRUCell):
        training = needs_grad(cell, gates_x, *state0)
        output, h_n, _ = ops.gru_forward(
            gates_x, state0.h, cell.weight_hh, cell.bias_hh, lengths, reverse, training, bf16
        )
        return output, cell.state_type(h_n)
    output, h_n = ops.elman_forward(
        gates_x, state0.h, cell.weight_hh, bias_hh, lengths, reverse,
        cell.nonlinearity == "relu", bf16,
    )
    return output, cell.state_type(h_n)
