"""Small helpers that make argument errors one clear line: what was expected, what came."""

from __future__ import annotations

import torch


def describe(tensor: torch.Tensor) -> str:
    """Shape of a tensor as a plain tuple, e.g. ``(5, 3, 10)``."""
    return str(tuple(tensor.shape))


def check_floating(name: str, tensor) -> None:
    """``tensor`` must be a floating-point torch.Tensor."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor; got dtype {tensor.dtype} "
            f"(convert it with {name}.float())"
        )
