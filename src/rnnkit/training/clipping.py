"""Gradient clipping by global norm, the standard cure for exploding gradients in RNNs.

    g <- g * min(1, max_norm / ||g||),   ||g|| = sqrt(sum over all parameters of ||g_p||^2)

(Pascanu et al. 2013). The norm before clipping is returned because it is the quantity worth
logging: a norm that keeps hitting the threshold, or spikes, is the first sign of trouble.
"""

from __future__ import annotations

from numbers import Real
from typing import Iterable

import torch


def clip_gradients(parameters: Iterable[torch.nn.Parameter] | torch.Tensor,
                   max_norm: float | None) -> float:
    """Clip the gradients in place to global norm ``max_norm`` (None: do not clip).

    ``parameters``: an iterable of parameters, or one tensor (as torch's clip_grad_norm_ takes).
    Returns the global norm before clipping (``inf`` or ``nan`` when a gradient is not finite,
    in which case nothing is scaled). The norm is summed in at least float32: float16's range
    ends at 65504, so the norm of finite float16 gradients could itself overflow to inf.
    """
    if isinstance(max_norm, torch.Tensor) and max_norm.numel() == 1:
        max_norm = max_norm.item()  # as torch's clip_grad_norm_ takes it
    if max_norm is not None and (isinstance(max_norm, bool) or not isinstance(max_norm, Real)
                                 or not max_norm > 0):
        raise ValueError(f"max_norm must be a positive number (or None to turn clipping off); "
                         f"got {max_norm!r}")
    if isinstance(parameters, torch.nn.Module) and not hasattr(parameters, "__iter__"):
        # "'Linear' object is not iterable" (a ParameterList is iterable, and fine)
        raise TypeError(f"parameters must be an iterable of parameters; got the module "
                        f"{type(parameters).__name__} itself: pass its .parameters()")
    if isinstance(parameters, torch.Tensor):  # iterating one would walk its rows
        parameters = [parameters]
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    norm = torch.nn.utils.get_total_norm([
        p.grad.float() if p.grad.dtype in (torch.float16, torch.bfloat16) else p.grad
        for p in params])
    if max_norm is not None and torch.isfinite(norm):
        # clip_grads_with_norm_ takes the parameters and scales their .grad in place.
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(norm)
