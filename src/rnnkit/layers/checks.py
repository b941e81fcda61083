"""Argument checks shared by the layers: raised before any computation, one line each."""

from __future__ import annotations

import functools
from collections import Counter

import torch

from ..errors import (DtypeMismatchError, ShapeMismatchError, check_floating,
                      check_matches_parameters, describe)
from .masking import normalize_lengths


def check_sequence_input(x, input_size: int, parameter: torch.Tensor, batch_first: bool,
                         ranks=(3,)) -> None:
    """``x`` must be a floating tensor of an allowed rank, with ``input_size`` features, the
    dtype and device of ``parameter`` (one of the module's weights) and at least one time step.
    An empty batch is allowed, as in torch.nn: it gives empty outputs and states."""
    check_floating("input", x)
    if x.dim() not in ranks:
        allowed = " or ".join(
            {2: "2-D (T, I) unbatched", 3: "3-D (batch and time, I)"}[r] for r in ranks
        )
        raise ValueError(f"input must be {allowed}; got {x.dim()}-D tensor of shape {describe(x)}")
    if x.size(-1) != input_size:
        raise ShapeMismatchError(
            f"input.size(-1) must equal input_size={input_size}; got {x.size(-1)} "
            f"(input shape {describe(x)})"
        )
    check_matches_parameters(x, parameter)
    steps = x.size(1) if batch_first and x.dim() == 3 else x.size(0)
    if steps == 0:
        raise ShapeMismatchError(f"input must have at least one time step; got shape "
                                 f"{describe(x)}")


def check_layer_call(x, input_size: int, parameter: torch.Tensor, batch_first: bool, lengths):
    """The checks every layer's forward starts with: the input (3-D, features, dtype, device)
    and the lengths, returned in canonical form (see :func:`normalize_lengths`)."""
    check_sequence_input(x, input_size, parameter, batch_first)
    batch, steps = (x.size(0), x.size(1)) if batch_first else (x.size(1), x.size(0))
    return normalize_lengths(lengths, batch_size=batch, steps=steps, batch_first=batch_first,
                             device=x.device)


def mismatched_parameter(module: torch.nn.Module) -> str | None:
    """A one-line message naming a parameter of ``module`` whose dtype or device differs from
    most of the others', or None where they all agree. Named as the user knows them: a
    torch.nn-style preset by torch's names (weight_hh_l0)."""
    named = (module.named_torch_parameters() if hasattr(module, "named_torch_parameters")
             else module.named_parameters())
    kinds = {name: (p.dtype, p.device) for name, p in named}
    if len(set(kinds.values())) <= 1:
        return None
    (dtype, device), _ = Counter(kinds.values()).most_common(1)[0]
    name, (odd_dtype, odd_device) = next((n, k) for n, k in kinds.items() if k != (dtype, device))
    if odd_dtype != dtype:
        return (f"parameter {name} is {odd_dtype} while the other parameters are {dtype}; "
                f"give them one dtype (module.to({dtype}) after assigning it: a Parameter "
                f"assigned by hand keeps its own)")
    return (f"parameter {name} is on {odd_device} while the other parameters are on {device}; "
            f"move them to one device (module.to('{device}') after assigning it)")


def name_mismatched_parameters(forward):
    """Decorate a layer's ``forward``: where it fails with a RuntimeError (a kernel's "expected
    scalar type Float but found Double") and the module's parameters disagree in dtype or
    device, a parameter assigned by hand, the error becomes one line naming that parameter.
    Only a failure pays for the search."""

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        try:
            return forward(self, *args, **kwargs)
        except RuntimeError as error:
            problem = mismatched_parameter(self)
            if problem is None:
                raise
            raise DtypeMismatchError(problem) from error

    return wrapper
