"""Per-column standardization statistics, shared by every task that scales its inputs.

For rows (N, F) the scaled value is ``z = (v - mean) / std`` with the mean and the population
standard deviation of each column, taken over the training rows only.
"""

from __future__ import annotations

import numpy as np


def standardization(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mean (F,) and std (F,) of rows (N, F >= 1, N >= 1), float64.

    A constant column carries no information, so it gets its own value as the mean and a
    scale of 1, which maps it to exactly 0. Only equal values make a column constant: rounding
    leaves 115 rows of 0.1 a std of ~1e-16, which would blow any other value up by 1e16, and
    any threshold on the std misjudges some scale (farads, or time stamps whose spread is
    small next to their mean). A spread whose squares underflow (0 and 1e-200) has a std of
    exactly 0 and counts as constant too, since dividing by it is impossible.
    """
    rows = np.asarray(rows, dtype=np.float64)
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    varies = (np.ptp(rows, axis=0) > 0) & (std > 0)
    return np.where(varies, mean, rows[0]), np.where(varies, std, 1.0)
