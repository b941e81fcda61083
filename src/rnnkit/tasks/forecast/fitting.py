"""Fitting a forecaster: train on the rows before the holdout, then forecast with intervals.

``fit_forecaster`` trains a :class:`~rnnkit.tasks.forecast.model.Forecaster` on windows of the
training rows with the shared :class:`~rnnkit.training.Trainer` (checkpoints, resume, progress,
time budget) and returns a :class:`FittedForecaster`, which forecasts in data units from any
history: point forecasts and a prediction interval of the configured coverage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rnnkit.training import ShuffledBatches, StepOutput, Trainer, atomic_write, load_checkpoint
from rnnkit.training.checkpoint import saved_checkpoint
from rnnkit.training.trainer import RunInterrupted

from .model import Forecaster
from .windows import Scaler, WindowSet

RESIDUALS_FILE = "residual-quantiles.json"


@dataclass
class FittedForecaster:
    """A trained model with everything needed to forecast in data units."""

    model: Forecaster
    scaler: Scaler
    targets: int
    config: object  # the run's ForecastConfig (data, model, train)
    residual_quantiles: np.ndarray | None = None  # (2, H, C) for point models' intervals
    series: dict | None = None  # what it was trained on: source, columns, covariate columns

    def _context(self, rows: np.ndarray) -> torch.Tensor:
        window = self.config.data.window
        if len(rows) < window:
            raise ValueError(f"forecasting needs at least window={window} rows of history; "
                             f"got {len(rows)}: pass the last {window} or more rows before the "
                             f"forecast's start")
        return torch.as_tensor(self.scaler.transform(rows[-window:]), dtype=torch.float32)[None]

    def forecast(self, rows: np.ndarray, horizon: int, future_covariates=None) -> dict:
        """Forecast ``horizon`` steps after history rows (N, F) in data units.

        Returns {"point": (H, C), "lower": (H, C), "upper": (H, C)}; the bounds are the
        ``interval`` prediction interval (Gaussian or quantile output, or the in-sample
        residual quantiles of a point model)."""
        self.model.eval()
        context = self._context(rows)
        covariates = None
        if future_covariates is not None:
            scaled = self.scaler.transform(
                np.concatenate([np.zeros((len(future_covariates), self.targets)),
                                future_covariates], axis=1))[:, self.targets:]
            covariates = torch.as_tensor(scaled, dtype=torch.float32)[None]
        out = self.model.forecast(context, covariates, horizon)[0].double().numpy()  # (H, C, P)
        columns = slice(0, self.targets)
        config = self.model.config
        level = self.config.data.interval
        if config.output == "gaussian":
            from statistics import NormalDist

            point = out[..., 0]
            if config.decoder == "autoregressive":
                paths = self.model.sample_paths(context, covariates, horizon)[:, 0]
                lower, upper = np.quantile(paths.double().numpy(),
                                           [(1 - level) / 2, (1 + level) / 2], axis=0)
            else:
                z = NormalDist().inv_cdf(0.5 + level / 2)
                sigma = np.exp(out[..., 1])
                lower, upper = point - z * sigma, point + z * sigma
        elif config.output == "quantile":
            q = np.asarray(config.quantiles)
            # Separately fitted quantile outputs can cross; sorting them (rearrangement,
            # Chernozhukov et al. 2010) keeps lower <= upper and never worsens the pinball loss.
            out = np.sort(out, axis=-1)
            # 0.5 itself for models trained now (task._check_quantile_interval); the nearest
            # level for older ones
            middle = int(np.argmin(np.abs(q - 0.5)))
            point, lower, upper = out[..., middle], out[..., 0], out[..., -1]
        else:
            point = out[..., 0]
            # bounds for the steps the residuals were measured at (up to the trained horizon),
            # NaN past them
            lower, upper = np.full_like(point, np.nan), np.full_like(point, np.nan)
            if self.residual_quantiles is not None:
                known = min(horizon, self.residual_quantiles.shape[1])
                lower[:known] = point[:known] + self.residual_quantiles[0, :known]
                upper[:known] = point[:known] + self.residual_quantiles[1, :known]
        to_data = lambda v: self.scaler.inverse(v, columns)  # noqa: E731
        return {"point": to_data(point), "lower": to_data(lower), "upper": to_data(upper)}


def _residual_quantiles(fitted: FittedForecaster, rows: np.ndarray,
                        horizon: int) -> np.ndarray | None:
    """Empirical (1-a)/2 and (1+a)/2 quantiles of in-sample H-step errors, in scaled units.

    Point models have no uncertainty of their own; their intervals come from how far their
    forecasts missed on the training rows, per horizon step (optimistic: the model saw them)."""
    window, level = fitted.config.data.window, fitted.config.data.interval
    scaled = fitted.scaler.transform(rows)
    origins = range(window, len(rows) - horizon + 1, max(1, (len(rows) - window) // 64))
    errors = []
    for origin in origins:
        context = torch.as_tensor(scaled[origin - window: origin], dtype=torch.float32)[None]
        future = None
        if fitted.model.covariates:
            future = torch.as_tensor(scaled[origin: origin + horizon, fitted.targets:],
                                     dtype=torch.float32)[None]
        out = fitted.model.forecast(context, future, horizon)[0, ..., 0].double().numpy()
        errors.append(scaled[origin: origin + horizon, : fitted.targets] - out)
    if not errors:
        return None
    return np.quantile(np.stack(errors), [(1 - level) / 2, (1 + level) / 2], axis=0)


def fit_forecaster(config, rows: np.ndarray, targets: int, run_dir: Path, *,
                   resume: bool = False, meta: dict | None = None,
                   notify: Callable[[str], None] = print,
                   resume_hint: Path | None = None) -> FittedForecaster:
    """Train on the rows (N, F) before the holdout; returns the fitted model."""
    data = config.data
    fit_rows = rows[: len(rows) - data.validation] if data.validation else rows
    scaler = Scaler.fit(fit_rows)
    windows = WindowSet(scaler.transform(fit_rows), targets, data.window, data.horizon)
    torch.manual_seed(config.train.seed)
    model = Forecaster(targets, rows.shape[1] - targets, data.horizon, config.model)
    fitted = FittedForecaster(model, scaler, targets, config)
    batches = ShuffledBatches(len(windows), data.batch_size, seed=config.train.seed)
    decoder = config.model.decoder

    def loss_fn(model, index, carry):
        inputs, targets_, mask = windows.batch(index, decoder, data.warmup)
        return StepOutput(model.loss(model(inputs), targets_, mask), None, index.numel())

    probe = torch.arange(len(windows))

    def evaluate(model) -> dict:
        if data.validation:
            # Forecast the validation rows from the end of the fitting rows, in scaled units.
            steps = (data.validation if decoder == "autoregressive"
                     else min(data.validation, data.horizon))
            # The covariates of the validation rows are known inputs (as in the holdout).
            future = (rows[len(fit_rows): len(fit_rows) + steps, targets:]
                      if rows.shape[1] > targets else None)
            out = fitted.forecast(fit_rows, steps, future)
            truth = rows[len(fit_rows): len(fit_rows) + len(out["point"]), :targets]
            mae = float(np.mean(np.abs((out["point"] - truth) / scaler.std[:targets])))
            return {"loss": mae, "validation_mae_scaled": mae}
        inputs, targets_, mask = windows.batch(probe, decoder, data.warmup)
        return {"loss": float(model.loss(model(inputs), targets_, mask)) / len(model.members)}

    trainer = Trainer(model, config.train, batches=batches, loss_fn=loss_fn,
                      evaluate_fn=evaluate, run_dir=run_dir,
                      meta={**(meta or {}), "scaler": scaler.to_dict()}, notify=notify,
                      resume_hint=resume_hint)
    if resume:
        notify(f"resuming from step {trainer.resume(run_dir)}")
    with torch.no_grad():
        # The first call builds the fused kernels (once per machine); done before the clock
        # of a --minutes budget starts. Eval mode draws no random numbers, so resume is exact.
        model.eval()
        model(windows.batch(probe[:1], decoder, data.warmup)[0])
        model.train()
    fitted_run = trainer.fit()
    if fitted_run.status == "interrupted":
        # Ctrl-C: the checkpoint is saved and the user wants out, not a holdout score
        raise RunInterrupted(fitted_run.stop_signal, saved_checkpoint(run_dir, fitted_run.steps),
                             fitted_run)
    which = "best" if data.validation else "last"
    load_checkpoint(run_dir, which=which).load_model(model)
    model.eval()
    if config.model.output == "point":
        fitted.residual_quantiles = _residual_quantiles(fitted, fit_rows, data.horizon)
        if fitted.residual_quantiles is not None:
            # Beside the checkpoints, so `forecast predict` gives the same intervals.
            atomic_write(run_dir / RESIDUALS_FILE,
                         json.dumps(fitted.residual_quantiles.tolist()).encode())
    return fitted


def read_residual_quantiles(path: Path) -> np.ndarray | None:
    """The residual quantiles saved by ``fit_forecaster`` for a run folder or checkpoint."""
    for folder in (path, *path.parents[:3]):
        candidate = folder / RESIDUALS_FILE
        if candidate.is_file():
            try:
                quantiles = np.asarray(json.loads(candidate.read_text()), dtype=np.float64)
            except (ValueError, TypeError) as error:
                raise ValueError(f"{candidate} is damaged ({error}); retrain, or delete it to "
                                 f"forecast without intervals") from None
            if quantiles.ndim != 3 or quantiles.shape[0] != 2:
                raise ValueError(f"{candidate} is damaged (shape {quantiles.shape}, expected "
                                 f"(2, H, C)); retrain, or delete it to forecast without "
                                 f"intervals")
            return quantiles
    return None


