"""The forecasting network: a recurrent encoder with a direct or an autoregressive decoder.

Shapes: B windows, W context steps, H horizon steps, C target columns, K covariates,
F = C + K input features per step, P outputs per target value (1 for a point forecast, 2 for a
Gaussian (mean, log sigma), Q for Q quantiles). All values are in the scaled space (see
:mod:`rnnkit.tasks.forecast.windows`).

Direct multi-output (``decoder="direct"``): the encoder reads the context and its last state
forecasts all H steps at once,

    h_t = RNN(x_t, h_{t-1}),  t = 1..W           x_t (B, F)
    y_hat = reshape(W_o h_W + b_o)               (B, H, C, P)

Autoregressive (``decoder="autoregressive"``): the same recurrence runs on past the context,
fed its own forecast of the previous step (with the true value during training: teacher
forcing) and the known covariates of that step; one step ahead at a time:

    y_hat_{t+1} = W_o h_t + b_o,   h_{t+1} = RNN([y_{t+1}, u_{t+1}], h_t)

``highway=q`` adds a linear autoregressive path beside the recurrent one (the "highway" of
LSTNet, Lai et al. 2018): each target column's last q values map linearly to its forecast
(to all H steps in the direct decoder, to the next step in the autoregressive one). Neural
networks are insensitive to the scale of their input; the linear path keeps the forecast
tied to the level and amplitude of the recent values.

``ensemble=M`` trains M independently initialized members side by side (the loss is their sum,
so each member's gradient is its own) and forecasts their mean; small series make single
networks high-variance, and averaging members is the standard cure (N-BEATS averages 180).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

import rnnkit
from rnnkit.training.config import MAX_WIDTH, check_model_sizes

_LAYERS = {"rnnkit": {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN},
           "torch": {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}}
DECODERS = ("direct", "autoregressive")
OUTPUTS = ("point", "gaussian", "quantile")


@dataclass
class ModelConfig:
    cell: str = "gru"  #: "gru", "lstm" or "rnn" (Elman, tanh)
    hidden_size: int = 16
    layers: int = 1
    dropout: float = 0.0  #: between stacked layers
    decoder: str = "autoregressive"  #: "direct" (all H steps at once) or "autoregressive"
    output: str = "point"  #: "point", "gaussian" or "quantile" (direct decoder only)
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    loss: str = "l1"  #: point output: "l1" (matches MASE) or "mse"
    highway: int = 0  #: lags of a linear autoregressive path beside the RNN; 0: none
    ensemble: int = 5  #: members averaged in the forecast
    implementation: str = "rnnkit"  #: "rnnkit" or "torch" (torch.nn's layer, for comparison)

    def check(self) -> None:
        for name, allowed in (("cell", tuple(_LAYERS["rnnkit"])), ("decoder", DECODERS),
                              ("output", OUTPUTS), ("loss", ("l1", "mse")),
                              ("implementation", tuple(_LAYERS))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.{name} must be one of {allowed}; got "
                                 f"{getattr(self, name)!r}")
        check_model_sizes(self, widths=("hidden_size",), counts=("layers", "ensemble"))
        if not 0 <= self.highway <= MAX_WIDTH:
            raise ValueError(f"model.highway must be 0..{MAX_WIDTH:,} lags; got {self.highway}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1); got {self.dropout}")
        if self.output == "quantile":
            if self.decoder != "direct":
                raise ValueError("model.output=quantile needs model.decoder=direct (an "
                                 "autoregressive decoder must feed back one value per step); "
                                 "use output=gaussian for intervals with it")
            q = list(self.quantiles)
            if not q or any(not 0.0 < v < 1.0 for v in q) or q != sorted(set(q)):
                raise ValueError(f"model.quantiles must be increasing values in (0, 1); got {q}")

    @property
    def outputs_per_value(self) -> int:
        return {"point": 1, "gaussian": 2, "quantile": len(self.quantiles)}[self.output]


class _Member(nn.Module):
    """One network of the ensemble; see the module docstring for the two decoders."""

    def __init__(self, features: int, targets: int, horizon: int, config: ModelConfig) -> None:
        super().__init__()
        self.config, self.targets, self.horizon = config, targets, horizon
        layer = _LAYERS[config.implementation][config.cell]
        self.rnn = layer(features, config.hidden_size, num_layers=config.layers,
                         dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)
        steps = horizon if config.decoder == "direct" else 1
        self.steps = steps
        self.head = nn.Linear(config.hidden_size, steps * targets * config.outputs_per_value)
        self.highway = nn.Linear(config.highway, steps) if config.highway else None

    def _project(self, hidden: torch.Tensor, recent: torch.Tensor) -> torch.Tensor:
        """hidden (B, N, Hid), recent targets (B, N, q, C) -> (B, N, steps, C, P)."""
        b, n = hidden.shape[:2]
        out = self.head(hidden).view(b, n, self.steps, self.targets, -1)
        if self.highway is not None:
            linear = self.highway(recent.transpose(-1, -2))  # (B, N, C, steps)
            # The linear path moves the location (point, Gaussian mean, every quantile).
            shift = linear.transpose(-1, -2).unsqueeze(-1)
            if self.config.output == "gaussian":
                out = torch.cat([out[..., :1] + shift, out[..., 1:]], dim=-1)
            else:
                out = out + shift
        return out

    def _recent(self, values: torch.Tensor) -> torch.Tensor:
        """Sliding windows of the last q target values ending at every step: (B, N, q, C).

        Steps with fewer than q values before them see zeros (the scaled mean) in front."""
        q = self.config.highway
        padded = F.pad(values, (0, 0, q - 1, 0))
        return padded.unfold(1, q, 1).transpose(-1, -2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (B, N, F) -> (B, N, steps, C, P): the forecast made after every step."""
        hidden, _ = self.rnn(inputs)
        recent = self._recent(inputs[..., : self.targets]) if self.highway is not None else None
        return self._project(hidden, recent)

    def decode(self, context: torch.Tensor, future_covariates: torch.Tensor | None,
               horizon: int, sample: torch.Generator | None = None,
               return_values: bool = False) -> torch.Tensor:
        """Autoregressive decoding from a context (B, W, F): (B, horizon, C, P).

        With a generator and Gaussian output, each step feeds back a draw instead of the mean,
        so a batch of copies of one context yields sample paths; ``return_values`` returns the
        fed-back values (B, horizon, C) instead of the outputs."""
        hidden, state = self.rnn(context)
        # The context's targets and every fed-back value, written in place: growing the history
        # with torch.cat copied it at every step, quadratic in the horizon.
        width = context.size(1)
        history = context.new_empty(context.size(0), width + horizon, self.targets)
        history[:, :width] = context[..., : self.targets]
        steps = []
        for step in range(horizon):
            known = width + step  # values in the history so far
            recent = (self._recent(history[:, max(0, known - self.config.highway):known])
                      if self.highway else None)
            out = self._project(hidden[:, -1:], recent[:, -1:] if recent is not None else None)
            out = out[:, 0, 0]  # (B, C, P)
            steps.append(out)
            value = out[..., 0]
            if sample is not None and self.config.output == "gaussian":
                noise = torch.randn(value.shape, generator=sample, dtype=value.dtype)
                value = value + out[..., 1].exp() * noise
            history[:, known] = value
            if step + 1 < horizon:
                step_input = value
                if future_covariates is not None:
                    step_input = torch.cat([value, future_covariates[:, step]], dim=-1)
                hidden, state = self.rnn(step_input.unsqueeze(1), state)
        if return_values:
            return history[:, width:]
        return torch.stack(steps, dim=1)


