"""Time-series forecasting: train on a series, score a tail holdout beside the baselines.

The last ``holdout`` rows (default: one horizon) are the test part and are never seen in
training: the scaler, the model and the AR(p) baseline are all fitted on the rows before them.
The model then forecasts the holdout from the end of the training part, and MASE (scaled by the
in-sample seasonal-naive error), RMSE and sMAPE are reported for it and for the naive,
seasonal-naive and AR(p) forecasts computed in the same run.
"""

from __future__ import annotations

import csv
import decimal
import io
import logging
import numbers
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rnnkit.data.timeseries import BUILTIN_SERIES, TimeSeries, column_key, load_series
from rnnkit.training import (
    NonFiniteLossError, TrainConfig, atomic_write, config_from_dict,
    cpu_threads, hold_run_folder, load_checkpoint,
)
from rnnkit.training.checkpoint import (check_resumed_settings, data_digest, enclosing_run,
                                         model_shape_keys, reading_record, require_task)
from rnnkit.training.config import check_config_types, make_paths_absolute

from .baselines import baseline_forecasts
from .fitting import FittedForecaster, fit_forecaster, read_residual_quantiles
from .metrics import forecast_metrics, interval_coverage, unscalable_columns
from .model import Forecaster, ModelConfig
from .plot import plot_forecast
from .windows import Scaler, feature_rows

TASK = "forecast"

#: The longest forecast ``predict_forecast`` makes. Past the trained horizon the model feeds its
#: own forecasts back one step at a time, ~0.15 ms per step and ensemble member here (100,000
#: steps of a 5-member ensemble: ~75 s); a much longer request, most likely a typo, would run
#: for hours before it said anything.
MAX_PREDICT_HORIZON = 100_000
#: what a run writes in its folder: the holdout forecast as a table and a picture, and the
#: folds of a rolling-origin backtest
HOLDOUT_FILE, FORECAST_PICTURE, BACKTEST_FOLDER = "holdout.csv", "forecast.png", "backtest"
log = logging.getLogger("rnnkit.tasks")


@dataclass
class DataConfig:
    data: str = "sunspots"  #: a built-in series name or a CSV/TSV/Parquet file
    time_col: str | None = None
    value_cols: list[str] | None = None  #: target columns (default: every numeric column)
    covariate_cols: list[str] | None = None  #: known inputs that are not forecast
    horizon: int = 20  #: H, steps forecast from one origin
    holdout: int | None = None  #: test rows at the end (default: the horizon)
    season: int | None = None  #: seasonal period m for MASE and seasonal naive (default: the series')
    window: int = 40  #: W, context steps per training window
    warmup: int = 20  #: first steps of a window that only build up state (no loss)
    batch_size: int = 16
    validation: int = 0  #: rows before the holdout for model selection; 0: train on all, keep the last weights
    interval: float = 0.8  #: coverage of the prediction intervals

    def check(self) -> None:
        for name in ("horizon", "window", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.warmup < self.window:
            raise ValueError(f"data.warmup must be in [0, window={self.window}); got "
                             f"{self.warmup}: with a --window of {self.window} also lower "
                             f"data.warmup (--set data.warmup={self.window // 2})")
        if self.season is not None and self.season < 1:
            raise ValueError(f"data.season must be >= 1 (or unset for the series' own); got "
                             f"{self.season}")
        if not 0.0 < self.interval < 1.0:
            raise ValueError(f"data.interval must be a coverage in (0, 1); got {self.interval}")
        if self.validation < 0:
            raise ValueError(f"data.validation must be >= 0 (0: no validation part); got "
                             f"{self.validation}")
        if self.holdout is not None and self.holdout < 1:
            raise ValueError(f"data.holdout must be >= 1 (or unset for the horizon); got "
                             f"{self.holdout}")


def _default_train() -> TrainConfig:
    # Measured on sunspots (docs/guide/forecasting.md): 800 small steps of a 16-unit GRU
    # ensemble; more steps overfit the 289 training years. Steps, not minutes, bound the run,
    # so results do not depend on the machine's speed.
    return TrainConfig(learning_rate=3e-3, weight_decay=0.01, warmup_steps=80, max_steps=800,
                       eval_every=200, log_every=50)


@dataclass
class ForecastConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=_default_train)
    #: intra-op CPU threads while training and forecasting (restored afterwards); 0 keeps
    #: torch's. The networks are tiny; see rnnkit.training.threads for why one is the default.
    threads: int = 1


