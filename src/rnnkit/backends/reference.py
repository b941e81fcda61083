"""The reference backend: a readable Python loop over the cell's step function.

It runs on every device and dtype, gets gradients from autograd, and is the oracle every other
backend is tested against. Keep it plain: it is never removed or made clever.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def warn_trace_fixes_the_length(steps: int) -> None:
    """torch.jit.trace unrolls this loop: the trace replays exactly ``steps`` steps, and a
    longer sequence given to it later is cut short without an error (torch.nn's single op has
    no such limit). Say so while tracing; the tracer cannot record a check of T."""
    import warnings

    warnings.warn(
        f"rnnkit: torch.jit.trace unrolls the reference backend's time loop, so this trace "
        f"runs exactly T={steps} steps and cuts a longer sequence short; trace on the fused "
        f"backend (float32/float64 on the CPU) or use torch.export with a dynamic T",
        torch.jit.TracerWarning, stacklevel=3)


def reference_scan(
    cell,
    gates_x: torch.Tensor,
    state0: NamedTuple,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, NamedTuple]:
    """Run ``cell.step`` over time.

    gates_x: (T, B, G) projected inputs, time-major. state0: the cell's state, fields (B, *).
    lengths: (B,) valid lengths or None. With lengths, sequence b only steps at t < lengths[b]:
    its state is frozen afterwards and its outputs there are zero. Running backwards over t while
    skipping t >= lengths[b] is exactly "reverse each sequence within its length".
    Returns outputs (T, B, H_out) and the final state.
    """
    steps = gates_x.size(0)
    if torch.jit.is_tracing():
        warn_trace_fixes_the_length(steps)
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    outputs: list[torch.Tensor | None] = [None] * steps
    state = state0
    if lengths is None:
        for t in order:
            state = cell.step(gates_x[t], state)
            outputs[t] = state.h
        return torch.stack(outputs), state

    time = torch.arange(steps, device=gates_x.device)
    valid = (time.unsqueeze(1) < lengths.to(gates_x.device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
    for t in order:
        new_state = cell.step(gates_x[t], state)
        state = type(state)(*(torch.where(valid[t], new, old) for new, old in zip(new_state, state)))
        outputs[t] = torch.where(valid[t], new_state.h, torch.zeros((), dtype=gates_x.dtype,
                                                                       device=gates_x.device))
    return torch.stack(outputs), state
