"""One entry point to run a cell over time, and the one place that chooses how.

``select_backend`` (device, dtype, availability) and ``run_layer`` (grad mode) are the only code
in rnnkit that branches on how a call runs. Layers call :func:`run_layer`: the state-independent
input projection for all steps (:func:`project_input`, one GEMM), then the recurrence
(:func:`scan`), or both at once where a backend can without gradients; they never look at
``x.is_cuda`` themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from .fused import (
    fused_project, fused_run_without_grad, fused_scan, fused_scan_bf16, fused_unavailable,
    fused_unsupported,
)
from .fused.backend import folds_input_bias, fused_lstm_pays_bf16, needs_grad
from .lowered import (bf16_unavailable, log_decline_once, lowered_dtype, run_bf16,
                      run_projection_bf16)
from .onednn import onednn_inference_pays, onednn_lstm, onednn_lstm_unsupported
from .reference import reference_scan
from .widened import run_widened, widening

log = logging.getLogger("rnnkit.backends")


@dataclass(frozen=True)
class Backend:
    """A way to run a cell over time: its input projection and its recurrence.

    ``unavailable()`` returns None when the backend can run on this machine at all (built,
    importable), or the reason why not. ``unsupported(cell, gates_x)`` does the same for one
    call (cell type, device, dtype). ``run`` has the signature of :func:`reference_scan`;
    ``project(cell, x)`` computes the input projection ``x @ W_ih^T + b_ih`` for all steps.
    ``run_without_grad(cell, x, state0, lengths, reverse)``, optional, runs projection and
    recurrence together from time-major x when no gradient is needed, or returns None to
    decline (then project + run). ``run_bf16_products``, optional, is ``run`` with the recurrent
    products in bfloat16 (float32 in and out), for layers under CPU bfloat16 autocast, or
    returns None to decline (then ``run``). ``folds_input_bias(cell, x)``, optional, says
    whether a layer projects x without b_ih and has the recurrence add it with b_hh; a backend
    that has it takes ``project(cell, x, bias=False)`` and ``run(..., input_bias_folded=True)``.
    """

    name: str
    run: Callable
    project: Callable
    unavailable: Callable[[], str | None]
    unsupported: Callable[[object, torch.Tensor], str | None]
    description: str
    run_without_grad: Callable | None = None
    run_bf16_products: Callable | None = None
    folds_input_bias: Callable[[object, torch.Tensor], bool] | None = None


def _nothing_missing(*args) -> str | None:
    return None


#: Backends in the order "auto" prefers them. Faster backends register before "reference".
BACKENDS: dict[str, Backend] = {
    "fused": Backend(
        "fused", fused_scan, fused_project, fused_unavailable, fused_unsupported,
        "C++ kernels for the whole sequence, forward and backward (CPU, float32/float64)",
        run_without_grad=fused_run_without_grad, run_bf16_products=fused_scan_bf16,
        folds_input_bias=folds_input_bias,
    ),
    "reference": Backend(
        "reference", reference_scan, lambda cell, x: cell.project_input(x), _nothing_missing,
        _nothing_missing,
        "Python loop over the step function; every device and dtype; the oracle",
    ),
}

_fallbacks_logged: set[tuple[str, str]] = set()


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def select_backend(cell, gates_x: torch.Tensor, requested: str = "auto") -> Backend:
    """Pick the backend for one call.

    ``requested="auto"`` takes the first backend in :data:`BACKENDS` that supports the call and
    logs (once per reason) why a preferred one was skipped. A named backend that cannot run the
    call raises ``RuntimeError`` with the reason.
    """
    if requested == "auto":
        for backend in BACKENDS.values():
            reason = backend.unavailable() or backend.unsupported(cell, gates_x)
            if reason is None:
                return backend
            # not while torch.compile traces: dynamo refuses logger calls (see lowered.py)
            compiling = torch.compiler.is_compiling()
            if (backend.name, reason) not in _fallbacks_logged and not compiling:
                _fallbacks_logged.add((backend.name, reason))
                log.info("rnnkit: backend %r skipped: %s", backend.name, reason)
        raise RuntimeError("no rnnkit backend supports this call")  # reference supports all
    check_backend_name(requested)
    backend = BACKENDS[requested]
    reason = backend.unavailable() or backend.unsupported(cell, gates_x)
    if reason is not None:
        raise RuntimeError(f"backend={requested!r} cannot run this call: {reason}; use backend='auto'")
    return backend


def check_backend_name(name: str) -> None:
    """Raise a one-line ValueError for an unknown backend name (used by layer constructors)."""
    if name != "auto" and name not in BACKENDS:
        raise ValueError(
            f"backend must be 'auto' or one of {backend_names()}; got {name!r}"
        )


def scan(
    cell,
    gates_x: torch.Tensor,
    state0: NamedTuple,
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, NamedTuple]:
    """Run ``cell`` over time on precomputed input projections.

    gates_x: (T, B, G) = ``cell.project_input(x)`` time-major, T >= 1. state0: the cell's
    state with fields (B, *) in gates_x's dtype (a plain tuple of them is taken too), or None
    for zeros. lengths: optional valid lengths, (B,) ints in 1..T or a (T, B) boolean mask (see
    :func:`rnnkit.layers.normalize_lengths`). reverse: run from the last valid step to the
    first.
    Returns outputs (T, B, H_out) (zero past each length) and the final state (each sequence's
    own last state).
    """
    # Imported here: the cells' and layers' packages import this module.
    from ..cells.base import check_cell_state

    if gates_x.dim() != 3:
        raise ValueError(f"gates_x must be 3-D (T, B, G); got shape {tuple(gates_x.shape)}")
    steps, batch, width = gates_x.shape
    if steps == 0:
        raise ValueError("gates_x must have at least one time step; got shape "
                         f"{tuple(gates_x.shape)}")
    gates = cell.gate_count * cell.hidden_size
    if width != gates:
        raise ValueError(f"gates_x must have G = {cell.gate_count} x {cell.hidden_size} = {gates} "
                         f"features for this {type(cell).__name__} (cell.project_input(x)); "
                         f"got {width}")
    if state0 is None:
        state0 = cell.zero_state_like(gates_x, batch)
    else:
        state0 = check_cell_state(cell, state0, batch, gates_x, "state0")
    if lengths is not None:
        # Imported here: rnnkit.layers imports this module. Checked even though the layers check
        # too, since scan is public and a length past T would make a kernel read past its buffers.
        from ..layers.masking import normalize_lengths

        lengths = normalize_lengths(lengths, batch_size=gates_x.size(1), steps=gates_x.size(0),
                                    batch_first=False, device=gates_x.device)
    chosen = select_backend(cell, gates_x, backend)
    return chosen.run(cell, gates_x, state0, lengths, reverse)


def zero_padding(x: torch.Tensor, lengths: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """x with the steps past each sequence's length set to 0.

    Those steps leave the state frozen and the output 0, but their input still goes through the
    input projection, whose weight gradient sums dG^T x over every step: a NaN or Inf in the
    padding (0 * NaN = NaN there, and through the activations' derivatives in the reference
    backend) would poison every gradient, where torch.nn's PackedSequence never reads it.

    The result keeps x's memory order: a batch-first x whose memory is time-major (a layer
    below's output) stays time-major, which batch_first_projects_time_major reads (masked_fill
    alone follows the (B, T) mask and would return it batch-major).
    """
    steps = x.size(1 if batch_first else 0)
    valid = torch.arange(steps, device=x.device).unsqueeze(1) < lengths.to(x.device).unsqueeze(0)
    if batch_first and (time_major := x.transpose(0, 1)).is_contiguous():
        return time_major.masked_fill(~valid.unsqueeze(-1), 0).transpose(0, 1)
    return x.masked_fill(~(valid.t() if batch_first else valid).unsqueeze(-1), 0)


def run_layer(
    cell,
    x: torch.Tensor,
    state0: NamedTuple,
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    batch_first: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, NamedTuple]:
    """One direction of a layer: the input projection and the recurrence.

    x: (B, T, I) if ``batch_first`` else (T, B, I); state0 the cell's NamedTuple and lengths a
    (B,) int64 tensor in 1..T, both already checked: this is the layers' entry, after their own
    checks (a Recurrent layer, or :func:`scan`, checks what a user passes).
    Returns the output in x's layout, (B, T, H_out) or (T, B, H_out), and the final state.
    Normally ``project`` (one GEMM over all steps) then ``run``; when no gradient is needed a
    backend may do both at once (``Backend.run_without_grad``); on ``"auto"`` float32 LSTM
    inference with enough rows and units runs oneDNN's LSTM instead (:mod:`.onednn`). Under
    CPU bfloat16 autocast an LSTM layer may take the bfloat16 route instead, and other layers
    their input projection in bfloat16 (:mod:`rnnkit.backends.lowered`). A layer with
    bfloat16 or float16 parameters on the CPU may run in float32, or an LSTM on oneDNN's
    bfloat16 LSTM (:mod:`rnnkit.backends.widened`).
    """
    if cell._forward_pre_hooks:
        run_forward_pre_hooks(cell, x, state0)
    route = widening(cell, x, backend, batch_first, lengths)
    if route is not None:
        # bfloat16 or float16 parameters on the CPU: see widened.py
        return run_widened(run_layer, route, cell, x, state0, lengths=lengths, reverse=reverse,
                           batch_first=batch_first, backend=backend)
    if lengths is not None:
        x = zero_padding(x, lengths, batch_first)
    gates_x = None
    projection_bf16 = False
    if lowered_dtype() is torch.bfloat16:
        # Under CPU bfloat16 autocast (see rnnkit.backends.lowered).
        if state0[0].dtype != cell.weight_hh.dtype:
            # the zero state a layer made like a lower layer's bfloat16 output (oneDNN's LSTM
            # hands one on); a state the user gives is in the parameters' dtype already
            state0 = type(state0)(*(s.to(cell.weight_hh.dtype) for s in state0))
        unavailable = bf16_unavailable(cell, x, backend)
        reason = unavailable or onednn_lstm_unsupported(cell, lengths)
        if reason is None:
            # oneDNN's LSTM, unless the fused kernels run this call faster (in training)
            training = needs_grad(cell, x, *state0)
            batch = x.size(0 if batch_first else 1)
            if not fused_lstm_pays_bf16(batch, cell.hidden_size, training):
                return run_bf16(cell, x, state0, reverse=reverse, batch_first=batch_first,
                                training=training)
            reason = "training runs faster on the fused kernels at this size"
        projection_bf16 = unavailable is None
        log_decline_once(reason, projection_bf16=projection_bf16)
        if projection_bf16:
            # The input projection in bfloat16; the state stays in the parameters' dtype (the
            # recurrent products may be bfloat16 too, below).
            gates_x = run_projection_bf16(cell, x)
        else:
            # A layer below may have handed on a bfloat16 output; this one runs in its own
            # dtype.
            x = x.to(cell.weight_hh.dtype)
    # The recurrence after a bfloat16 projection runs in the parameters' dtype: choose by that.
    chosen = select_backend(cell, cell.weight_hh if projection_bf16 else x, backend)
    x_time_major = x.transpose(0, 1) if batch_first else x
    result = None
    training = None  # needs_grad(cell, x, *state0), asked at most once
    if gates_x is None and chosen.run_without_grad is not None:
        training = needs_grad(cell, x, *state0)
        if not training:
            if backend == "auto" and onednn_inference_pays(cell, x, lengths, batch_first):
                # float32 LSTM inference that oneDNN's LSTM runs faster (see onednn.py)
                return onednn_lstm(cell, x, state0, reverse=reverse, batch_first=batch_first,
                                   training=False)
            result = chosen.run_without_grad(cell, x_time_major, state0, lengths, reverse)
    if result is None:
        # b_ih left to the recurrence, which adds it with b_hh (LSTM and Elman, large calls)
        fold_bias = (gates_x is None and chosen.folds_input_bias is not None
                     and chosen.folds_input_bias(cell, x))
        projection_options = {"bias": False} if fold_bias else {}
        if (gates_x is None and batch_first
                and batch_first_projects_time_major(cell, x_time_major, state0, training)):
            # .contiguous() copies only a batch-major x
            gates_x = chosen.project(cell, x_time_major.contiguous(), **projection_options)
        else:
            if gates_x is None:
                gates_x = chosen.project(cell, x, **projection_options)
            if batch_first:
                gates_x = gates_x.transpose(0, 1)
        # A bfloat16 projection means autocast may lower the recurrent products too; they take
        # the bfloat16 gates_x as it is, a float32 recurrence a float32 copy.
        if projection_bf16 and chosen.run_bf16_products is not None:
            result = chosen.run_bf16_products(cell, gates_x, state0, lengths, reverse)
        if result is None and projection_bf16:
            gates_x = gates_x.to(cell.weight_hh.dtype)
        # chosen.run rather than scan(): the backend is chosen and the arguments were checked
        # by the layer, and repeating both costs a few microseconds per call at batch 1.
        if result is None:
            scan_options = {"input_bias_folded": True} if fold_bias else {}
            result = chosen.run(cell, gates_x, state0, lengths, reverse, **scan_options)
    output, final = result
    return (output.transpose(0, 1) if batch_first else output), final


def batch_first_projects_time_major(cell, x_time_major: torch.Tensor, state0: NamedTuple,
                                    training: bool | None = None) -> bool:
    """Whether a batch-first layer projects its input in time-major order (``x_time_major``,
    the (B, T, I) input transposed to (T, B, I)), so that gates_x is a contiguous (T, B, G)
    and its gradient comes back time-major, evenly spaced rows as the recurrence writes it.

    Yes where x's memory is time-major already: the output of a one-directional layer below,
    which the layers hand on as a transposed view (without copying it). And in training where
    a time-major copy of x is no wider than the gates (I <= G); ``training`` is
    :func:`needs_grad`'s answer when the caller has it.

    Projected in x's own (B, T) order instead, gates_x reached the recurrence transposed, and
    its gradient reached the projection transposed; the projection's weight gradient needs
    evenly spaced rows, so that gradient, G wide, was copied whole in backward. A time-major x
    projected that way was also flattened to rows with a copy, in forward and again in
    backward. The cost and the measurements are in docs/decisions/fused-kernels.md ("Batch-first
    layers project time-major"). Without gradients a batch-major x keeps its order: nothing
    is copied in backward then, and the recurrence reads the transposed gates_x in place.

    Either answer gives the same results up to rounding: it only chooses the rows' order."""
    if x_time_major.is_contiguous():
        return True
    if x_time_major.size(-1) > cell.gate_count * cell.hidden_size:
        return False
    return needs_grad(cell, x_time_major, *state0) if training is None else training


def run_forward_pre_hooks(cell, x: torch.Tensor, state0: NamedTuple) -> None:
    """Run the cell's forward pre-hooks once for the sequence, with ``(x, state0)`` as the args.

    A layer runs its cell over the whole sequence without calling the cell's ``forward``, so
    torch would never run them; but torch.nn.utils.prune and the older weight_norm recompute the
    cell's weight in one (before each forward, as they do on a torch.nn.LSTM), and without it
    the layer ran on the weight of the last recomputation: stale after an optimizer step. A hook
    that returns new arguments cannot be honoured (the layer does not run the cell's forward) and
    is refused. Forward (post) hooks on a cell do not run inside a layer; hooks on the layer do.
    """
    for key, hook in list(cell._forward_pre_hooks.items()):
        if key in cell._forward_pre_hooks_with_kwargs:
            result = hook(cell, (x, state0), {})
        else:
            result = hook(cell, (x, state0))
        if result is not None:
            raise ValueError(
                f"a forward pre-hook on the {type(cell).__name__} returned new arguments, which "
                f"a layer cannot pass on (it runs the cell over the whole sequence, not through "
                f"its forward); register the hook on the layer instead")


def project_input(cell, x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """The input projection ``x @ W_ih^T + b_ih`` for every step, (..., I) -> (..., G), computed
    the way the chosen backend does it best (one large GEMM; the state does not enter)."""
    return select_backend(cell, x, backend).project(cell, x)


def backend_report() -> list[tuple[str, bool, str]]:
    """(name, usable here, description or reason) for every known backend, for `rnnkit info`."""
    rows = []
    for backend in BACKENDS.values():
        reason = backend.unavailable()
        rows.append((backend.name, reason is None, reason or backend.description))
    return rows
