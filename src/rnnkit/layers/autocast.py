"""Recurrent layers under ``torch.autocast``: the recurrence stays in the parameters' dtype,
except for LSTM layers under CPU bfloat16 autocast on a CPU with AMX-BF16 or AVX512-BF16 (and
there the other layers run their input projection in bfloat16).

Autocast lowers matmuls to bfloat16/float16 for speed, which suits feed-forward layers but not
a recurrence: the state is rounded again at every one of T steps, and that error compounds
(and the fused kernels run float32/float64 only). So a layer's forward, inside an autocast
region, casts its floating inputs to its parameters' dtype and runs with autocast off; what
follows it (e.g. the output head) is autocast as usual.

The exception: under CPU autocast to bfloat16 the layer also enters
:func:`rnnkit.backends.lowered.lowered_precision`, and LSTM layers the bfloat16 route supports
(no projection, no lengths, AMX-BF16 or AVX512-BF16 present; not inside torch.func
transforms or forward-mode AD, which oneDNN's LSTM lacks) run on oneDNN's bfloat16 LSTM, as
torch.nn.LSTM does under the same autocast, except for training calls the fused kernels run
faster
(``rnnkit.backends.fused.backend.fused_lstm_pays_bf16``). The other layers on that CPU, and
those training calls, compute their input projection, a feed-forward product, in bfloat16,
and on the fused kernels the recurrent products as bfloat16 AMX tile products where they pay,
with the state and gate math in float32. ``rnnkit.backends.lowered.set_bf16_recurrence(False)``
keeps all of it float32.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
from torch.nn.utils.rnn import PackedSequence
from torch.utils import _pytree as pytree

from ..backends.lowered import lowered_precision


def _device_type(value) -> str | None:
    if isinstance(value, PackedSequence):
        value = value.data
    return value.device.type if isinstance(value, torch.Tensor) else None


def _cast(value, dtype: torch.dtype):
    if isinstance(value, PackedSequence):
        return value._replace(data=value.data.to(dtype)) if value.data.is_floating_point() \
            else value
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def _autocast_enabled(device_type: str) -> bool:
    # Devices without autocast (e.g. "meta") make torch raise; there is nothing to undo there.
    if not torch.amp.is_autocast_available(device_type):
        return False
    return torch.is_autocast_enabled(device_type)


def recurrence_outside_autocast(forward):
    """Decorate a layer's ``forward(self, x, state=None, ...)`` as described above."""

    # the input may come by keyword too (torch.nn's ``lstm(input=x, hx=h)``)
    input_name = list(inspect.signature(forward).parameters)[1]

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        # One C call answers the common case (no autocast region on any device) in ~0.1 us;
        # the per-device check below costs ~1 us, which shows in a batch-1 call.
        if not torch._C._is_any_autocast_enabled():
            return forward(self, *args, **kwargs)
        device_type = _device_type(args[0] if args else kwargs.get(input_name))
        if device_type is None or not _autocast_enabled(device_type):
            return forward(self, *args, **kwargs)
        dtype = next(self.parameters()).dtype
        cast = lambda v: _cast(v, dtype)  # noqa: E731
        is_leaf = lambda v: isinstance(v, PackedSequence)  # noqa: E731
        args = pytree.tree_map(cast, args, is_leaf=is_leaf)
        kwargs = pytree.tree_map(cast, kwargs, is_leaf=is_leaf)  # hx=, state= as well
        lowered = (lowered_precision(torch.bfloat16) if device_type == "cpu"
                   and torch.get_autocast_dtype("cpu") == torch.bfloat16
                   else contextlib.nullcontext())
        with torch.autocast(device_type, enabled=False), lowered:
            return forward(self, *args, **kwargs)

    return wrapper
