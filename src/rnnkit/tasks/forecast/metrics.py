"""Forecast accuracy: MASE, RMSE, sMAPE, MAE, pinball loss and interval coverage.

Every metric takes the actual values of the forecast window ``A`` and a forecast ``F`` of the
same shape: ``(H,)`` for one series over ``H`` steps, or ``(H, C)`` for ``C`` series side by
side. For ``(H, C)`` the metric is computed per column and the mean over the columns is
returned, so each series counts the same however large its values. Computation is float64.

* ``mae   = mean_t |A_t - F_t|``
* ``rmse  = sqrt(mean_t (A_t - F_t)^2)``
* ``smape = mean_t 200 |F_t - A_t| / (|A_t| + |F_t|)`` in percent (0..200), a 0/0 term is 0
* ``mase  = mae / scale`` with ``scale = mean_{t>m} |y_t - y_{t-m}|`` over the training part
  ``y``: the in-sample MAE of the seasonal-naive forecast with season ``m`` (Hyndman & Koehler
  2006, "Another look at measures of forecast accuracy"). Below 1 beats that naive method.
"""

from __future__ import annotations

import numpy as np


def _series(name: str, values) -> np.ndarray:
    """``values`` as a finite, non-empty float64 array of shape (N,) or (N, C)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (N,) or (N, C); got shape {array.shape}")
    if array.shape[0] == 0 or array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass at least one value")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; fill or drop them first")
    return array


def _pair(actual, forecast, name: str = "forecast") -> tuple[np.ndarray, np.ndarray]:
    actual, forecast = _series("actual", actual), _series(name, forecast)
    if actual.shape != forecast.shape:
        raise ValueError(f"actual has shape {actual.shape} but {name} has shape "
                         f"{forecast.shape}; pass arrays of the same shape")
    return actual, forecast


def _mean_over_columns(per_column) -> float:
    """A per-column value (a scalar for one series, shape (C,) for several) averaged."""
    return float(np.mean(per_column))


def _naive_errors(train, season: int) -> np.ndarray:
    """``mean_{t=m..N-1} |y_t - y_{t-m}|`` of ``train`` (N,) or (N, C): () or (C,), unchecked
    for zeros."""
    train = _series("train", train)
    if int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer; got {season!r}")
    season = int(season)
    if train.shape[0] < season + 1:
        raise ValueError(f"train has {train.shape[0]} values but the MASE scale with season "
                         f"{season} needs at least {season + 1}; pass a longer training part")
    return np.mean(np.abs(train[season:] - train[:-season]), axis=0)


def unscalable_columns(train, season: int = 1) -> list[int]:
    """The columns of ``train`` (N,) or (N, C) that repeat exactly at lag ``season``: their
    seasonal-naive error, MASE's divisor, is 0, so :func:`forecast_metrics` gives NaN MASE."""
    return np.flatnonzero(np.atleast_1d(_naive_errors(train, season)) == 0).tolist()


def mase_scale(train, season: int = 1) -> float | np.ndarray:
    """``mean_{t=m..N-1} |y_t - y_{t-m}|`` over ``train`` (N,) or (N, C); per column for 2-D.

    Returns a float for (N,) and an array (C,) for (N, C).
    """
    scale = _naive_errors(train, season)
    if np.any(scale == 0):
        raise ValueError(f"the MASE scale is 0 because train is constant at lag {season} "
                         f"(a constant series has no naive error to scale by); use MAE or RMSE")
    return float(scale) if scale.ndim == 0 else scale


def mae(actual, forecast) -> float:
    """Mean absolute error ``mean_t |A_t - F_t|`` (mean over columns for (H, C))."""
    actual, forecast = _pair(actual, forecast)
    return _mean_over_columns(np.mean(np.abs(actual - forecast), axis=0))