def _as_list(value):
    return [value] if isinstance(value, str) else value


def load_configured_series(config: DataConfig) -> TimeSeries:
    return load_series(config.data, time_col=config.time_col,
                       value_cols=_as_list(config.value_cols),
                       covariate_cols=_as_list(config.covariate_cols))


def holdout_report(series: TimeSeries, fitted: FittedForecaster | None, config: ForecastConfig,
                   train_rows: np.ndarray, label: str, baselines: dict | None = None) -> dict:
    """Metrics of the model and the three baselines on the rows after ``train_rows``.

    ``baselines``: the baseline forecasts of an earlier report on the same rows (their AR fit
    takes about a second), else they are computed here."""
    data = config.data
    targets = series.values.shape[1]
    horizon = min(data.holdout or data.horizon, len(series) - len(train_rows))
    actual = series.values[len(train_rows): len(train_rows) + horizon]
    season = data.season or series.season or 1
    train_values = train_rows[:, :targets]
    forecasts = (dict(baselines) if baselines is not None
                 else baseline_forecasts(train_values, horizon, season))
    out = None
    if fitted is not None:
        future_cov = None
        if fitted.model.covariates:
            future_cov = series.covariates[len(train_rows): len(train_rows) + horizon]
        out = fitted.forecast(train_rows, horizon, future_cov)
        if not np.isfinite(out["point"]).all():
            # a diverged model, not bad data (the metrics would blame the data)
            raise NonFiniteLossError(
                f"{label}'s forecast holds NaN or infinite values: training diverged; lower "
                f"train.learning_rate (--lr) or keep gradient clipping on, and train again")
        forecasts = {label: out["point"], **forecasts}
    table = {}
    for name, values in forecasts.items():
        values = np.asarray(values).reshape(horizon, targets)
        table[name] = forecast_metrics(actual, values, train_values, season)
    if out is not None and np.isfinite(out["lower"]).all():
        table[label]["coverage"] = interval_coverage(actual, out["lower"], out["upper"])
    unscalable = [series.columns[k] for k in unscalable_columns(train_values, season)]
    return {"season": season, "horizon": horizon, "table": table, "actual": actual,
            "forecasts": forecasts, "interval": out, "mase_undefined_for": unscalable}


def _check_quantile_interval(config: ForecastConfig) -> None:
    """A quantile model's interval is its outermost pair of quantiles: data.interval must name
    that pair's coverage, or the plot and the coverage read against it would be mislabelled."""
    if config.model.output != "quantile":
        return
    q = list(config.model.quantiles)
    if 0.5 not in q or q[0] == 0.5 or q[-1] == 0.5:
        # The median is the point forecast, and the outermost pair the interval. Checked for
        # new training only: a model trained before this check still loads (its point is
        # then the level nearest 0.5).
        raise ValueError(f"model.quantiles must hold 0.5 (the point forecast) and levels "
                         f"below and above it (the interval); got {q}")
    low, high = q[0], q[-1]
    wanted = config.data.interval
    if abs(low + high - 1.0) > 1e-9 or abs(high - low - wanted) > 1e-9:
        raise ValueError(
            f"with model.output=quantile the interval is the outermost quantiles ({low:g}, "
            f"{high:g}), not a central {wanted:g} interval; set model.quantiles="
            f"[{(1 - wanted) / 2:g},0.5,{(1 + wanted) / 2:g}] or --interval to match")


def series_meta(series: TimeSeries) -> dict:
    """What a run records of its series; ``sha256`` digests the values, covariates and time
    stamps, so that a resumed run can tell that the file changed under it."""
    return {"source": series.source, "rows": len(series), "columns": series.columns,
            "covariate_columns": series.covariate_columns,
            "sha256": data_digest((series.values, series.covariates, series.time))}


