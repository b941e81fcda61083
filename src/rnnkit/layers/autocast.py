"""Recurrent layers under ``torch.autocast``: the recurrence stays in the parameters' dtype.

Autocast lowers matmuls to bfloat16/float16 for speed, which suits feed-forward layers but not
a recurrence: the state is rounded again at every one of T steps, and that error compounds
(and the fused kernels run float32/float64 only). So a layer's forward, inside an autocast
region, casts its floating inputs to its parameters' dtype and runs with autocast off; what
follows it (e.g. the output head) is autocast as usual.
"""

from __future__ import annotations

import functools

import torch
from torch.nn.utils.rnn import PackedSequence
from torch.utils import _pytree as pytree


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

    @functools.wraps(forward)
    def wrapper(self, x, *args, **kwargs):
        device_type = _device_type(x)
        if device_type is None or not _autocast_enabled(device_type):
            return forward(self, x, *args, **kwargs)
        dtype = next(self.parameters()).dtype
        cast = lambda v: _cast(v, dtype)  # noqa: E731
        args = pytree.tree_map(cast, args, is_leaf=lambda v: isinstance(v, PackedSequence))
        with torch.autocast(device_type, enabled=False):
            return forward(self, cast(x), *args, **kwargs)

    return wrapper
