"""The one tolerance table for numerical comparisons in rnnkit's tests.

Values are compared with ``|actual - expected| <= atol + rtol * |expected|`` per element.

* float32: forward values (outputs, final states) agree to ~1e-6 in practice on the tiny
  shapes the tests use; gradients accumulate more terms (backprop through time, several layers)
  and get a looser bound.
* float64: everything agrees to ~1e-14; 1e-10 leaves ample room while still catching any
  real formula difference.
"""

from __future__ import annotations

import torch

#: Tolerances for forward values (outputs, final states), per dtype.
TOLERANCES = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-10, rtol=1e-10),
}

#: Tolerances for gradients, per dtype (looser in float32 only).
GRAD_TOLERANCES = {
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float64: dict(atol=1e-10, rtol=1e-10),
}


def tolerance(dtype: torch.dtype, grad: bool = False) -> dict:
    """``dict(atol=..., rtol=...)`` for ``dtype``; ``grad=True`` for gradients."""
    table = GRAD_TOLERANCES if grad else TOLERANCES
    if dtype not in table:
        raise KeyError(f"no tolerance for dtype {dtype}; add it to tests/tolerances.py")
    return table[dtype]


def assert_close(actual, expected, dtype=None, what: str = "", grad: bool = False) -> None:
    """``torch.testing.assert_close`` with the table's tolerance for ``dtype``.

    ``dtype`` defaults to ``expected``'s dtype. ``what`` names the compared quantity in the
    failure message. Dtypes and devices must match exactly. ``None`` only equals ``None``
    (for gradients that were never populated).
    """
    if actual is None or expected is None:
        if actual is not expected:
            raise AssertionError(f"{what or 'value'}: one side is None "
                                 f"(actual={type(actual).__name__}, expected={type(expected).__name__})")
        return
    dtype = dtype or expected.dtype
    tol = tolerance(dtype, grad)
    # Fast path for the common passing case (the test grids make thousands of comparisons);
    # anything else, NaN and inf included, goes to torch.testing for its checks and message.
    if (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)
            and actual.shape == expected.shape and actual.dtype == expected.dtype
            and actual.device == expected.device and actual.layout == expected.layout
            and actual.layout == torch.strided and not actual.is_complex()):
        with torch.no_grad():
            if bool(((actual - expected).abs() <= tol["atol"] + tol["rtol"] * expected.abs()).all()):
                return

    def message(msg: str) -> str:
        return f"{what}: {msg}" if what else msg

    torch.testing.assert_close(actual, expected, **tol, msg=message)


def assert_grad_close(actual, expected, dtype=None, what: str = "") -> None:
    """:func:`assert_close` with the gradient tolerances."""
    assert_close(actual, expected, dtype=dtype, what=what, grad=True)