def model_label(config: ForecastConfig) -> str:
    model = config.model
    members = f" x{model.ensemble}" if model.ensemble > 1 else ""
    # the comparison runs with torch.nn's layer (model.implementation=torch) say so
    layer = "torch.nn" if model.implementation == "torch" else "rnnkit"
    return f"{layer} {model.cell.upper()} H={model.hidden_size}{members}"


def future_times(time_stamps: np.ndarray, steps: int) -> np.ndarray:
    """Stamps of the ``steps`` rows after the series: its frequency or calendar step
    continued, else its median spacing."""
    stamps = np.asarray(time_stamps)
    if len(stamps) < 2:
        return np.arange(len(stamps), len(stamps) + steps)
    if np.issubdtype(stamps.dtype, np.datetime64) and len(stamps) >= 3:  # infer_freq's minimum
        import pandas as pd

        recent = pd.DatetimeIndex(stamps[-min(len(stamps), 50):])
        # Calendar steps (months have different lengths) when pandas can name the frequency.
        frequency = pd.infer_freq(recent)
        if frequency is not None:
            return pd.date_range(stamps[-1], periods=steps + 1, freq=frequency)[1:].to_numpy()
        monthly = _monthly_future(recent, steps)
        if monthly is not None:  # monthly with a gap, or on a day pandas has no name for
            return monthly.astype(stamps.dtype)
    spacing = np.median(np.diff(stamps))
    if np.issubdtype(stamps.dtype, np.integer) and float(spacing).is_integer():
        spacing = stamps.dtype.type(spacing)
    future = stamps[-1] + spacing * np.arange(1, steps + 1)
    if np.issubdtype(future.dtype, np.floating):  # 6.0 + 0.1 is 6.1000000000000005
        # to the places the stamps were written with (the spacing, a difference of floats,
        # carries rounding of its own)
        places = max(_decimals(stamp) for stamp in stamps[-50:])
        future = np.array([round(float(value), places) for value in future])
    return future


def _decimals(value) -> int:
    """Decimal places of the shortest text of float ``value`` (6.25: 2, 1600.0: 0)."""
    return max(0, -decimal.Decimal(repr(float(value))).normalize().as_tuple().exponent)


def _monthly_future(stamps, steps: int):
    """The ``steps`` stamps after ``stamps`` (a DatetimeIndex) that fall every m months on one
    day of the month at one time of day, m the median month gap, as datetime64; None for any
    other series.

    The day is the stamps' latest day of the month: a series on the 30th has February on its
    last day (28 or 29), which is that day clipped to the month, and its stamps go on from the
    30th, not from the 28th. All stamps on month ends go on on month ends."""
    import pandas as pd

    months = stamps.year * 12 + stamps.month
    gap = float(np.median(np.diff(months)))
    if len(set(stamps.time)) != 1 or gap < 1 or not gap.is_integer():
        return None
    if stamps.is_month_end.all():
        return np.array([(stamps[-1] + pd.offsets.MonthEnd(int(gap) * k)).to_datetime64()
                         for k in range(1, steps + 1)])
    day = int(stamps.day.max())
    on_day = stamps.day == day
    if not (on_day | (stamps.is_month_end & (stamps.day < day))).all():
        return None
    anchor = stamps[np.flatnonzero(on_day)[-1]]  # the latest stamp on the day itself
    after = int(months[-1] - (anchor.year * 12 + anchor.month))
    # months added to the anchor, so each stamp is clipped to its own month (Feb 28), never
    # carried on from a clipped one
    return np.array([(anchor + pd.DateOffset(months=after + int(gap) * k)).to_datetime64()
                     for k in range(1, steps + 1)])


def _check_same_series(saved: dict | None, series: TimeSeries, run_dir: Path) -> None:
    """A resumed run must train on the series it started on: the same file with other numbers
    refits the scaling and goes on under it, silently (runs that recorded no digest are
    compared by their row counts only)."""
    if not isinstance(saved, dict):
        return
    now = series_meta(series)
    if saved.get("rows") not in (None, now["rows"]):
        change = f"{saved['rows']} rows then, {now['rows']} now"
    elif saved.get("sha256") not in (None, now["sha256"]):
        change = "the same rows, other numbers or time stamps"
    else:
        return
    raise ValueError(f"the series differs from the one the run in {run_dir} was trained on "
                     f"({change}); resume with the same data, or start a new run with --out")


