"""``FusedStepper``: one time step for a small batch of streams, in about a microsecond.

For streaming inference (audio frames, sensor readings, control loops), where the per-call
overhead of torch operators (1-5 us each) dwarfs the arithmetic of a small cell. The stepper
packs the cell's weights once, keeps the state in its own tensors and advances it in place:

    stepper = FusedStepper(cell, batch_size=1)
    for x_t in frames:              # x_t: (B, I) float32, contiguous, on the CPU
        h = stepper.step(x_t)       # (B, H_out): the state tensor itself, updated in place

The weights are a snapshot: after changing the cell's parameters, make a new stepper.
Inference only (no autograd); float32 only.
"""

from __future__ import annotations

import torch

from ...cells import GRUCell, LSTMCell, RNNCell, cell_class
from ...cells.base import check_state_tensor
from ...errors import checked_size
from .build import stream_module

_KINDS = {LSTMCell: 0, GRUCell: 1}


class FusedStepper:
    def __init__(self, cell, batch_size: int = 1) -> None:
        if cell_class(cell) not in (LSTMCell, GRUCell, RNNCell):
            raise TypeError(f"FusedStepper supports rnnkit LSTMCell, GRUCell and RNNCell; "
                            f"got {type(cell).__name__}")
        from ...runtime.graph import weights_as_a_forward_computes_them  # (imports the layers)

        # weights that prune / weight_norm recompute in a pre-hook, as a forward would see them
        # (the snapshot read stale ones after an optimizer step); other hooks are refused
        weights_as_a_forward_computes_them(cell, "cell")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        weights = [getattr(cell, name, None) for name in names]
        for name, weight in zip(names, weights):
            # the native stepper reads each one's memory as float32: check all, not one
            if weight is not None and (weight.dtype != torch.float32
                                       or weight.device.type != "cpu"):
                raise TypeError(f"FusedStepper runs float32 cells on the CPU; the cell's "
                                f"{name} is {weight.dtype} on {weight.device} (use "
                                f"cell.float().cpu())")
        batch_size = checked_size("batch_size", batch_size)  # NumPy's integers too
        kind = _KINDS.get(cell_class(cell), 3 if getattr(cell, "nonlinearity", "") == "relu" else 2)
        self.cell = cell
        self.batch_size = batch_size
        widths = cell.state_sizes()
        # Ordinary tensors even when made under inference_mode: reset() and the state setter
        # write them in place, which torch refuses for inference tensors outside that mode.
        with torch.inference_mode(False):
            self.h = torch.zeros(batch_size, widths["h"])
            self.c = torch.zeros(batch_size, widths["c"]) if "c" in widths else None
        # Contiguous copies; the native stepper packs them once and keeps no pointer.
        weights = [None if w is None else w.detach().contiguous() for w in weights]
        address = [0 if w is None else w.data_ptr() for w in weights]
        self._native = stream_module().Stepper(
            kind, batch_size, cell.input_size, cell.hidden_size, widths["h"], *address,
            self.h, self.c,  # the native object holds both: a bound step kept alone owns them
        )
        self.step = self._native.step  # no Python frame on the hot path

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Advance every stream by one step; x (B, I) float32 (a strided view is read from a copy).

        Returns ``self.h``.

        (Replaced per instance by the native method, which does the same checks in C++.)
        """
        return self._native.step(x)

    @property
    def state(self):
        """The current state as the cell's NamedTuple (views of the stepper's buffers)."""
        return self.cell.state_type(self.h) if self.c is None else self.cell.state_type(self.h, self.c)

    @state.setter
    def state(self, value) -> None:
        """``h`` (GRU, Elman: a bare tensor, as torch.nn takes it, or a 1-tuple) or ``(h, c)``
        (LSTM), each (B, H) like the current state; all are checked before any is written."""
        buffers = (self.h,) if self.c is None else (self.h, self.c)
        wanted = "h" if self.c is None else "(h, c)"
        if not isinstance(value, (torch.Tensor, tuple, list)):
            raise TypeError(f"FusedStepper.state takes {wanted}, tensors of shape "
                            f"{tuple(self.h.shape)}; got {type(value).__name__} (convert an "
                            f"array with torch.from_numpy)")
        tensors = (value,) if isinstance(value, torch.Tensor) else tuple(value)
        if len(tensors) != len(buffers):
            raise ValueError(f"FusedStepper.state takes {wanted} for a "
                             f"{type(self.cell).__name__}; got {len(tensors)} tensor(s)")
        for name, buffer, tensor in zip(("state h", "state c"), buffers, tensors):
            check_state_tensor(name, tensor, tuple(buffer.shape), buffer)
        with torch.no_grad():  # a copy of the values: the stepper is outside autograd
            for buffer, tensor in zip(buffers, tensors):
                buffer.copy_(tensor)

    def reset(self) -> None:
        """Zero the state of every stream."""
        self.h.zero_()
        if self.c is not None:
            self.c.zero_()
