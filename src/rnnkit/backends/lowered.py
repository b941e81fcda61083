"""bfloat16 under CPU autocast: oneDNN's LSTM primitive for LSTM layers (the bfloat16 route),
bfloat16 products around a float32 state for the others, on CPUs with AMX-BF16 or AVX512-BF16.

Outside autocast a layer's recurrence runs in its parameters' dtype (float32 on the fused
kernels; bfloat16 or float16 parameters are widened to float32, :mod:`.widened`): rounding the
state to bfloat16 at each of T steps is a loss of accuracy the user did not ask for. Under
``torch.autocast("cpu", dtype=torch.bfloat16)`` they did ask for it, and on a CPU with AMX the
price is small next to the gain: oneDNN runs the LSTM's products on the AMX tiles (torch.mm in
bfloat16 reaches ~2.2 TFLOP/s on the 2-core Intel host against ~0.36 in float32), and a whole
training step of the default character model (H = 512, B x T = 32 x 64) ran 1.9x faster with the
same loss per step (``docs/decisions/lm-defaults.md``). This is the primitive torch.nn.LSTM uses
under the same autocast; the route calls it through ``torch.lstm`` for one layer and one
direction, with the weights cast per call (so gradients reach the float32 parameters):

    (T, B, I) x, (B, H) h_0, c_0  --bf16-->  oneDNN LSTM  -->  (T, B, H) bf16 output, f32 h_T, c_T

The output stays bfloat16, as autocast's own ops return; the final state is cast back to the
parameters' dtype so a carried state keeps the type it would have without autocast. (The other
routes below return the parameters' dtype, their state's: so the dtype of an LSTM layer's
output under autocast says which route ran, and may differ between training and inference.)

What it runs: LSTM cells without a projection, no ``lengths`` (oneDNN has no per-sequence
lengths), either direction, with or without gradients, on a CPU that multiplies bfloat16
natively (:func:`cpu_bf16_instructions`: AMX-BF16, or AVX512-BF16 as on AMD Zen 4, where
torch.mm in bfloat16 ran at 2.4x float32; without either oneDNN emulates bfloat16 and is slower
than float32), when the layer's backend is ``"auto"`` and :func:`set_bf16_recurrence` has not
turned it off. Training calls take the fused kernels instead where those are faster
(``fused.backend.fused_lstm_pays_bf16``: on AVX512-BF16 CPUs, all of them).

The other layers on such a CPU (GRU, Elman, an LSTM with a projection or ``lengths``) run the
products in bfloat16 and keep the state float32. The input projection, a feed-forward product
over all T x B rows that autocast would lower for any ``nn.Linear``, runs as a bfloat16 GEMM
(:func:`run_projection_bf16`), and on the fused backend the recurrent products of every step
run as bfloat16 products summed in float32 (AMX tiles, ``csrc/gemm_amx.h``, or AVX512-BF16 dot
products, ``csrc/gemm_avx512bf16.h``), where they pay
(``fused.backend.bf16_products_pay``: enough rows per thread and a wide enough weight):

    gates_x = bf16(x) bf16(W_ih)^T + bf16(b_ih)        (T, B, G), oneDNN's bfloat16 GEMM
    h_t = cell(float32(gates_x_t), h_{t-1}), with       float32 state and gate math
          h_{t-1} W_hh^T = bf16(h_{t-1}) bf16(W_hh)^T   summed in float32, per step (tiles or dots)

In backward the products by W_hh are rounded the same way and dW_hh is one bfloat16 product
over all T x B rows. torch.nn.GRU, RNN and LSTM with a projection under the same autocast also
run every product in bfloat16, but round each product's result to bfloat16 as well and sum the
weight gradient over steps in bfloat16. Measurements: ``benchmarks/bench_autocast.py``
(``results/autocast.txt``) and, for the tile products against float32 ones,
``benchmarks/bench_fused_ab.py --only bf16``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import NamedTuple

import torch

from ..cells import GRUCell, LSTMCell, RNNCell, cell_class
from .onednn import onednn_lstm

log = logging.getLogger("rnnkit.backends")

_context = threading.local()
_enabled = True
_declines_logged: set[tuple[str, bool]] = set()


@contextlib.contextmanager
def lowered_precision(dtype: torch.dtype):
    """Within this block, layers may run their recurrence in ``dtype`` (entered by the layers'
    autocast wrapper, :mod:`rnnkit.layers.autocast`, when CPU autocast is on)."""
    previous = getattr(_context, "dtype", None)
    _context.dtype = dtype
    try:
        yield
    finally:
        _context.dtype = previous


def lowered_dtype() -> torch.dtype | None:
    """The dtype of the enclosing :func:`lowered_precision` block, or None."""
    return getattr(_context, "dtype", None)


def set_bf16_recurrence(enabled: bool) -> None:
    """Allow (default) or forbid the bfloat16 route; forbidden, LSTM recurrences stay float32
    under autocast too. The setting holds for the whole process."""
    global _enabled
    from ..errors import check_flag

    check_flag("enabled", enabled)  # "no" from a config string would turn the route on
    _enabled = enabled


def bf16_recurrence_enabled() -> bool:
    return _enabled


_bf16_instructions: str | None = None  # cpu_bf16_instructions, once read


# Marked constant for torch.compile: dynamo cannot trace the file read (nor a function behind
# functools.lru_cache, hence the cache by hand), and a CPU's instructions do not change while
# a process runs.
@torch.compiler.assume_constant_result
def cpu_bf16_instructions() -> str:
    """How this CPU multiplies bfloat16 natively (Linux: /proc/cpuinfo): ``"amx_bf16"`` (AMX
    tiles, Intel Sapphire Rapids and later), ``"avx512_bf16"`` (VDPBF16PS dot products, AMD Zen 4
    and later, Intel Cooper Lake), or ``""`` (oneDNN then emulates bfloat16, slower than
    float32). oneDNN must be in this torch build for the bfloat16 GEMMs."""
    global _bf16_instructions
    if _bf16_instructions is None:
        _bf16_instructions = _read_bf16_instructions()
    return _bf16_instructions


def _read_bf16_instructions() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""  # no way to tell; the float32 recurrence is the safe choice
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    if not torch.backends.mkldnn.is_available():
        return ""
    return next((name for name in ("amx_bf16", "avx512_bf16") if name in flags), "")


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively on AMX tiles (Linux: /proc/cpuinfo)."""
    return cpu_bf16_instructions() == "amx_bf16"