def _check_length(series: TimeSeries, data: DataConfig, holdout: int) -> None:
    needed = holdout + data.validation + data.window + data.horizon
    if len(series) < needed:
        raise ValueError(
            f"the series has {len(series)} rows, fewer than holdout {holdout} + validation "
            f"{data.validation} + window {data.window} + horizon {data.horizon} = {needed}; "
            f"use a shorter --window or --horizon, or a longer series")


def _is_forecast_csv(path: Path) -> bool:
    """Whether ``path`` holds a forecast this module wrote (its header: time, then
    <column>_forecast, ...)."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            header = next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return len(header) >= 2 and header[0] == "time" and header[1].endswith("_forecast")


def _check_replaceable(out: Path) -> None:
    """A forecast replaces an earlier forecast (the same command run again) and its plot, never
    a user's file: an existing CSV must be a forecast, and a PNG beside a new CSV is not ours."""
    picture = out.with_suffix(".png")
    if out.exists() and not (out.is_file() and _is_forecast_csv(out)):
        raise ValueError(f"--out {out} exists and is not a forecast rnnkit wrote; choose a new "
                         f"path (a forecast replaces only an earlier forecast)")
    if picture.exists() and not out.exists():
        raise ValueError(f"--out {out} would replace {picture} with the forecast's plot, and "
                         f"{picture} is not an earlier forecast's; choose another --out")
    if picture.exists() and not picture.is_file():  # checked before the CSV is replaced
        raise ValueError(f"{picture}, where the forecast's plot goes, is a folder; move it or "
                         f"choose another --out")


def stamp_texts(stamps) -> list[str]:
    """Time stamps as text: dates without a time of day where every one is midnight (as a
    series of dates was written), seconds where all are whole; numbers as they are."""
    stamps = np.asarray(stamps)
    if not np.issubdtype(stamps.dtype, np.datetime64):
        return [str(stamp) for stamp in stamps]
    for unit in ("D", "s"):
        if (stamps == stamps.astype(f"datetime64[{unit}]")).all():
            return np.datetime_as_string(stamps, unit=unit).tolist()
    return np.datetime_as_string(stamps).tolist()


