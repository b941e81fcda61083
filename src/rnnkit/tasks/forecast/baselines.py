"""Baseline forecasts a learned model must beat: naive, seasonal naive and AR(p).

For a history ``y_1..y_N`` and horizon ``H`` (steps ``h = 1..H``):

* naive:          ``y_hat_{N+h} = y_N``
* seasonal naive: ``y_hat_{N+h} = y_{N - m + ((h - 1) mod m) + 1}``, the last season repeated
* AR(p):          ``y_t - mu = sum_{i=1..p} phi_i (y_{t-i} - mu) + e_t``, ``e_t ~ N(0, sigma2)``,
  forecast by the recursion ``y_hat_{t+1} = mu + sum_i phi_i (y_hat_{t+1-i} - mu)`` (actual
  values where known). The order ``p`` (lags ``1..p``) is chosen by AIC/BIC/HQIC on the
  training part only (statsmodels ``ar_select_order``); the parameters are then fitted by
  exact Gaussian maximum likelihood (statsmodels ``ARIMA(p, 0, 0)`` with a constant, whose
  ``const`` is the process mean ``mu``, not the intercept ``c = mu (1 - sum phi)``).

Histories are arrays of shape (N,) or (N, C); forecasts have shape (H,) or (H, C). With
several columns every column is a separate series: the AR baseline fits one AR(p) per column,
each with its own order (``ColumnwiseAR``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np

from rnnkit.errors import MissingExtraError

from .metrics import _series

CRITERIA = ("aic", "bic", "hqic")

log = logging.getLogger("rnnkit.tasks")


def _horizon(horizon) -> int:
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
    return int(horizon)


def naive_forecast(history, horizon: int) -> np.ndarray:
    """The last value repeated ``horizon`` times: (N,) -> (H,), (N, C) -> (H, C)."""
    history, horizon = _series("history", history), _horizon(horizon)
    return np.repeat(history[-1:], horizon, axis=0)


def seasonal_naive_forecast(history, horizon: int, season: int) -> np.ndarray:
    """The last ``season`` values repeated cyclically: (N,) -> (H,), (N, C) -> (H, C)."""
    history, horizon = _series("history", history), _horizon(horizon)
    if int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer; got {season!r}")
    season = int(season)
    if history.shape[0] < season:
        raise ValueError(f"history has {history.shape[0]} values, shorter than one season "
                         f"({season}); pass at least {season} values or a shorter season")
    start = history.shape[0] - season
    return history[start + np.arange(horizon) % season].copy()


@dataclass
class ARModel:
    """A fitted AR(p) ``y_t - mean = sum_i phi_i (y_{t-i} - mean) + e_t``, ``Var e = sigma2``."""

    p: int  #: the order: lags 1..p
    mean: float  #: the process mean mu (statsmodels' "const" with trend="c")
    phi: np.ndarray  #: (p,) AR coefficients, phi[i-1] multiplies lag i
    sigma2: float  #: innovation variance
    criterion: str = "aic"  #: the information criterion that chose p
    max_lag: int = 0  #: the largest order that was considered

    @property
    def intercept(self) -> float:
        """``c = mu (1 - sum phi)`` in the form ``y_t = c + sum_i phi_i y_{t-i} + e_t``."""
        return float(self.mean * (1.0 - np.sum(self.phi)))

    @property
    def label(self) -> str:
        return f"AR({self.p})"

    def forecast(self, history, horizon: int) -> np.ndarray:
        """(H,) forecasts following ``history`` (N,), N >= p, by the AR recursion; no refit."""
        history, horizon = _series("history", history), _horizon(horizon)
        if history.ndim != 1:
            raise ValueError(f"history must have shape (N,) for one AR model; got "
                             f"{history.shape} (use ColumnwiseAR for several columns)")
        if history.shape[0] < self.p:
            raise ValueError(f"history has {history.shape[0]} values but AR({self.p}) needs "
                             f"the last {self.p}; pass a longer history")
        # Deviations from the mean, newest last; forecasts are appended as they are made.
        window = list(history[history.shape[0] - self.p:] - self.mean)
        lagged_phi = self.phi[::-1]  # lagged_phi[j] multiplies window[-p + j]
        out = np.empty(horizon)
        for h in range(horizon):
            step = float(np.dot(lagged_phi, window[len(window) - self.p:])) if self.p else 0.0
            window.append(step)
            out[h] = self.mean + step
        return out

    def psi_weights(self, horizon: int) -> np.ndarray:
        """MA(inf) weights ``psi_0 = 1``, ``psi_j = sum_{i=1..min(j,p)} phi_i psi_{j-i}``."""
        psi = np.zeros(_horizon(horizon))
        psi[0] = 1.0
        for j in range(1, psi.size):
            lags = min(j, self.p)
            psi[j] = float(np.dot(self.phi[:lags], psi[j - 1::-1][:lags]))
        return psi

    def forecast_std(self, horizon: int) -> np.ndarray:
        """(H,) forecast standard errors ``sigma sqrt(sum_{j<h} psi_j^2)`` (no parameter error)."""
        return np.sqrt(self.sigma2 * np.cumsum(self.psi_weights(horizon) ** 2))


@dataclass
class ColumnwiseAR:
    """One independent ``ARModel`` per column of a (N, C) series; forecasts are (H, C)."""

    models: list[ARModel]

    @property
    def p(self) -> tuple[int, ...]:
        return tuple(model.p for model in self.models)

    @property
    def label(self) -> str:
        """``AR(9)`` when every column has the same order, else ``AR(2..9)`` (min..max)."""
        low, high = min(self.p), max(self.p)
        return f"AR({low})" if low == high else f"AR({low}..{high})"

    def forecast(self, history, horizon: int) -> np.ndarray:
        history = _series("history", history)
        if history.ndim != 2 or history.shape[1] != len(self.models):
            raise ValueError(f"history has shape {history.shape} but the models were fitted on "
                             f"{len(self.models)} columns; pass (N, {len(self.models)})")
        return np.stack([m.forecast(history[:, c], horizon)
                         for c, m in enumerate(self.models)], axis=1)

    def forecast_std(self, horizon: int) -> np.ndarray:
        return np.stack([m.forecast_std(horizon) for m in self.models], axis=1)


def _statsmodels():
    try:
        from statsmodels.tsa.ar_model import ar_select_order
        from statsmodels.tsa.arima.model import ARIMA
    except ImportError:  # an optional dependency: say how to get it
        raise MissingExtraError("the AR(p) baseline needs statsmodels; install it with: "
                          'pip install "rnnkit[timeseries]"') from None
    return ar_select_order, ARIMA


def _one_blas_thread():
    """Limit BLAS to one thread while fitting, when threadpoolctl is installed.

    The likelihood works on p x p matrices, where BLAS threads only contend: on a busy 2-core
    machine the sunspots AR(9) fit took 6 s with OpenBLAS's default threads and 0.4 s with one.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _converged(result) -> bool:
    """Whether statsmodels' likelihood optimizer reported convergence (fits without the
    report, by other methods, count as converged)."""
    return bool((getattr(result, "mle_retvals", None) or {}).get("converged", True))


