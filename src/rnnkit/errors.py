"""Small helpers that make argument errors one clear line: what was expected, what came."""

from __future__ import annotations

import numbers

import numpy as np
import torch


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip command that adds it.

    A subclass of ImportError, so ``except ImportError`` keeps working; the CLI prints it as one
    line instead of a traceback.
    """


class DtypeMismatchError(TypeError, ValueError, RuntimeError):
    """A tensor's dtype differs from the module's (or the input's), or is not a floating type.
    Also a ValueError and a RuntimeError, the classes torch.nn's recurrent layers and cells
    raise for it, so code that catches theirs catches this."""


class InvalidSizeError(TypeError, ValueError):
    """A size that is not an integer (``4.0``, ``True``). A TypeError, as torch.nn raises for
    it, and a ValueError, as for a size out of range, so either except clause catches it."""


class ShapeMismatchError(ValueError, RuntimeError):
    """A tensor's size does not fit the module (input_size, a state's shape). Also a
    RuntimeError, the class torch.nn raises for these, so code that catches theirs catches
    this."""


def describe(tensor: torch.Tensor) -> str:
    """Shape of a tensor as a plain tuple, e.g. ``(5, 3, 10)``."""
    return str(tuple(tensor.shape))


def describe_container(value) -> str:
    """``a tuple of 3`` for sequences, else the type name: what came instead of a state."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def check_matches_parameters(x: torch.Tensor, parameter: torch.Tensor, name: str = "input") -> None:
    """``x`` must have the dtype and device of the module's parameters."""
    if x.dtype != parameter.dtype:
        raise DtypeMismatchError(
            f"{name} dtype {x.dtype} does not match the parameters' dtype {parameter.dtype}; "
            f"convert one of them (e.g. module.to({x.dtype}) or {name}.to({parameter.dtype}))"
        )
    if x.device != parameter.device:
        raise ValueError(
            f"{name} is on {x.device} but the parameters are on {parameter.device}; move one "
            f"of them (module.to('{x.device}') or {name}.to('{parameter.device}'))"
        )


def check_floating(name: str, tensor) -> None:
    """``tensor`` must be a floating-point torch.Tensor."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise DtypeMismatchError(
            f"{name} must be a floating-point tensor; got dtype {tensor.dtype} "
            f"(convert it with {name}.float())"
        )


def check_flag(name: str, value) -> None:
    """A layer's on/off option must be a real bool, as torch.nn's layers require of ``bias``
    and ``batch_first``: ``batch_first="False"`` (a truthy string) would be silently wrong.
    (torch.nn's cells take any value for ``bias``, and its layers for ``bidirectional``: see
    :func:`check_switch`.)"""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")


def check_switch(name: str, value) -> None:
    """An on/off option torch.nn takes unchecked (a cell's ``bias``, a layer's
    ``bidirectional``): True, False, 1 and 0 pass, as code written for torch.nn passes them,
    but a string ("no", which is truthy) built the other model without a word."""
    if isinstance(value, bool) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return
    if isinstance(value, np.bool_):
        return  # np.random.choice([True, False]) in a sweep; torch.nn takes it
    raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")


def checked_size(name: str, value, minimum: int = 1) -> int:
    """``value`` as a plain int >= ``minimum`` (1 or 0), or a one-line error naming it: a
    ValueError, and for a value that is no integer an InvalidSizeError (also a TypeError).

    Any integer type is a size (``np.int64(4)`` from an array's shape or a config read with
    NumPy; torch.nn's cells, num_layers and proj_size take those too, its layers' sizes only
    a Python int); bools and floats (``4.0``) are not, since one silently truncated is a
    different model."""
    wanted = "a positive int" if minimum == 1 else "a non-negative int"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidSizeError(f"{name} must be {wanted}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {wanted}; got {value!r}")
    return int(value)


def source_name(value, what: str, expected: str) -> str:
    """``value`` (a name or a path: str, bytes or os.PathLike) as text, refusing what names
    nothing: "" was read as the working folder (a corpus of every file there), and a number
    got os.fsdecode's "expected str, bytes or os.PathLike object". ``what`` names the argument
    and ``expected`` what it takes, for the messages."""
    import os

    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be {expected}; got {type(value).__name__}")
    name = os.fsdecode(value)
    if not name:
        raise ValueError(f"{what} is empty; give {expected}")
    return name