def write_forecast_csv(path: Path, stamps, columns: list[str], forecast: dict,
                       actual: np.ndarray | None = None, extra: dict | None = None) -> Path:
    """One row per forecast step: time, then per column the point, lower and upper bounds
    (and the actual value and baselines when known); written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["time"]
    for name in columns:
        header += [f"{name}_forecast", f"{name}_lower", f"{name}_upper"]
        if actual is not None:
            header.append(f"{name}_actual")
        header += [f"{name}_{label}" for label in (extra or {})]
    writer.writerow(header)
    for step, stamp in enumerate(stamp_texts(stamps)):
        row = [stamp]
        for c in range(len(columns)):
            # repr: the shortest text that reads back as the same float (6 significant
            # digits rounded sales of a million to tens)
            row += [repr(float(forecast[key][step, c])) for key in ("point", "lower", "upper")]
            if actual is not None:
                row.append(repr(float(actual[step, c])))
            row += [repr(float(np.asarray(v).reshape(len(stamps), -1)[step, c]))
                    for v in (extra or {}).values()]
        writer.writerow(row)
    atomic_write(path, buffer.getvalue().encode("utf-8"))
    return path


def train_forecast(config: ForecastConfig, run_dir: str | Path, *, resume: bool = False,
                   backtest_folds: int = 0, backtest_step: int | None = None,
                   notify: Callable[[str], None] = print) -> dict:
    """Train on everything but the holdout, then score model and baselines on the holdout.

    With ``backtest_folds`` > 0, also run a rolling-origin backtest (see
    :mod:`rnnkit.tasks.forecast.backtest`): that many earlier origins, ``backtest_step`` rows
    apart (default: the horizon), each with a model trained on the rows before it.
    """
    check_config_types(config)  # a config built in Python: 2.5 failed deep in slicing
    config.train.check()
    for name, value, optional in (("backtest_folds", backtest_folds, False),
                                  ("backtest_step", backtest_step, True)):
        if not (value is None and optional) and (isinstance(value, bool)
                                                 or not isinstance(value, numbers.Integral)):
            # 1.5 trained the whole run, then failed in the backtest's slicing
            raise ValueError(f"{name} must be a whole number; got {value!r}")
    with cpu_threads(config.threads), hold_run_folder(run_dir):
        return _train_forecast(config, Path(run_dir), resume, backtest_folds, backtest_step,
                               notify)


def _train_forecast(config: ForecastConfig, run_dir: Path, resume: bool, backtest_folds: int,
                    backtest_step: int | None, notify: Callable[[str], None]) -> dict:
    data = config.data
    data.check()
    make_paths_absolute(data, "data", builtin=BUILTIN_SERIES)
    config.model.check()
    config.train.check()
    if torch.device(config.train.device).type != "cpu":
        # The ensemble's 16-unit GRUs gain nothing on a GPU, and the windows, forecasts and
        # baselines are NumPy and CPU tensors throughout.
        raise ValueError(f"forecasting runs on the CPU; train.device (--device) is "
                         f"{config.train.device!r}: leave it at 'cpu'")
    if not resume:  # a run trained before these checks still resumes as it was
        _check_quantile_interval(config)
        if config.model.highway > data.window:
            # in training the lags before the window are zeros (the scaled mean), while the
            # autoregressive decoder feeds real ones back: weights that never learned them
            raise ValueError(f"model.highway {config.model.highway} is longer than data.window "
                             f"{data.window}, whose lags before the window the model never "
                             f"sees in training; use --highway {data.window} or less, or a "
                             f"longer --window")
    run_dir = Path(run_dir)
    series = load_configured_series(data)
    holdout = data.holdout or data.horizon
    if config.model.decoder == "direct" and holdout > data.horizon:
        # Checked before training: the direct decoder cannot forecast past its horizon.
        raise ValueError(f"data.holdout {holdout} is longer than data.horizon {data.horizon}, "
                         f"which the direct decoder cannot forecast past; use a holdout <= "
                         f"the horizon or model.decoder=autoregressive")
    _check_length(series, data, holdout)
    if resume:
        # a quantile model's interval is its trained outermost quantiles: it cannot change
        interval = ("interval",) if config.model.output == "quantile" else ()
        last = check_resumed_settings(run_dir, {"data": (data, (
            "data", "time_col", "value_cols", "covariate_cols", "horizon", "holdout", "window",
            "warmup", "batch_size", "validation") + interval),
            # the seed draws the batch order of every epoch after the resumed step
            "train": (config.train, ("seed",)),
            "model": (config.model, model_shape_keys(config.model))},
            builtin=tuple(BUILTIN_SERIES))
        _check_same_series(last.meta.get("series"), series, run_dir)
    rows = feature_rows(series.values, series.covariates)
    train_rows = rows[: len(rows) - holdout]
    label = model_label(config)
    # Everything that can fail after training, tried before it: the baselines and metrics
    # (season, scale) on the holdout, and the backtest's folds.
    if backtest_folds or backtest_step is not None:  # the user's flags first
        from .backtest import check_backtest

        check_backtest(config, series, backtest_folds,
                       data.horizon if backtest_step is None else backtest_step)
    baselines = holdout_report(series, None, config, train_rows, label)["forecasts"]
    meta = {"task": TASK, "config": asdict(config), "series": series_meta(series),
            "title": f"{label} on {data.data}"}
    # The targets named: a column of text numbers ("1,000") is left out of the default choice,
    # and without this line nothing said so.
    shown = ", ".join(series.columns[:6]) + (f" and {len(series.columns) - 6} more"
                                             if len(series.columns) > 6 else "")
    notify(f"series {series.source}: {len(series)} rows, {len(train_rows)} for training, "
           f"last {holdout} held out; forecasting {shown}; {label}, "
           f"{config.model.decoder} decoder")
    start = time.perf_counter()
    fitted = fit_forecaster(config, train_rows, series.values.shape[1], run_dir, resume=resume,
                            meta=meta, notify=notify)
    seconds = time.perf_counter() - start
    report = holdout_report(series, fitted, config, train_rows, label, baselines)
    stamps = series.time[len(train_rows): len(train_rows) + report["horizon"]]
    baselines = {k: v for k, v in report["forecasts"].items() if k != label}
    write_forecast_csv(run_dir / HOLDOUT_FILE, stamps, series.columns, report["interval"],
                       report["actual"], baselines)
    shown = min(len(train_rows), max(5 * report["horizon"], 100))
    picture = None
    try:
        picture = plot_forecast(
            series.time[len(train_rows) - shown: len(train_rows) + report["horizon"]],
            train_rows[-shown:, : series.values.shape[1]], report["actual"], report["interval"],
            run_dir / FORECAST_PICTURE, baselines={k: v for k, v in baselines.items()
                                                 if k.startswith("AR")},
            column_names=series.columns, title=meta["title"], interval=data.interval)
    except ImportError as error:
        log.info("%s", error)
    except OSError as error:  # the picture only: the forecast CSV and checkpoints stand
        log.warning("could not write %s (%s); the run's checkpoints and holdout.csv are saved "
                    "(free that path for the picture next time)",
                    run_dir / FORECAST_PICTURE, error.strerror or error)
    result = {
        "task": TASK, "series": series_meta(series), "holdout": report["horizon"],
        "season": report["season"], "model": label, "table": report["table"],
        "mase_undefined_for": report["mase_undefined_for"],
        "train_seconds": round(seconds, 1), "run_dir": str(run_dir),
        "forecast_png": None if picture is None else str(picture),
        "holdout_csv": str(run_dir / HOLDOUT_FILE), "config": asdict(config),
    }
    if backtest_folds:
        from .backtest import rolling_origin_backtest

        result["backtest"] = rolling_origin_backtest(
            config, series, report, folds=backtest_folds,
            step=data.horizon if backtest_step is None else backtest_step,
            run_dir=run_dir / BACKTEST_FOLDER, label=label, notify=notify, resume_hint=run_dir)
    return result


def load_forecaster(path: str | Path, *, which: str | None = None) -> FittedForecaster:
    """A trained forecaster from a run folder or checkpoint (the weights the run reported)."""
    checkpoint = load_checkpoint(path, which=which or "last")
    require_task(checkpoint, TASK, "a forecaster")
    with reading_record(checkpoint.path):
        config = config_from_dict(ForecastConfig, checkpoint.meta["config"])
    if which is None and config.data.validation:  # the run reported its best checkpoint
        checkpoint = load_checkpoint(path, which="best")
    meta = checkpoint.meta
    with reading_record(checkpoint.path):
        targets = len(meta["series"]["columns"])
        covariates = len(meta["series"]["covariate_columns"])
        scaler = Scaler.from_dict(meta["scaler"])
    model = Forecaster(targets, covariates, config.data.horizon, config.model)
    checkpoint.load_model(model)
    model.eval()
    return FittedForecaster(model, scaler, targets, config,
                            read_residual_quantiles(Path(path)), series=meta["series"])


def _in_trained_order(given: list[str] | None, trained: list[str], flag: str):
    """The columns named with ``flag``, put in the training order where they are the trained
    names in another order: each feeds the model's slot for its name, scaled by its own
    statistics (in the order given, sales went into temp's slot, silently). Other names (a
    file whose columns were renamed) are taken in the order given, as long as no trained
    name stands in another's place."""
    if not given:
        return given
    folded = [column_key(name) for name in trained]  # as load_series matches names
    if sorted(column_key(name) for name in given) == sorted(folded):
        return list(trained)
    for position, name in enumerate(given):
        if column_key(name) in folded and folded.index(column_key(name)) != position:
            raise ValueError(f"{flag} {name!r} is column {position + 1} here but was column "
                             f"{folded.index(column_key(name)) + 1} in training "
                             f"({', '.join(trained)}); give the columns in the training order")
    return given