def _fit_one(train: np.ndarray, max_lag: int, criterion: str, what: str = "train") -> ARModel:
    if np.ptp(train) == 0:
        raise ValueError(f"{what} is constant (every value is {train[0]:g}), so there is no AR "
                         f"structure to fit; use the naive forecast for a constant series")
    # Fitted in standard units, z = (y - center) / scale, and mapped back below: an AR(p) with
    # a mean is affine-equivariant, but statsmodels' optimizer and order search are not. On
    # the same series in other units the fit failed to converge (values ~1e-6, e.g. farads) or
    # chose another order (an offset of 1e7-1e8: a rank-deficient design matrix).
    # (the standard deviation of values scaled by their range first: at 1e-160 the variance
    # underflows to 0)
    spread, center = float(np.ptp(train)), float(np.mean(train))
    scale = spread * float(np.std((train - center) / spread))
    try:
        standard = _fit_standardized((train - center) / scale, max_lag, criterion, what)
    except np.linalg.LinAlgError as error:  # a ValueError whose text alone said nothing
        raise ValueError(f"statsmodels could not fit an AR model to {what} ({error})") from None
    # The noise variance in data units is the square of a value of the data's size: past
    # ~1e154 it overflows (Python floats raise), below ~1e-154 it leaves float64's normal
    # range (imprecise, then a zero-width interval). Either way no usable AR row, as before
    # the standardization.
    with np.errstate(over="ignore", under="ignore"):
        sigma2 = float(np.square(np.float64(scale) * np.sqrt(standard.sigma2)))
    if not (math.isfinite(sigma2) and sigma2 >= np.finfo(np.float64).tiny):
        raise ValueError(f"the AR({standard.p}) fit of {what} has a noise variance outside "
                         f"float64's range at this scale (standard deviation {scale:.3g}); "
                         f"rescale the data")
    return ARModel(p=standard.p, mean=center + scale * standard.mean, phi=standard.phi,
                   sigma2=sigma2, criterion=criterion, max_lag=max_lag)


