"""Generated sequence tasks that need no files and no network."""

from __future__ import annotations

import numbers

import torch


def adding_problem(
    batch_size: int, steps: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997), a test of memory over ``steps``.

    Each sequence has two channels: values ``v_t ~ U(0, 1)`` and a marker that is 1 at exactly
    two steps, one in each half of the sequence. The target is the sum of the two marked values.
    Predicting the mean, 1.0, gives a mean squared error of 1/6 (the variance of the sum of two
    U(0, 1)); a model that remembers the marked values drives it to near zero.

    Returns x (B, T, 2) and y (B, 1).
    """
    for name, value, least in (("batch_size", batch_size, 1), ("steps", steps, 2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
        if value < least:
            why = " (one marker per half)" if name == "steps" else ""
            raise ValueError(f"{name} must be >= {least}{why}; got {value}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got "
                        f"{type(generator).__name__}")
    batch_size, steps = int(batch_size), int(steps)
    values = torch.rand(batch_size, steps, generator=generator)
    half = steps // 2
    first = torch.randint(0, half, (batch_size,), generator=generator)
    second = torch.randint(half, steps, (batch_size,), generator=generator)
    markers = torch.zeros(batch_size, steps)
    rows = torch.arange(batch_size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = (values * markers).sum(dim=1, keepdim=True)
    return torch.stack((values, markers), dim=-1), target
