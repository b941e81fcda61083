"""The reference backend: a readable Python loop over the cell's step function.

It runs on every device and dtype, gets gradients from autograd, and is the oracle every other
backend is tested against. Keep it plain: it is never removed or made clever.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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