def _fit_standardized(train: np.ndarray, max_lag: int, criterion: str, what: str) -> ARModel:
    ar_select_order, ARIMA = _statsmodels()
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, SingularMatrixWarning

    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SingularMatrixWarning)  # a failed fit raises instead
        warnings.filterwarnings("ignore", message=r"Non-(stationary|invertible) starting",
                                category=UserWarning)
        lags = ar_select_order(train, max_lag, ic=criterion, trend="c").ar_lags
        p = 0 if lags is None else int(max(lags))
        result = ARIMA(train, order=(p, 0, 0), trend="c").fit()
        if not _converged(result):
            # statsmodels stops after 50 iterations; high orders on strongly seasonal series
            # (airline's AR(19): log-likelihood -475.8 there, -470.6 at the optimum, test MASE
            # 1.63 against 1.22) need more. Continued from where it stopped, not restarted.
            result = ARIMA(train, order=(p, 0, 0), trend="c").fit(
                start_params=result.params, method_kwargs={"maxiter": 2000})
        if not _converged(result):
            raise ValueError(f"the AR({p}) fit of {what} did not converge (statsmodels' "
                             f"likelihood optimizer stopped after "
                             f"{result.mle_retvals.get('iterations', '?')} iterations)")
    names = list(result.model.param_names)
    params = np.asarray(result.params, dtype=np.float64)
    phi = np.array([params[names.index(f"ar.L{i}")] for i in range(1, p + 1)])
    model = ARModel(p=p, mean=float(params[names.index("const")]), phi=phi,
                    sigma2=float(params[names.index("sigma2")]), criterion=criterion,
                    max_lag=max_lag)
    # For an AR(p) the forecast is a recursion on the last p values, and statsmodels' Kalman
    # filter gives the same numbers (test_ar_forecast_and_std_match_statsmodels). Where its
    # likelihood failed (a noise-free trend with a season, say) the parameters sit on the unit
    # circle, the two disagree, and the recursion swings without bound: no usable baseline.
    steps = 2 * max(p, 1)
    recursion = model.forecast(train, steps)
    own = np.asarray(result.forecast(steps), dtype=np.float64)
    if not np.allclose(recursion, own, rtol=1e-6, atol=1e-6 * float(np.ptp(train))):
        raise ValueError(f"the AR({p}) fit of {what} is degenerate (statsmodels' likelihood "
                         f"did not converge to a stationary model; its own forecast and the AR "
                         f"recursion differ by up to {np.abs(recursion - own).max():.3g})")
    return model


def fit_autoregressive(train, max_lag: int | None = None,
                       criterion: str = "aic") -> ARModel | ColumnwiseAR:
    """Choose p on ``train`` by ``criterion`` among 0..max_lag, then fit AR(p) by exact ML.

    ``train`` (N,) gives an ``ARModel``; (N, C) gives a ``ColumnwiseAR`` with one model per
    column. ``max_lag`` defaults to ``min(20, N // 5)``; it needs ``N >= 2 max_lag + 2`` so
    every candidate order is scored on the same ``N - max_lag`` observations.
    """
    train = _series("train", train)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
    n = train.shape[0]
    if max_lag is None:
        max_lag = min(20, n // 5)
        if max_lag < 1:
            raise ValueError(f"train has {n} values; the AR baseline needs at least 5 "
                             f"(max_lag defaults to N // 5); pass a longer training part")
    if int(max_lag) != max_lag or max_lag < 1:
        raise ValueError(f"max_lag must be a positive integer; got {max_lag!r}")
    max_lag = int(max_lag)
    if n < 2 * max_lag + 2:
        raise ValueError(f"train has {n} values, too few to compare AR orders up to "
                         f"{max_lag} (needs {2 * max_lag + 2}); pass a smaller max_lag")
    if train.ndim == 1:
        return _fit_one(train, max_lag, criterion)
    return ColumnwiseAR([_fit_one(train[:, c], max_lag, criterion, f"train column {c}")
                         for c in range(train.shape[1])])


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    """Once per process: a backtest fits the baselines once per fold."""
    log.warning("%s", message)


def baseline_forecasts(train, horizon: int, season: int) -> dict[str, np.ndarray]:
    """``{"naive", "seasonal naive", "AR(p)"}`` forecasts of the ``horizon`` steps after train.

    The AR key carries the chosen order, e.g. ``"AR(9)"`` (``"AR(2..9)"`` when the columns of
    a (N, C) series chose different orders); values have shape (H,) or (H, C).
    """
    train = _series("train", train)
    forecasts = {"naive": naive_forecast(train, horizon),
                 "seasonal naive": seasonal_naive_forecast(train, horizon, season)}
    try:
        model = fit_autoregressive(train)
    except MissingExtraError as error:
        # only this row needs statsmodels: the run, its model and the other rows go on
        _warn_once(f"{error}; the AR(p) row is left out")
        return forecasts
    except (ValueError, np.linalg.LinAlgError) as error:
        # A constant column, too short a series, or statsmodels' likelihood failing on a
        # near-unit-root one (macrodata): the table goes without the AR row, and says why.
        log.warning("the AR baseline could not be fitted (%s); it is left out", error)
        return forecasts
    forecasts[model.label] = model.forecast(train, horizon)
    return forecasts