def bf16_unavailable(cell, x: torch.Tensor, backend: str) -> str | None:
    """Why no part of this call may run in bfloat16 (the whole layer stays float32), or None."""
    if backend != "auto":
        return f"backend={backend!r} was asked for by name"
    if cell_class(cell) not in (LSTMCell, GRUCell, RNNCell):
        # the bfloat16 projection is computed here, not by the cell's project_input, which a
        # subclass may change (not isinstance, for that reason)
        return f"{type(cell).__name__} is not one of rnnkit's own cells"
    if not _enabled:
        return "turned off with set_bf16_recurrence(False)"
    if x.device.type != "cpu":
        return f"it runs on the CPU only (got {x.device})"
    if cell.weight_ih.dtype != torch.float32:
        return f"the parameters are {cell.weight_ih.dtype}, not float32"
    if not cpu_bf16_instructions():
        return ("this CPU has neither AMX-BF16 nor AVX512-BF16, where oneDNN's bfloat16 is "
                "slower than float32")
    return None


def run_projection_bf16(cell, x: torch.Tensor) -> torch.Tensor:
    """The input projection ``x W_ih^T + b_ih`` of every step in bfloat16, returned in
    bfloat16: (..., I) -> (..., G). The fused kernels' bfloat16 products read it as it is; a
    recurrence in float32 casts it first. The casts are differentiable, so the gradients of W_ih
    and b_ih arrive in float32."""
    low = torch.bfloat16
    bias = cell.bias_ih.to(low) if cell.bias_ih is not None else None
    return torch.nn.functional.linear(x.to(low), cell.weight_ih.to(low), bias)


def run_bf16(cell: LSTMCell, x: torch.Tensor, state0: NamedTuple, *, reverse: bool,
             batch_first: bool, training: bool) -> tuple[torch.Tensor, NamedTuple]:
    """One direction of an LSTM layer in bfloat16 (x in the layer's layout); see the module."""
    return onednn_lstm(cell, x, state0, reverse=reverse, batch_first=batch_first,
                       training=training, dtype=torch.bfloat16)


def log_decline_once(reason: str, *, projection_bf16: bool = False) -> None:
    """Log once per reason why a call did not take the whole bfloat16 route, and what it runs.
    Not while torch.compile traces the call: dynamo refuses logger calls (under fullgraph=True
    the whole compile failed); an eager call with the same reason logs it, and a program that
    only runs compiled does without the notice."""
    if (reason, projection_bf16) in _declines_logged or torch.compiler.is_compiling():
        return
    _declines_logged.add((reason, projection_bf16))
    if projection_bf16:
        log.info("rnnkit: bfloat16 LSTM route skipped (%s): the input projection runs in "
                 "bfloat16, and on the fused kernels the recurrent products too where bfloat16 "
                 "products pay; the state stays float32", reason)
    else:
        log.info("rnnkit: bfloat16 recurrence skipped (the parameters' dtype instead): %s",
                 reason)
