"""Scaling and windowing: how a series becomes training samples for the forecaster.

A series of N rows has C target columns and K covariates. Each column is standardized with the
mean and standard deviation of the training rows only (statistics of the holdout must never
reach the model):

    z = (v - mean_train) / std_train

A training sample is a window of W + H consecutive rows, ``inputs`` (W + H, F = C + K) and the
same rows' ``targets`` (W + H, C). The direct decoder forecasts the next H rows after each of
the first W steps; the autoregressive decoder forecasts the next row after each of the first
W + H - 1 steps. In both, the first ``warmup`` steps of a window only build up the state and
are left out of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data.scaling import standardization


@dataclass
class Scaler:
    """Per-column standardization fitted on training rows: ``z = (v - mean) / std``."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    @classmethod
    def fit(cls, rows: np.ndarray) -> Scaler:
        """rows (N, F) float: the training part only."""
        if len(rows) == 0:
            raise ValueError("there are no training rows to fit the scaler on; use a longer "
                             "series or a shorter holdout")
        return cls(*standardization(rows))

    def transform(self, rows: np.ndarray) -> np.ndarray:
        return (rows - self.mean) / self.std

    def inverse(self, scaled: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        """Back to data units; ``columns`` picks which columns ``scaled``'s last axis holds."""
        return scaled * self.std[columns] + self.mean[columns]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(np.asarray(data["mean"], dtype=np.float64),
                   np.asarray(data["std"], dtype=np.float64))


def feature_rows(values: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """The model's input rows (N, F): targets (N, C) then covariates (N, K)."""
    return values if covariates is None else np.concatenate([values, covariates], axis=1)


class WindowSet:
    """All windows of W + H rows of a scaled series, as one tensor, indexed by sample.

    rows (N, F) scaled float; ``targets`` C: the first C columns are forecast.
    ``windows[i]`` is rows[i : i + W + H]; there are N - (W + H) + 1 of them.
    """

    def __init__(self, rows: np.ndarray, targets: int, context: int, horizon: int) -> None:
        span = context + horizon
        if len(rows) < span:
            raise ValueError(
                f"the training part has {len(rows)} rows, fewer than one window of context "
                f"{context} + horizon {horizon} = {span}; use a shorter --window or --horizon, "
                f"or a longer series")
        tensor = torch.as_tensor(rows, dtype=torch.float32)
        self.windows = tensor.unfold(0, span, 1).transpose(1, 2).contiguous()  # (S, W+H, F)
        self.targets, self.context, self.horizon = targets, context, horizon

    def __len__(self) -> int:
        return self.windows.size(0)

    def batch(self, index: torch.Tensor, decoder: str, warmup: int):
        """(inputs (B, N, F), targets (B, N, H_or_1, C), mask (B, N, H_or_1, 1)) for the loss.

        Direct: the forecast after step t (t < W) covers rows t+1..t+H of the window, so every
        target is inside it. Autoregressive: after step t (t < W + H - 1), row t + 1.
        """
        window = self.windows[index]
        c, w, h = self.targets, self.context, self.horizon
        if decoder == "direct":
            inputs = window[:, :w]
            # targets[b, t, k] = window[b, t + 1 + k, :C]
            targets = window[:, 1:, :c].unfold(1, h, 1).permute(0, 1, 3, 2)
        else:
            inputs = window[:, :-1]
            targets = window[:, 1:, :c].unsqueeze(2)
        mask = torch.ones(targets.shape[:-1] + (1,), dtype=inputs.dtype)
        mask[:, :warmup] = 0.0
        return inputs, targets, mask
