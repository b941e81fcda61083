"""Rolling-origin backtesting: the holdout score is one draw; several origins show the spread.

Origins step back from the holdout origin ``o_0 = N - holdout`` by ``step`` rows:
``o_k = o_0 - k * step`` for k = 1..folds. At every origin the scaler, the model and the AR(p)
baseline are fitted afresh on the rows before it (re-estimation at each origin, Tashman 2000),
and all forecasts cover as many rows after it as the holdout does (``data.holdout``, or H), so
every fold's metrics are over the same lead times and nothing after an origin leaks into its
forecasts. Fold 0 is the holdout evaluation itself (its model is not trained twice). The summary
is the mean of each metric over the folds, per method.
"""

from __future__ import annotations

import shutil

from pathlib import Path
from typing import Callable

import numpy as np

from rnnkit.data.timeseries import TimeSeries

from .fitting import fit_forecaster
from .windows import feature_rows


def check_backtest(config, series: TimeSeries, folds: int, step: int) -> list[int]:
    """The fold origins (rows before each), or a one-line ValueError: checked before the
    holdout model trains, so that a bad setting does not surface only after it."""
    data = config.data
    # the CLI's flags named beside the settings: the commands are where these come from
    if folds == 0:  # a step given alone: the spacing of a backtest nobody asked for
        raise ValueError("a backtest step (--backtest-step) needs backtest folds (--backtest "
                         "FOLDS, how many origins to space out); add them, or drop the step")
    if folds < 1:
        raise ValueError(f"backtest folds (--backtest) must be >= 1 (0, the default, runs no "
                         f"backtest); got {folds}")
    if step < 1:
        raise ValueError(f"the backtest step (--backtest-step) must be >= 1 rows; got {step}")
    first_origin = len(series) - (data.holdout or data.horizon)
    season = data.season or series.season or 1
    # the model's training windows, and the MASE scale (a season plus one row) of the baselines
    needed = max(data.validation + data.window + data.horizon, season + 1)
    # the earliest origin first: a huge fold count is refused before its list is built
    if first_origin - folds * step < needed:
        raise ValueError(
            f"{folds} backtest folds {step} rows apart need {needed + folds * step} rows before "
            f"the holdout (the earliest fold trains on at least {needed}); the series has "
            f"{first_origin}; use fewer folds or a smaller step")
    return [first_origin - k * step for k in range(1, folds + 1)]


def rolling_origin_backtest(config, series: TimeSeries, holdout_report: dict, *, folds: int,
                            step: int, run_dir: Path, label: str,
                            notify: Callable[[str], None] = print,
                            resume_hint: Path | None = None) -> dict:
    """Per-fold metric tables and their means; ``holdout_report`` is fold 0. Folds train in
    ``run_dir/fold-k``; ``resume_hint`` is the run an interrupted fold tells the user to
    resume."""
    from .task import holdout_report as score  # the same scoring as the holdout

    data = config.data
    origins = check_backtest(config, series, folds, step)
    rows = feature_rows(series.values, series.covariates)
    first_origin = len(rows) - (data.holdout or data.horizon)
    # an origin is named by its last observed time, the forecasts start after it
    tables = [{"origin": str(series.time[first_origin - 1]),
               **_generic(holdout_report["table"])}]
    # Every fold forecasts as many rows as the holdout: errors grow with lead time, so a mean
    # of 25-step and 10-step scores would describe neither.
    span = data.holdout or data.horizon
    for k, origin in enumerate(origins, start=1):
        notify(f"backtest fold {k}/{folds}: origin {series.time[origin - 1]} "
               f"({origin} training rows, up to and including it)")
        end = origin + span  # <= N - step: origins lie at least `step` rows before the holdout's
        fold_series = TimeSeries(
            series.values[:end], series.time[:end], series.columns,
            None if series.covariates is None else series.covariates[:end],
            series.covariate_columns, series.source, series.season)
        fold_dir = run_dir / f"fold-{k}"
        # a fold is retrained whole when its run is resumed: what an interrupted try left
        # (checkpoints, metrics records) would be appended to
        shutil.rmtree(fold_dir, ignore_errors=True)
        fitted = fit_forecaster(config, rows[:origin], series.values.shape[1], fold_dir,
                                notify=notify, resume_hint=resume_hint)
        report = score(fold_series, fitted, config, rows[:origin], label)
        tables.append({"origin": str(series.time[origin - 1]), **_generic(report["table"])})
    methods = [name for name in tables[0] if name != "origin"]
    mean = {}
    for method in methods:
        if not all(method in table for table in tables):
            # a baseline left out of some fold (a degenerate AR fit): a mean over the other
            # folds would not compare with the rest; its folds keep their own scores
            notify(f"backtest: {method} could not be fitted at every origin; it has no mean")
            continue
        keys = [key for key in tables[0][method] if all(key in t[method] for t in tables)]
        mean[method] = {key: float(np.mean([t[method][key] for t in tables])) for key in keys}
    return {"folds": tables, "mean": mean, "step": step}


def _generic(table: dict) -> dict:
    """The AR baseline under one name ("AR(p)", its order per fold in "p"): AIC may pick a
    different order at each origin."""
    out = {}
    for name, metrics in table.items():
        if name.startswith("AR("):
            order = name[3:-1]
            out["AR(p)"] = {**metrics, **({"p": float(order)} if order.isdigit() else {})}
        else:
            out[name] = metrics
    return out