class Forecaster(nn.Module):
    """An ensemble of ``config.ensemble`` recurrent forecasters over F = C + K input features.

    ``forward(inputs)`` (B, N, F) -> (M, B, N, steps, C, P): every member's forecast after every
    step, for training; ``forecast(context, ...)`` -> the member-averaged forecast (B, H, C, P).
    """

    def __init__(self, targets: int, covariates: int, horizon: int, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.targets, self.covariates, self.horizon = targets, covariates, horizon
        self.members = nn.ModuleList(
            _Member(targets + covariates, targets, horizon, config) for _ in range(config.ensemble))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(inputs) for member in self.members])

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss of (M, ..., C, P) outputs against (..., C) targets, summed over members.

        Point: |e| (l1) or e^2 (mse); Gaussian: negative log-likelihood; quantile: pinball."""
        config = self.config
        targets = targets.unsqueeze(0).expand(outputs.shape[:-1])
        if config.output == "point":
            error = outputs[..., 0] - targets
            per_value = error.abs() if config.loss == "l1" else error.square()
        elif config.output == "gaussian":
            mean, log_sigma = outputs[..., 0], outputs[..., 1].clamp(-7.0, 7.0)
            per_value = (log_sigma + 0.5 * ((targets - mean) / log_sigma.exp()).square()
                         + 0.5 * math.log(2 * math.pi))
        else:
            levels = outputs.new_tensor(config.quantiles)
            error = targets.unsqueeze(-1) - outputs
            per_value = torch.maximum(levels * error, (levels - 1) * error).mean(-1)
        if mask is not None:
            mask = mask.expand_as(per_value)
            per_member = (per_value * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
        else:
            per_member = per_value.flatten(1).mean(1)
        return per_member.sum()

    @torch.no_grad()
    def forecast(self, context: torch.Tensor, future_covariates: torch.Tensor | None = None,
                 horizon: int | None = None) -> torch.Tensor:
        """Member-averaged forecast after a context (B, W, F): (B, H, C, P) in scaled units.

        Gaussian members are averaged as a moment-matched Gaussian (mean of means, variance of
        the mixture); quantiles are averaged level by level."""
        horizon = horizon or self.horizon
        if self.config.decoder == "direct":
            if horizon > self.horizon:
                raise ValueError(f"this model forecasts {self.horizon} steps at most (direct "
                                 f"decoder); asked for {horizon}")
            outs = torch.stack([m(context)[:, -1, :horizon] for m in self.members])
        else:
            outs = torch.stack([m.decode(context, future_covariates, horizon)
                                for m in self.members])
        if self.config.output != "gaussian":
            return outs.mean(0)
        mean, sigma = outs[..., 0], outs[..., 1].clamp(-7.0, 7.0).exp()
        center = mean.mean(0)
        variance = (sigma.square() + (mean - center).square()).mean(0)
        return torch.stack([center, 0.5 * variance.log()], dim=-1)

    @torch.no_grad()
    def sample_paths(self, context: torch.Tensor, future_covariates: torch.Tensor | None,
                     horizon: int, samples: int = 1000, seed: int = 0) -> torch.Tensor:
        """Sample paths of an autoregressive Gaussian model: (S, B, H, C) in scaled units.

        Each step feeds back a draw from its predicted Gaussian, so the spread grows with the
        horizon as the model's own uncertainty compounds (feeding back the mean and reading
        off each step's sigma would understate it). Draws are split evenly among members."""
        if self.config.decoder != "autoregressive" or self.config.output != "gaussian":
            raise ValueError("sample paths need model.decoder=autoregressive and "
                             "model.output=gaussian")
        generator = torch.Generator().manual_seed(seed)
        per_member = max(1, samples // len(self.members))
        batch = context.size(0)
        repeated = context.repeat_interleave(per_member, dim=0)
        covariates = (None if future_covariates is None
                      else future_covariates.repeat_interleave(per_member, dim=0))
        paths = []
        for member in self.members:
            # The path is the sequence of draws that were fed back (history past the context).
            draws = member.decode(repeated, covariates, horizon, sample=generator,
                                  return_values=True)
            paths.append(draws.view(batch, per_member, horizon, -1).transpose(0, 1))
        return torch.cat(paths, dim=0)