def mase(actual, forecast, scale) -> float:
    """Mean absolute scaled error ``mean_t |A_t - F_t| / scale`` (scale from ``mase_scale``)."""
    actual, forecast = _pair(actual, forecast)
    scale = np.asarray(scale, dtype=np.float64)
    columns = actual.shape[1:]
    if scale.shape not in ((), columns):
        raise ValueError(f"scale has shape {scale.shape} but actual has shape {actual.shape}; "
                         f"pass mase_scale(train) of a train with the same columns")
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"scale must be positive and finite; got {scale}")
    return _mean_over_columns(np.mean(np.abs(actual - forecast), axis=0) / scale)


def rmse(actual, forecast) -> float:
    """Root mean squared error ``sqrt(mean_t (A_t - F_t)^2)`` (per column, then the mean)."""
    actual, forecast = _pair(actual, forecast)
    return _mean_over_columns(np.sqrt(np.mean((actual - forecast) ** 2, axis=0)))


def smape(actual, forecast) -> float:
    """Symmetric MAPE in percent: ``mean_t 200 |F_t - A_t| / (|A_t| + |F_t|)``; 0/0 counts 0."""
    actual, forecast = _pair(actual, forecast)
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(np.abs(forecast - actual), denominator,
                      out=np.zeros_like(denominator), where=denominator > 0)
    return _mean_over_columns(200.0 * np.mean(ratio, axis=0))


def pinball_loss(actual, quantile_forecasts, quantiles) -> float:
    """Mean pinball (quantile) loss over quantiles and steps.

    ``rho_q(A, F) = max(q (A - F), (q - 1)(A - F))``, averaged over the ``Q`` quantiles and
    the ``H`` steps (then over the columns). ``quantile_forecasts`` has the quantiles on the
    last axis: shape (H, Q) for ``actual`` (H,), or (H, C, Q) for ``actual`` (H, C).
    For ``q = 0.5`` the loss is half the MAE of the median.
    """
    actual = _series("actual", actual)
    levels = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    if levels.size == 0 or np.any(~((levels > 0) & (levels < 1))):
        raise ValueError(f"quantiles must be levels strictly between 0 and 1; got {levels}")
    predicted = np.asarray(quantile_forecasts, dtype=np.float64)
    expected = actual.shape + (levels.size,)
    if predicted.shape != expected:
        raise ValueError(f"quantile_forecasts has shape {predicted.shape}; expected {expected} "
                         f"(the actual values' shape with the {levels.size} quantiles last)")
    if not np.all(np.isfinite(predicted)):
        raise ValueError("quantile_forecasts contains NaN or infinite values; fill them first")
    error = actual[..., None] - predicted
    loss = np.maximum(levels * error, (levels - 1.0) * error)
    return _mean_over_columns(np.mean(loss, axis=(0, -1)))


def interval_coverage(actual, lower, upper) -> float:
    """Fraction of actual values inside their interval, ``mean_t [L_t <= A_t <= U_t]``.

    Compare with the nominal level of the interval (e.g. 0.9 for a 5%..95% interval).
    """
    actual, lower = _pair(actual, lower, "lower")
    _, upper = _pair(actual, upper, "upper")
    if np.any(lower > upper):
        raise ValueError(f"lower exceeds upper at {int(np.sum(lower > upper))} points; "
                         f"pass the interval's lower bound first")
    inside = (lower <= actual) & (actual <= upper)
    return _mean_over_columns(np.mean(inside, axis=0))


def forecast_metrics(actual, forecast, train, season: int = 1) -> dict:
    """``{"mase", "rmse", "smape", "mae"}`` of one forecast; MASE scaled on ``train``, NaN when
    that scale is 0 (a series that repeats itself exactly at the season has no naive error to
    scale by; the other metrics still say how good the forecast is)."""
    scale = _naive_errors(train, season)
    value = (float("nan") if np.any(scale == 0)
             else mase(actual, forecast, float(scale) if scale.ndim == 0 else scale))
    return {"mase": value, "rmse": rmse(actual, forecast),
            "smape": smape(actual, forecast), "mae": mae(actual, forecast)}
