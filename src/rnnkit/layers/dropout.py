"""Dropout with the mask drawn from ``uniform_``: torch's distribution, about 2x less time on CPU.

Inverted dropout keeps each element with probability 1 - p and scales what it keeps:

    y = x * m / (1 - p),   m ~ Bernoulli(1 - p) elementwise,   x, y: any shape

``F.dropout`` draws m with ``bernoulli_``, which on the CPU (torch 2.13) costs ~8 ns per element:
for the character model's (32, 64, 512) output that was 8 ms of a 47 ms bfloat16 training step.
``m = (u >= p)`` with ``u ~ U[0, 1)`` from ``uniform_`` is the same Bernoulli variable (to the
2^-24 grain of a float32 u) at ~3 ns per element. Other devices keep ``F.dropout``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` in distribution; see the module."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    uniform = torch.empty(x.shape, dtype=torch.float32, device=x.device).uniform_()
    scaled_mask = (uniform >= p).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scaled_mask


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, state and repr) drawing its mask as :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