def predict_forecast(path: str | Path, data: str, *, horizon: int | None = None,
                     out: str | Path | None = None, time_col: str | None = None,
                     value_cols=None, covariate_cols=None) -> dict:
    """Forecast ``horizon`` steps past the end of ``data`` with a trained model.

    The file must have the columns the model was trained on (by default the same names); the
    forecast CSV (and a PNG beside it) are written to ``out``."""
    if horizon is not None and (isinstance(horizon, bool)
                                or not isinstance(horizon, numbers.Integral)):
        # True wrote a 1-row forecast and its PNG, then failed; 2.5 failed in slicing
        raise ValueError(f"horizon must be a whole number from 1 to {MAX_PREDICT_HORIZON}; got "
                         f"{horizon!r}")
    fitted = load_forecaster(path)
    config = fitted.config
    trained = fitted.series
    trained_covariates = list(trained["covariate_columns"] or [])
    value_cols = _in_trained_order(_as_list(value_cols), list(trained["columns"]), "--value-col")
    covariate_cols = _in_trained_order(_as_list(covariate_cols), trained_covariates,
                                       "--covariate-col")
    series = load_series(data, time_col=time_col or config.data.time_col,
                         value_cols=value_cols or trained["columns"],
                         covariate_cols=covariate_cols or (trained_covariates or None))
    horizon = config.data.horizon if horizon is None else horizon
    if not 1 <= horizon <= MAX_PREDICT_HORIZON:
        raise ValueError(f"--horizon must be from 1 to {MAX_PREDICT_HORIZON}; got {horizon}")
    expected = (list(trained["columns"]), list(trained["covariate_columns"] or []))
    given = (list(series.columns), list(series.covariate_columns or []))
    if tuple(map(len, given)) != tuple(map(len, expected)):
        fixes = [f"one {flag} for each of the {len(names)} trained" for flag, names, got in
                 zip(("--value-col", "--covariate-col"), expected, given)
                 if len(names) != len(got)]
        raise ValueError(f"the model was trained on {len(expected[0])} target column(s) "
                         f"{expected[0]} and {len(expected[1])} covariate(s) {expected[1]}; got "
                         f"{given[0]} and {given[1]}; pass {' and '.join(fixes)}, or leave "
                         f"the flag out where the file uses the trained names")
    out = Path(out or "forecast.csv")
    if out.suffix.lower() == ".png":
        raise ValueError(f"--out names the forecast CSV (a PNG is written beside it); got {out}")
    if out.suffix.lower() != ".csv":
        # a typo (--out data.txt, the corpus) would otherwise replace any file
        raise ValueError(f"--out names the forecast CSV file, ending in .csv; got {out}")
    if Path(data).exists() and out.resolve() == Path(data).resolve():
        raise ValueError(f"--out {out} is the input data file; choose another path")
    run = enclosing_run(out)
    if run is not None:
        raise ValueError(f"--out {out} is inside the training run {run}, whose files it could "
                         f"replace; choose a path outside it")
    _check_replaceable(out)
    if fitted.model.covariates and config.model.decoder == "autoregressive":
        raise ValueError("this model's autoregressive decoder needs the covariates' future "
                         "values, which a forecast past the data's end does not have; train "
                         "with model.decoder=direct to forecast with covariates")
    rows = feature_rows(series.values, series.covariates)
    forecast = fitted.forecast(rows, horizon)
    stamps = future_times(series.time, horizon)
    write_forecast_csv(out, stamps, series.columns, forecast)
    shown = min(len(rows), max(5 * horizon, 100))
    picture = None
    try:
        picture = plot_forecast(np.concatenate([series.time[-shown:], stamps]),
                                series.values[-shown:], None, forecast, out.with_suffix(".png"),
                                column_names=series.columns, interval=config.data.interval,
                                title=f"{model_label(config)}: {horizon} steps past {data}")
    except ImportError as error:
        log.info("%s", error)
    # steps whose bounds are numbers: residual intervals reach as far as the horizon the model
    # was trained for, and none are left where the run's residual quantiles were lost
    bounded = np.isfinite(forecast["lower"]).reshape(horizon, -1).all(axis=1)
    interval_steps = int(np.argmin(bounded)) if not bounded.all() else horizon
    return {"task": TASK, "checkpoint": str(path), "data": series.source, "horizon": horizon,
            "csv": str(out), "png": None if picture is None else str(picture),
            "interval": config.data.interval,  # the coverage of the _lower/_upper columns
            "interval_steps": interval_steps,  # the first steps with _lower/_upper numbers
            "forecast": {k: v.tolist() for k, v in forecast.items()},
            "time": stamp_texts(stamps)}
