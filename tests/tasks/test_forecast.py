"""The forecasting task: windows, scaling, the network, training end to end, backtests.

Oracles: explicit Python loops over the scaled rows (windows, masks, losses, the highway's
linear map, the AR(q) recursion it becomes when the recurrent head is zeroed); step-vs-sequence
equality (autoregressive decoding equals ``forward`` over the context extended with the fed-back
forecasts); torch.nn's layers with the same weights; single-member models built from the
ensemble's weights (the ensemble's mean and its moment-matched Gaussian mixture computed by
hand); torch.distributions.Normal's log-density; numpy/statsmodels' own sunspots numbers for
the baselines; an uninterrupted run (a resumed run must equal it); and perturbed copies of the
data (values the model must not see may not change it).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil

import numpy as np
import pytest
import torch

from rnnkit.data.timeseries import SeriesError, TimeSeries, load_series
from rnnkit.tasks.forecast.backtest import rolling_origin_backtest
from rnnkit.tasks.forecast.fitting import FittedForecaster
from rnnkit.tasks.forecast.metrics import forecast_metrics
from rnnkit.tasks.forecast.model import Forecaster, ModelConfig
from rnnkit.tasks.forecast.task import (
    DataConfig, ForecastConfig, load_forecaster, model_label, predict_forecast, train_forecast,
)
from rnnkit.tasks.forecast.windows import Scaler, WindowSet, feature_rows
from rnnkit.training import config_from_dict, load_checkpoint

from one_line import one_line_value_error
from pictures import PLOTTING, assert_picture
from tolerances import assert_close

pytestmark = pytest.mark.usefixtures("single_thread")

needs_statsmodels = pytest.mark.skipif(importlib.util.find_spec("statsmodels") is None,
                                       reason="statsmodels is not installed")

# Tiny settings: a 4-unit GRU, short windows, a few dozen steps. Constant learning rate after
# the warmup, so that a run of N/2 steps resumed to N follows the same schedule as N at once
# (cosine decay is a function of step / max_steps and would differ between the two).
TINY = {"data": {"horizon": 5, "window": 12, "warmup": 4, "batch_size": 16},
        "model": {"hidden_size": 4, "ensemble": 2, "highway": 3},
        "train": {"max_steps": 30, "eval_every": 15, "log_every": 5, "warmup_steps": 3,
                  "learning_rate": 1e-2, "decay": "constant", "progress": False}}
HORIZON = 5


def make_config(data=None, model=None, train=None) -> ForecastConfig:
    return config_from_dict(ForecastConfig, {
        "data": {**TINY["data"], **(data or {})}, "model": {**TINY["model"], **(model or {})},
        "train": {**TINY["train"], **(train or {})}})


def quiet(_line: str) -> None:
    pass


def read_csv(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


# ---- 1. windows ---------------------------------------------------------------------------------

def loop_batch(rows: np.ndarray, index, c: int, w: int, h: int, decoder: str, warmup: int):
    """The training tensors built element by element from the scaled rows."""
    inputs, targets, mask = [], [], []
    for i in index:
        window = rows[i: i + w + h]
        steps = w if decoder == "direct" else w + h - 1
        ahead = h if decoder == "direct" else 1
        inputs.append([list(window[t]) for t in range(steps)])
        targets.append([[list(window[t + 1 + k][:c]) for k in range(ahead)]
                        for t in range(steps)])
        mask.append([[[0.0 if t < warmup else 1.0] for _ in range(ahead)]
                     for t in range(steps)])
    return (torch.tensor(inputs, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32),
            torch.tensor(mask, dtype=torch.float32))


@pytest.mark.parametrize("decoder", ["direct", "autoregressive"])
def test_window_batches_equal_an_explicit_loop(decoder):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(23, 3)) * [1.0, 10.0, 0.1] + [5.0, -2.0, 0.0]
    scaled = (raw - raw.mean(axis=0)) / raw.std(axis=0)  # independent of Scaler
    c, w, h, warmup = 2, 6, 3, 2
    windows = WindowSet(Scaler.fit(raw).transform(raw), c, w, h)
    assert len(windows) == 23 - (w + h) + 1
    index = torch.tensor([0, 7, 14, 3])
    got = windows.batch(index, decoder, warmup)
    want = loop_batch(scaled, index.tolist(), c, w, h, decoder, warmup)
    for name, g, e in zip(("inputs", "targets", "mask"), got, want):
        assert g.shape == e.shape, name
        assert_close(g, e, what=name)
    assert got[2][:, :warmup].sum() == 0 and got[2][:, warmup:].min() == 1


def test_too_short_series_is_a_one_line_error():
    WindowSet(np.zeros((9, 2)), 1, 6, 3)  # exactly one window is enough
    one_line_value_error(WindowSet, np.zeros((8, 2)), 1, 6, 3,
                         match=r"8 rows, fewer than one window of context 6 \+ horizon 3 = 9")


# ---- 2. scaler ----------------------------------------------------------------------------------

def test_scaler_round_trips_and_keeps_a_constant_column_finite():
    rng = np.random.default_rng(1)
    rows = np.column_stack([rng.normal(50, 20, 40), np.full(40, 7.0), rng.normal(size=40)])
    scaler = Scaler.fit(rows)
    np.testing.assert_allclose(scaler.mean, rows.mean(axis=0))
    np.testing.assert_allclose(scaler.std, [rows[:, 0].std(), 1.0, rows[:, 2].std()])
    z = scaler.transform(rows)
    assert np.isfinite(z).all() and np.all(z[:, 1] == 0)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(z), rows, rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse(z[:, :2], slice(0, 2)), rows[:, :2], rtol=1e-12)
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.std, scaler.std)


@pytest.mark.parametrize("constant", [0.1, 1.0, 1e-9, 123456.789])
def test_a_constant_column_scales_to_exactly_zero_whatever_its_value(constant):
    """115 rows of 0.1 have a mean of 0.10000000000000002 and a std of ~1e-16 that the
    ``std > 0`` guard let through: a covariate of 0.11 became 4.5e13 (found by fuzzing,
    2026-12-06). Oracle: a constant column carries no information, so it scales to 0 and a
    nearby value to its difference (scale 1)."""
    rows = np.column_stack([np.arange(115.0), np.full(115, constant)])
    scaler = Scaler.fit(rows)
    assert scaler.std[1] == 1.0
    z = scaler.transform(np.array([[0.0, constant], [0.0, constant * 1.1]]))
    np.testing.assert_allclose(z[:, 1], [0.0, constant * 0.1], atol=1e-12)


def test_a_spread_whose_squares_underflow_is_scaled_as_constant():
    # 0 and 1e-200 differ, but their std is exactly 0: (x - mean) / 0 gave inf and a NaN
    # gradient blamed on the learning rate (review, 2026-12-06). Oracle: finite, and a constant.
    rows = np.column_stack([np.arange(10.0), np.tile([0.0, 1e-200], 5)])
    scaler = Scaler.fit(rows)
    assert scaler.std[1] == 1.0
    assert np.isfinite(scaler.transform(rows)).all()


# ---- 3. the network -----------------------------------------------------------------------------

def model_config(**settings) -> ModelConfig:
    return ModelConfig(**{"hidden_size": 4, "ensemble": 1, "highway": 3, **settings})


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("highway", [0, 3])
def test_autoregressive_decode_equals_forward_over_the_fed_back_sequence(cell, highway):
    torch.manual_seed(0)
    c, k, h = 2, 1, 5
    model = Forecaster(c, k, h, model_config(cell=cell, highway=highway,
                                             decoder="autoregressive")).eval()
    member = model.members[0]
    for context_length in (2, 7):  # shorter and longer than the highway's q = 3 lags
        context = torch.randn(3, context_length, c + k)
        future = torch.randn(3, 8, k)
        got = model.forecast(context, future)
        assert got.shape == (3, h, c, 1)
        sequence, steps = context, []
        with torch.no_grad():
            for step in range(8):
                value = member(sequence)[:, -1, 0, :, 0]  # (B, C): forecast of the next row
                steps.append(value)
                row = torch.cat([value, future[:, step]], dim=-1)
                sequence = torch.cat([sequence, row[:, None]], dim=1)
        want = torch.stack(steps, dim=1)[..., None]
        assert_close(got, want[:, :h], what=f"decode, context {context_length}")
        # Past the trained horizon too: the decoder just keeps going.
        assert_close(model.forecast(context, future, horizon=8), want, what="horizon 8")


def test_highway_is_a_linear_map_of_the_last_q_values():
    torch.manual_seed(1)
    c, q, h = 2, 4, 3
    direct = Forecaster(c, 0, h, model_config(decoder="direct", highway=q)).eval()
    autoregressive = Forecaster(c, 0, h, model_config(decoder="autoregressive", highway=q)).eval()
    for model in (direct, autoregressive):
        with torch.no_grad():  # silence the recurrent path: only the linear one is left
            model.members[0].head.weight.zero_()
            model.members[0].head.bias.zero_()
    for length in (6, 2):  # with fewer than q values the missing lags are zeros (the mean)
        context = torch.randn(2, length, c)
        weight = direct.members[0].highway.weight.detach()  # (H, q)
        bias = direct.members[0].highway.bias.detach()
        want = torch.zeros(2, h, c)
        for b in range(2):
            for step in range(h):
                for col in range(c):
                    total = float(bias[step])
                    for j in range(q):  # weight column j multiplies the value at W - q + j
                        t = length - q + j
                        if t >= 0:
                            total += float(weight[step, j]) * float(context[b, t, col])
                    want[b, step, col] = total
        assert_close(direct.forecast(context)[..., 0], want, what=f"direct, W={length}")
        # Autoregressive: one step of the same map, fed back, is an AR(q) recursion.
        weight = autoregressive.members[0].highway.weight.detach()[0]  # (q,)
        bias = float(autoregressive.members[0].highway.bias.detach()[0])
        want = torch.zeros(2, h, c)
        for b in range(2):
            for col in range(c):
                history = [0.0] * q + [float(v) for v in context[b, :, col]]
                for step in range(h):
                    value = bias + sum(float(weight[j]) * history[len(history) - q + j]
                                       for j in range(q))
                    history.append(value)
                    want[b, step, col] = value
        assert_close(autoregressive.forecast(context)[..., 0], want, what=f"AR, W={length}")


@pytest.mark.parametrize("output, per_value", [("point", 1), ("gaussian", 2), ("quantile", 3)])
def test_direct_decoder_shape_and_forecast_is_the_last_step_of_forward(output, per_value):
    torch.manual_seed(2)
    model = Forecaster(2, 1, 4, model_config(decoder="direct", output=output)).eval()
    inputs = torch.randn(3, 6, 3)
    with torch.no_grad():
        every_step = model(inputs)
    assert every_step.shape == (1, 3, 6, 4, 2, per_value)  # (M, B, N, H, C, P)
    got = model.forecast(inputs)
    assert got.shape == (3, 4, 2, per_value)
    last = every_step[0, :, -1]
    if output == "gaussian":  # one member: the mixture is the member (log sigma clamped)
        last = torch.stack([last[..., 0], last[..., 1].clamp(-7, 7)], dim=-1)
    assert_close(got, last)
    assert_close(model.forecast(inputs, horizon=2), last[:, :2])
    one_line_value_error(model.forecast, inputs, horizon=5, match="4 steps at most")


def single_members(model: Forecaster, targets: int, covariates: int, horizon: int,
                   config: ModelConfig) -> list[Forecaster]:
    """One one-member Forecaster per member of ``model``, holding that member's weights."""
    singles = []
    for i in range(len(model.members)):
        single = Forecaster(targets, covariates, horizon,
                            ModelConfig(**{**config.__dict__, "ensemble": 1})).eval()
        prefix = f"members.{i}."
        single.load_state_dict({"members.0." + key[len(prefix):]: value
                                for key, value in model.state_dict().items()
                                if key.startswith(prefix)})
        singles.append(single)
    return singles


@pytest.mark.parametrize("decoder, output", [("direct", "point"), ("direct", "quantile"),
                                             ("autoregressive", "point")])
def test_ensemble_forecast_is_the_mean_of_the_members(decoder, output):
    torch.manual_seed(3)
    config = model_config(decoder=decoder, output=output, ensemble=3)
    model = Forecaster(2, 1, 4, config).eval()
    context, future = torch.randn(2, 7, 3), torch.randn(2, 4, 1)
    members = [s.forecast(context, future) for s in single_members(model, 2, 1, 4, config)]
    assert not torch.allclose(members[0], members[1])  # independently initialized
    assert_close(model.forecast(context, future), sum(members) / 3)


@pytest.mark.parametrize("decoder", ["direct", "autoregressive"])
def test_gaussian_ensemble_is_the_moment_matched_mixture(decoder):
    torch.manual_seed(4)
    config = model_config(decoder=decoder, output="gaussian", ensemble=3)
    model = Forecaster(1, 0, 4, config).eval()
    context = torch.randn(2, 7, 1)
    members = [s.forecast(context) for s in single_members(model, 1, 0, 4, config)]
    means = torch.stack([m[..., 0] for m in members]).double()
    sigmas = torch.stack([m[..., 1] for m in members]).double().exp()
    center = means.mean(0)
    # Law of total variance: E[X^2] - E[X]^2 of the equal-weight mixture.
    variance = (sigmas ** 2 + means ** 2).mean(0) - center ** 2
    got = model.forecast(context).double()
    torch.testing.assert_close(got[..., 0], center, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close((2 * got[..., 1]).exp(), variance, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("decoder", ["direct", "autoregressive"])
def test_torch_and_rnnkit_implementations_give_the_same_forecast(cell, decoder):
    torch.manual_seed(5)
    ours = Forecaster(2, 1, 3, model_config(cell=cell, decoder=decoder, layers=2)).eval()
    theirs = Forecaster(2, 1, 3, model_config(cell=cell, decoder=decoder, layers=2,
                                              implementation="torch")).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    context, future = torch.randn(3, 6, 3), torch.randn(3, 3, 1)
    assert_close(ours.forecast(context, future), theirs.forecast(context, future))
    with torch.no_grad():
        assert_close(ours(context), theirs(context))


def loss_setup(output: str, loss: str = "l1"):
    torch.manual_seed(6)
    m, b, n, steps, c = 2, 3, 4, 2, 2
    quantiles = [0.1, 0.5, 0.8]
    model = Forecaster(c, 0, steps, model_config(decoder="direct", output=output, loss=loss,
                                                 ensemble=m, quantiles=quantiles))
    p = model.config.outputs_per_value
    outputs = torch.randn(m, b, n, steps, c, p, dtype=torch.float64)
    targets = torch.randn(b, n, steps, c, dtype=torch.float64)
    mask = (torch.rand(b, n, steps, 1) > 0.4).double()
    mask[0, 0, 0, 0] = 1.0
    return model, outputs, targets, mask, quantiles


def masked_mean_per_member(value_of, outputs, targets, mask):
    """sum over members of (sum of masked per-value losses / number of unmasked values)."""
    m, b, n, steps, c = outputs.shape[:5]
    total = 0.0
    for member in range(m):
        loss, count = 0.0, 0.0
        for i in range(b):
            for t in range(n):
                for s in range(steps):
                    for col in range(c):
                        weight = float(mask[i, t, s, 0]) if mask is not None else 1.0
                        loss += weight * value_of(outputs[member, i, t, s, col],
                                                  float(targets[i, t, s, col]))
                        count += weight
        total += loss / count
    return total


@pytest.mark.parametrize("loss", ["l1", "mse"])
@pytest.mark.parametrize("masked", [True, False])
def test_point_loss_equals_a_loop(loss, masked):
    model, outputs, targets, mask, _ = loss_setup("point", loss)
    mask = mask if masked else None
    value = (lambda o, t: abs(float(o[0]) - t)) if loss == "l1" else \
        (lambda o, t: (float(o[0]) - t) ** 2)
    want = masked_mean_per_member(value, outputs, targets, mask)
    assert float(model.loss(outputs, targets, mask)) == pytest.approx(want, rel=1e-10)


def test_gaussian_loss_is_the_negative_normal_log_density():
    model, outputs, targets, mask, _ = loss_setup("gaussian")
    outputs[..., 1] = outputs[..., 1].clamp(-3, 3)  # inside the clamp at +-7
    nll = -torch.distributions.Normal(outputs[..., 0], outputs[..., 1].exp()).log_prob(
        targets.unsqueeze(0).expand(outputs.shape[:-1]))
    per_member = (nll * mask).flatten(1).sum(1) / (mask.sum() * nll.shape[-1])
    assert float(model.loss(outputs, targets, mask)) == pytest.approx(float(per_member.sum()),
                                                                      rel=1e-10)


def test_quantile_loss_is_the_pinball_formula():
    model, outputs, targets, mask, levels = loss_setup("quantile")

    def pinball(o, t):
        total = 0.0
        for j, q in enumerate(levels):
            error = t - float(o[j])
            total += q * error if error >= 0 else (q - 1) * error
        return total / len(levels)

    want = masked_mean_per_member(pinball, outputs, targets, mask)
    assert float(model.loss(outputs, targets, mask)) == pytest.approx(want, rel=1e-10)


def constant_forecaster(output: str, per_step: list[float], interval: float = 0.8):
    """A direct one-target forecaster whose scaled output is ``per_step`` at every step (the
    recurrent head's weights zeroed, no highway), in data units through mean 10 and std 3."""
    config = make_config(data={"window": 4, "horizon": 3, "warmup": 1, "interval": interval},
                         model={"decoder": "direct", "output": output, "highway": 0,
                                "ensemble": 1})
    model = Forecaster(1, 0, 3, config.model).eval()
    with torch.no_grad():
        model.members[0].head.weight.zero_()
        model.members[0].head.bias.copy_(torch.tensor(per_step * 3))
    return FittedForecaster(model, Scaler(np.array([10.0]), np.array([3.0])), 1, config)


def test_gaussian_interval_in_data_units():
    fitted = constant_forecaster("gaussian", [0.5, math.log(2.0)], interval=0.8)
    out = fitted.forecast(np.zeros((6, 1)), 3)
    z = 1.2815515655446004  # the standard normal's 0.9 quantile
    np.testing.assert_allclose(out["point"], 11.5, rtol=1e-6)  # 10 + 3 * 0.5
    np.testing.assert_allclose(out["lower"], 11.5 - z * 6.0, rtol=1e-6)  # sigma 3 * 2
    np.testing.assert_allclose(out["upper"], 11.5 + z * 6.0, rtol=1e-6)


def autoregressive_gaussian(mean: float, log_sigma: float, interval: float = 0.8):
    """An autoregressive Gaussian forecaster whose every step predicts N(mean, e^log_sigma) in
    scaled units whatever it is fed (recurrent head zeroed, no highway); data mean 10, std 3."""
    config = make_config(data={"window": 4, "horizon": 3, "warmup": 1, "interval": interval},
                         model={"decoder": "autoregressive", "output": "gaussian",
                                "highway": 0, "ensemble": 2})
    model = Forecaster(1, 0, 3, config.model).eval()
    with torch.no_grad():
        for member in model.members:
            member.head.weight.zero_()
            member.head.bias.copy_(torch.tensor([mean, log_sigma]))
    return FittedForecaster(model, Scaler(np.array([10.0]), np.array([3.0])), 1, config)


def test_sample_paths_are_draws_of_the_predicted_gaussians():
    # Each step's distribution is N(0.5, 2^2) whatever was fed back, so the paths are i.i.d.
    fitted = autoregressive_gaussian(0.5, math.log(2.0))
    paths = fitted.model.sample_paths(torch.zeros(1, 4, 1), None, 6, samples=20000, seed=1)
    assert paths.shape == (20000, 1, 6, 1)
    draws = paths.double().numpy().ravel()
    assert abs(draws.mean() - 0.5) < 4 * 2.0 / math.sqrt(draws.size)
    assert draws.std() == pytest.approx(2.0, rel=0.02)
    # The interval in data units: 10 + 3 * (0.5 +- z * 2), within Monte Carlo error.
    out = fitted.forecast(np.zeros((6, 1)), 3)
    z = 1.2815515655446004
    np.testing.assert_allclose(out["point"], 11.5, rtol=1e-6)
    np.testing.assert_allclose(out["lower"], 11.5 - 6.0 * z, atol=1.0)
    np.testing.assert_allclose(out["upper"], 11.5 + 6.0 * z, atol=1.0)


def test_sample_paths_without_noise_follow_the_mean_forecast():
    # A trained-looking model (random weights) with sigma ~ 0: every path is the decode.
    config = make_config(model={"decoder": "autoregressive", "output": "gaussian",
                                "ensemble": 1, "highway": 3})
    torch.manual_seed(0)
    model = Forecaster(1, 0, HORIZON, config.model).eval()
    with torch.no_grad():
        model.members[0].head.weight[1].zero_()
        model.members[0].head.bias[1] = -30.0  # log sigma: e^-30 is no noise at float32
    context = torch.randn(2, 12, 1)
    paths = model.sample_paths(context, None, HORIZON, samples=4, seed=0)
    mean = model.forecast(context, None, HORIZON)[..., 0]
    for path in paths:
        assert_close(path, mean, torch.float32)


def test_crossing_quantile_outputs_are_sorted_into_an_interval():
    # Levels 0.1, 0.5, 0.9 with outputs 1, 0, -1: crossed, as early in training.
    fitted = constant_forecaster("quantile", [1.0, 0.0, -1.0])
    out = fitted.forecast(np.zeros((6, 1)), 3)
    np.testing.assert_allclose(out["lower"], 7.0)
    np.testing.assert_allclose(out["point"], 10.0)
    np.testing.assert_allclose(out["upper"], 13.0)
    one_line_value_error(fitted.forecast, np.zeros((3, 1)), 3, match="at least window=4 rows")


# ---- 4. config errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("settings, match", [
    ({"output": "quantile", "decoder": "autoregressive"}, "needs model.decoder=direct"),
    ({"output": "quantile", "decoder": "direct", "quantiles": [0.5, 0.1]}, "increasing"),
    ({"output": "quantile", "decoder": "direct", "quantiles": [0.1, 1.0]}, "increasing"),
    ({"output": "quantile", "decoder": "direct", "quantiles": [0.5, 0.5]}, "increasing"),
    ({"output": "quantile", "decoder": "direct", "quantiles": []}, "increasing"),
    ({"cell": "transformer"}, "model.cell must be one of"),
    ({"decoder": "seq2seq"}, "model.decoder must be one of"),
    ({"output": "median"}, "model.output must be one of"),
    ({"loss": "huber"}, "model.loss must be one of"),
    ({"implementation": "jax"}, "model.implementation must be one of"),
    ({"hidden_size": 0}, "model.hidden_size must be >= 1"),
    ({"ensemble": 0}, "model.ensemble must be >= 1"),
    ({"layers": 0}, "model.layers must be >= 1"),
    # a stack or ensemble this large was built member by member until memory ran out
    ({"ensemble": 10**12}, "model.ensemble must be at most 1,024; got 1,000,000,000,000"),
    ({"layers": 1025}, "model.layers must be at most 1,024"),
    ({"hidden_size": 2**63}, "model.hidden_size must be at most 2,147,483,647"),
    ({"highway": -1}, "model.highway must be 0..2,147,483,647 lags"),
    # past 2**63 torch failed with "Overflow when unpacking long long"
    ({"highway": 2**63}, "model.highway must be 0..2,147,483,647 lags; got 9223372036854775808"),
    ({"dropout": 1.0}, r"model.dropout must be in \[0, 1\)"),
])
def test_model_config_errors_are_one_line(settings, match):
    one_line_value_error(ModelConfig(**settings).check, match=match)
    one_line_value_error(Forecaster, 1, 0, 3, ModelConfig(**settings), match=match)


@pytest.mark.parametrize("settings, match", [
    ({"warmup": 12, "window": 12}, r"data.warmup must be in \[0, window=12\)"),
    ({"horizon": 0}, "data.horizon must be >= 1"),
    ({"interval": 1.0}, "data.interval must be a coverage"),
    ({"validation": -1}, r"data.validation must be >= 0 \(0: no validation part\); got -1"),
    ({"holdout": 0}, r"data.holdout must be >= 1 \(or unset for the horizon\); got 0"),
])
def test_data_config_errors_are_one_line(settings, match):
    one_line_value_error(DataConfig(**settings).check, match=match)


@pytest.mark.parametrize("quantiles, interval, match", [
    ([0.1, 0.5, 0.9], 0.5, "the interval is the outermost quantiles"),
    ([0.1, 0.5, 0.95], 0.85, "the interval is the outermost quantiles"),
    # no median: the 0.1 quantile was reported and scored as the point forecast
    ([0.1, 0.9], 0.8, "must hold 0.5"),
    ([0.5, 0.9], 0.8, "below and above"),
])
def test_a_quantile_model_needs_a_median_and_the_interval_of_its_outer_pair(
        tmp_path, quantiles, interval, match):
    """The bounds are the outermost quantiles whatever --interval said; the plot was labelled
    with --interval and coverage read against it. Checked when training starts only: a model
    trained before (without 0.5) still builds, so its checkpoints load."""
    config = make_config(data={"interval": interval},
                         model={"output": "quantile", "decoder": "direct",
                                "quantiles": quantiles})
    one_line_value_error(train_forecast, config, tmp_path / "run", notify=quiet, match=match)
    assert not (tmp_path / "run").exists()
    Forecaster(1, 0, 3, config.model)


def test_direct_decoder_with_a_holdout_past_its_horizon_fails_before_training(tmp_path):
    config = make_config(data={"holdout": 8}, model={"decoder": "direct"})
    one_line_value_error(train_forecast, config, tmp_path / "run", notify=quiet,
                         match="cannot forecast past")
    assert not (tmp_path / "run").exists()


# ---- 5. end to end on sunspots ------------------------------------------------------------------

BACKTEST_STEP = 7  # > horizon: an earlier fold's origin + H lies inside a later fold's training


@pytest.fixture(scope="module")
def sunspots_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("forecast") / "run"
    config = make_config()
    result = train_forecast(config, run_dir, backtest_folds=2, backtest_step=BACKTEST_STEP,
                            notify=quiet)
    return config, run_dir, result


@pytest.fixture(scope="module")
def sunspots_values():
    return load_series("sunspots").values[:, 0]


def train_records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@needs_statsmodels
def test_table_has_the_model_and_baselines_with_independent_naive_mase(sunspots_run):
    import statsmodels.api as sm

    _, _, result = sunspots_run
    values = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)
    train, test = values[:-HORIZON], values[-HORIZON:]
    names = list(result["table"])
    assert names[:3] == ["rnnkit GRU H=4 x2", "naive", "seasonal naive"]
    assert len(names) == 4 and names[3].startswith("AR(")
    assert result["model"] == names[0] and result["season"] == 11
    assert result["holdout"] == HORIZON
    scale = np.mean(np.abs(train[11:] - train[:-11]))
    naive = np.mean(np.abs(test - train[-1])) / scale
    seasonal = np.mean(np.abs(test - train[len(train) - 11 + np.arange(HORIZON) % 11])) / scale
    assert result["table"]["naive"]["mase"] == pytest.approx(naive, rel=1e-12)
    assert result["table"]["seasonal naive"]["mase"] == pytest.approx(seasonal, rel=1e-12)
    assert all(math.isfinite(m["mase"]) for m in result["table"].values())


@needs_statsmodels
def test_training_loss_decreases(sunspots_run):
    _, run_dir, _ = sunspots_run
    losses = [r["loss"] for r in train_records(run_dir) if r["split"] == "train"]
    assert len(losses) == 30 // 5
    assert losses[-1] < 0.8 * losses[0]


@needs_statsmodels
def test_holdout_csv_and_plot_hold_the_reported_forecast(sunspots_run, sunspots_values):
    config, run_dir, result = sunspots_run
    assert result["forecast_png"] == (str(run_dir / "forecast.png") if PLOTTING else None)
    assert_picture(run_dir / "forecast.png")
    rows = read_csv(result["holdout_csv"])
    assert [r["time"] for r in rows] == [str(y) for y in range(2004, 2009)]
    column = lambda key: np.array([float(r[f"SUNACTIVITY_{key}"]) for r in rows])  # noqa: E731
    train, test = sunspots_values[:-HORIZON], sunspots_values[-HORIZON:]
    np.testing.assert_allclose(column("actual"), test, rtol=1e-6)
    np.testing.assert_allclose(column("naive"), train[-1], rtol=1e-6)
    fitted = load_forecaster(run_dir)
    out = fitted.forecast(train[:, None], HORIZON)
    np.testing.assert_allclose(column("forecast"), out["point"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(column("lower"), out["lower"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(column("upper"), out["upper"][:, 0], rtol=1e-5)
    # The table's MASE is that of the CSV's forecast column, written exactly.
    mase = forecast_metrics(test, column("forecast"), train, 11)["mase"]
    assert result["table"][result["model"]]["mase"] == mase


def test_future_time_stamps_continue_the_series():
    """Two dates reached pd.infer_freq, which needs three, and raised a bare pandas error
    (forecast predict with --window 2). Oracle: stamps written by hand."""
    from rnnkit.tasks.forecast.task import future_times

    days = np.array(["2024-01-01", "2024-01-03"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(
        future_times(days, 2), np.array(["2024-01-05", "2024-01-07"], dtype="datetime64[ns]"))
    months = np.array(["2024-01-31", "2024-02-29", "2024-03-31"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(  # calendar months, not the median spacing of 31 days
        future_times(months, 2), np.array(["2024-04-30", "2024-05-31"], dtype="datetime64[ns]"))
    np.testing.assert_array_equal(future_times(np.array([1990, 1992, 1994]), 2), [1996, 1998])


def test_the_forecast_csv_holds_every_value_exactly(tmp_path):
    """Values were written with 6 significant digits: 1999624.62 became 1999620."""
    from rnnkit.tasks.forecast.task import write_forecast_csv

    values = np.array([[1999624.62], [-0.000123456789], [3.0]])
    forecast = {"point": values, "lower": values - 1, "upper": values + 1}
    write_forecast_csv(tmp_path / "f.csv", [1, 2, 3], ["y"], forecast, actual=values * 2,
                       extra={"naive": values[::-1]})
    rows = read_csv(tmp_path / "f.csv")
    for key, expected in (("forecast", values), ("lower", values - 1), ("upper", values + 1),
                          ("actual", values * 2), ("naive", values[::-1])):
        assert [float(r[f"y_{key}"]) for r in rows] == expected[:, 0].tolist(), key


@needs_statsmodels
def test_loaded_forecaster_reproduces_the_holdout_forecast_exactly(sunspots_run,
                                                                    sunspots_values):
    _, run_dir, result = sunspots_run
    train, test = sunspots_values[:-HORIZON], sunspots_values[-HORIZON:]
    out = load_forecaster(run_dir).forecast(train[:, None], HORIZON)
    metrics = forecast_metrics(test, out["point"][:, 0], train, 11)
    reported = result["table"][result["model"]]
    for key in ("mase", "rmse", "smape", "mae"):
        assert reported[key] == metrics[key], key
    inside = (out["lower"][:, 0] <= test) & (test <= out["upper"][:, 0])
    assert reported["coverage"] == inside.mean()


@needs_statsmodels
def test_resumed_run_equals_the_uninterrupted_one(sunspots_run, tmp_path):
    _, whole_dir, _ = sunspots_run
    half = make_config(train={"max_steps": 15})
    train_forecast(half, tmp_path / "split", notify=quiet)
    notes = []
    train_forecast(make_config(), tmp_path / "split", resume=True, notify=notes.append)
    assert "resuming from step 15" in notes
    history = load_series("sunspots").values[:-HORIZON]
    want = load_forecaster(whole_dir).forecast(history, HORIZON)
    got = load_forecaster(tmp_path / "split").forecast(history, HORIZON)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)
    steps = lambda d: [(r["split"], r["step"]) for r in train_records(d)]  # noqa: E731
    assert steps(tmp_path / "split") == steps(whole_dir)


@needs_statsmodels
def test_predict_writes_the_steps_after_the_series(sunspots_run, sunspots_values, tmp_path):
    _, run_dir, _ = sunspots_run
    result = predict_forecast(run_dir, "sunspots", out=tmp_path / "next.csv")
    rows = read_csv(tmp_path / "next.csv")
    assert result["horizon"] == HORIZON and len(rows) == HORIZON
    assert [r["time"] for r in rows] == result["time"] == [str(y) for y in range(2009, 2014)]
    want = load_forecaster(run_dir).forecast(sunspots_values[:, None], HORIZON)
    np.testing.assert_allclose([float(r["SUNACTIVITY_forecast"]) for r in rows],
                               want["point"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(result["forecast"]["point"], want["point"], rtol=1e-12)
    assert np.isfinite(np.asarray(result["forecast"]["lower"])).all()
    assert_picture(tmp_path / "next.png")
    # Longer than the trained horizon (autoregressive decoder): no residual interval there.
    longer = predict_forecast(run_dir, "sunspots", horizon=8, out=tmp_path / "longer.csv")
    assert longer["time"] == [str(y) for y in range(2009, 2017)]
    assert len(read_csv(tmp_path / "longer.csv")) == 8
    np.testing.assert_allclose(np.asarray(longer["forecast"]["point"])[:HORIZON],
                               want["point"], rtol=1e-5)


@needs_statsmodels
def test_backtest_origins_and_mean(sunspots_run):
    _, run_dir, result = sunspots_run
    backtest = result["backtest"]
    first = 309 - HORIZON  # rows before the holdout
    # an origin is the last year a fold trains on (1988 for the holdout, as the guide says);
    # it was the first year forecast
    assert [f["origin"] for f in backtest["folds"]] == [
        str(1700 + first - 1 - k * BACKTEST_STEP) for k in range(3)]
    assert backtest["step"] == BACKTEST_STEP
    for method, metrics in backtest["mean"].items():
        for key, value in metrics.items():
            assert value == pytest.approx(np.mean([f[method][key] for f in backtest["folds"]]))
    assert set(backtest["mean"]) == {result["model"], "naive", "seasonal naive", "AR(p)"}
    assert all(f["AR(p)"]["p"] >= 1 for f in backtest["folds"])
    assert (run_dir / "backtest" / "fold-2" / "checkpoints").is_dir()


def fold_forecast(fold_dir, config, history: np.ndarray) -> np.ndarray:
    """The point forecast of a backtest fold's saved model after ``history`` (N, 1)."""
    checkpoint = load_checkpoint(fold_dir)
    model = Forecaster(1, 0, config.data.horizon, config.model)
    model.load_state_dict(checkpoint.model_state)
    fitted = FittedForecaster(model.eval(), Scaler.from_dict(checkpoint.meta["scaler"]), 1,
                              config)
    return fitted.forecast(history, config.data.horizon)["point"]


@needs_statsmodels
def test_backtest_folds_do_not_see_values_from_their_origin_on(sunspots_run, tmp_path):
    config, run_dir, result = sunspots_run
    series = load_series("sunspots")
    origin_2 = len(series) - HORIZON - 2 * BACKTEST_STEP
    values = series.values.copy()
    values[origin_2:] = values[origin_2:] * 3.0 + 50.0  # fold 2's window and everything after
    perturbed = TimeSeries(values, series.time, series.columns, None, [], series.source,
                           series.season)
    backtest = rolling_origin_backtest(config, perturbed, {"table": result["table"]}, folds=2,
                                       step=BACKTEST_STEP, run_dir=tmp_path / "bt",
                                       label=result["model"], notify=quiet)
    assert [f["origin"] for f in backtest["folds"]] == \
        [f["origin"] for f in result["backtest"]["folds"]]
    # Fold 2 was fitted on the rows before its origin only: the same weights, scaler and
    # forecast; its scores move with the perturbed truth.
    before, after = run_dir / "backtest" / "fold-2", tmp_path / "bt" / "fold-2"
    same = load_checkpoint(after)
    reference = load_checkpoint(before)
    assert same.meta["scaler"] == reference.meta["scaler"]
    for name, tensor in reference.model_state.items():
        assert torch.equal(same.model_state[name], tensor), name
    history = series.values[:origin_2]
    np.testing.assert_array_equal(fold_forecast(after, config, history),
                                  fold_forecast(before, config, history))
    assert backtest["folds"][2] != result["backtest"]["folds"][2]
    # Fold 1 (a later origin) trains on perturbed rows: the perturbation did reach the data.
    other = load_checkpoint(tmp_path / "bt" / "fold-1").model_state
    assert any(not torch.equal(other[n], t) for n, t in
               load_checkpoint(run_dir / "backtest" / "fold-1").model_state.items())


# ---- 6. a CSV file with two targets and a covariate ---------------------------------------------

ROWS, CSV_H, VALIDATION = 90, 4, 4


def write_series(path, rows: int = ROWS, holdout_shift: float = 0.0):
    t = np.arange(rows)
    rng = np.random.default_rng(7)
    u = np.sin(t / 3.0)
    a = np.sin(t / 5.0) + 0.8 * u + 0.1 * rng.normal(size=rows)
    b = 10 + 3 * np.cos(t / 7.0) + 0.3 * rng.normal(size=rows)
    a[rows - CSV_H:] += holdout_shift
    b[rows - CSV_H:] -= 2 * holdout_shift
    dates = np.datetime64("2021-01-01") + t
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["date", "a", "b", "u"])
        for i in range(rows):
            writer.writerow([str(dates[i]), *(repr(float(x[i])) for x in (a, b, u))])
    return path


def csv_config(path, decoder: str) -> ForecastConfig:
    return make_config(
        data={"data": str(path), "value_cols": ["a", "b"], "covariate_cols": ["u"],
              "horizon": CSV_H, "window": 10, "warmup": 2, "validation": VALIDATION},
        model={"decoder": decoder, "ensemble": 1},
        train={"max_steps": 8, "eval_every": 4, "log_every": 4})


@pytest.fixture(scope="module")
def csv_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast-csv")
    path = write_series(folder / "series.csv")
    runs = {}
    for decoder in ("direct", "autoregressive"):
        result = train_forecast(csv_config(path, decoder), folder / decoder, notify=quiet)
        runs[decoder] = (folder / decoder, result)
    return path, runs


@pytest.mark.parametrize("decoder", ["direct", "autoregressive"])
def test_csv_series_with_two_targets_and_a_covariate(csv_runs, decoder):
    path, runs = csv_runs
    run_dir, result = runs[decoder]
    series = load_series(str(path), value_cols=["a", "b"], covariate_cols=["u"])
    rows = feature_rows(series.values, series.covariates)
    assert result["series"]["columns"] == ["a", "b"]
    assert result["series"]["covariate_columns"] == ["u"]
    assert result["season"] == 1 and result["holdout"] == CSV_H
    fitted = load_forecaster(run_dir)
    assert (fitted.model.targets, fitted.model.covariates) == (2, 1)
    # The scaler saw only the fitting rows: neither the holdout nor the validation rows.
    fit_rows = rows[: ROWS - CSV_H - VALIDATION]
    np.testing.assert_allclose(fitted.scaler.mean, fit_rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fitted.scaler.std, fit_rows.std(axis=0), rtol=1e-12)
    history, future = rows[: ROWS - CSV_H], series.covariates[ROWS - CSV_H:]
    out = fitted.forecast(history, CSV_H, future)
    assert {k: v.shape for k, v in out.items()} == {k: (CSV_H, 2) for k in
                                                     ("point", "lower", "upper")}
    table_row = result["table"][result["model"]]
    assert table_row["mase"] == forecast_metrics(series.values[ROWS - CSV_H:], out["point"],
                                                 history[:, :2], 1)["mase"]
    csv_rows = read_csv(run_dir / "holdout.csv")
    assert len(csv_rows) == CSV_H and csv_rows[0]["time"].startswith(
        str(np.datetime64("2021-01-01") + ROWS - CSV_H))
    assert {"a_forecast", "a_lower", "a_upper", "a_actual", "b_forecast", "b_naive"} <= \
        set(csv_rows[0])
    np.testing.assert_allclose([float(r["b_forecast"]) for r in csv_rows], out["point"][:, 1],
                               rtol=1e-5)


def test_direct_decoder_uses_the_past_covariates(csv_runs):
    path, runs = csv_runs
    fitted = load_forecaster(runs["direct"][0])
    series = load_series(str(path), value_cols=["a", "b"], covariate_cols=["u"])
    rows = feature_rows(series.values, series.covariates)[: ROWS - CSV_H]
    future = series.covariates[ROWS - CSV_H:]
    base = fitted.forecast(rows, CSV_H, future)["point"]
    changed = rows.copy()
    changed[-3:, 2] += 2.0  # the covariate in the context
    assert not np.allclose(fitted.forecast(changed, CSV_H, future)["point"], base)
    # Future covariates are no input of the direct decoder.
    np.testing.assert_array_equal(fitted.forecast(rows, CSV_H, future + 2.0)["point"], base)


def test_autoregressive_decoder_uses_the_future_covariates(csv_runs):
    path, runs = csv_runs
    fitted = load_forecaster(runs["autoregressive"][0])
    series = load_series(str(path), value_cols=["a", "b"], covariate_cols=["u"])
    rows = feature_rows(series.values, series.covariates)[: ROWS - CSV_H]
    future = series.covariates[ROWS - CSV_H:]
    base = fitted.forecast(rows, CSV_H, future)["point"]
    moved = fitted.forecast(rows, CSV_H, future + 2.0)["point"]
    # The first step comes from the context alone; the later ones read the covariates.
    np.testing.assert_array_equal(moved[0], base[0])
    assert not np.allclose(moved[1:], base[1:])


def test_holdout_values_do_not_change_the_model(csv_runs, tmp_path):
    path, runs = csv_runs
    run_dir, result = runs["direct"]
    shifted = write_series(tmp_path / "shifted.csv", holdout_shift=25.0)
    other = train_forecast(csv_config(shifted, "direct"), tmp_path / "run", notify=quiet)
    first, second = load_forecaster(run_dir), load_forecaster(tmp_path / "run")
    np.testing.assert_array_equal(first.scaler.mean, second.scaler.mean)
    np.testing.assert_array_equal(first.scaler.std, second.scaler.std)
    series = load_series(str(path), value_cols=["a", "b"], covariate_cols=["u"])
    rows = feature_rows(series.values, series.covariates)[: ROWS - CSV_H]
    a, b = first.forecast(rows, CSV_H), second.forecast(rows, CSV_H)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    forecast_columns = lambda d: [(r["a_forecast"], r["b_forecast"])  # noqa: E731
                                  for r in read_csv(d / "holdout.csv")]
    assert forecast_columns(tmp_path / "run") == forecast_columns(run_dir)
    # ... while the scores do move with the held-out truth.
    assert other["table"][other["model"]]["mase"] != result["table"][result["model"]]["mase"]


def test_missing_column_is_a_series_error(csv_runs):
    path, _ = csv_runs
    with pytest.raises(SeriesError, match="has no column 'c'"):
        train_forecast(make_config(data={"data": str(path), "value_cols": ["c"]}), "unused",
                       notify=quiet)


# -- found by an adversarial review (2026-12-04) ---------------------------------------------
@needs_statsmodels
def test_point_intervals_cover_the_trained_horizon_when_more_steps_are_asked(sunspots_run):
    """Asking for more than H steps used to drop the bounds of every step, even 1..H."""
    config, run_dir, _ = sunspots_run
    fitted = load_forecaster(run_dir)
    if fitted.residual_quantiles is None:
        pytest.skip("this configuration's model predicts its own intervals")
    rows = feature_rows(load_series("sunspots").values, None)
    horizon = config.data.horizon
    short = fitted.forecast(rows, horizon)
    long = fitted.forecast(rows, horizon + 5)
    for key in ("point", "lower", "upper"):
        np.testing.assert_allclose(long[key][:horizon], short[key], rtol=1e-6, atol=1e-6)
    assert np.isfinite(long["lower"][:horizon]).all()
    assert np.isnan(long["lower"][horizon:]).all() and np.isnan(long["upper"][horizon:]).all()


def test_a_series_without_naive_error_has_nan_mase_and_the_other_metrics():
    train = np.tile([1.0, 2.0, 3.0, 4.0], 10)  # repeats itself exactly at season 4
    actual, forecast = np.array([1.0, 2.0]), np.array([1.5, 2.0])
    metrics = forecast_metrics(actual, forecast, train, season=4)
    assert math.isnan(metrics["mase"])
    assert metrics["mae"] == pytest.approx(0.25) and metrics["rmse"] == pytest.approx(0.125 ** 0.5)


@needs_statsmodels
def test_baselines_go_without_the_ar_row_when_it_cannot_be_fitted(caplog):
    from rnnkit.tasks.forecast.baselines import baseline_forecasts

    forecasts = baseline_forecasts(np.full(60, 5.0), 3, 4)  # constant: no AR structure
    assert list(forecasts) == ["naive", "seasonal naive"]
    np.testing.assert_array_equal(forecasts["naive"], np.full(3, 5.0))
    assert "the AR baseline could not be fitted" in caplog.text


@needs_statsmodels
def test_every_backtest_fold_forecasts_as_many_rows_as_the_holdout(tmp_path, monkeypatch):
    """holdout > horizon (autoregressive decoder): fold 0 scored 25 rows and the earlier folds
    only H = 10, and the mean over folds mixed lead times. Oracle: each fold's naive forecast
    (the last training value, repeated) scored on the 25 rows after its origin."""
    from rnnkit.tasks.forecast import backtest as backtest_module
    from rnnkit.tasks.forecast.task import holdout_report

    rows_count, holdout, step, season = 200, 25, 10, 12
    values = (5 * np.sin(np.arange(rows_count) * 2 * np.pi / season)
              + np.random.default_rng(0).normal(size=rows_count)).reshape(-1, 1)
    series = TimeSeries(values, np.arange(rows_count), ["y"], None, [], "synthetic", season)
    config = make_config(data={"horizon": 10, "holdout": holdout, "season": season},
                         model={"decoder": "autoregressive"})
    monkeypatch.setattr(backtest_module, "fit_forecaster", lambda *args, **kwargs: None)
    first_origin = rows_count - holdout
    fold_0 = holdout_report(series, None, config, values[:first_origin], "model")
    result = rolling_origin_backtest(config, series, fold_0, folds=2, step=step,
                                     run_dir=tmp_path, label="model", notify=quiet)
    for k, fold in enumerate(result["folds"]):
        origin = first_origin - k * step
        naive = np.repeat(values[origin - 1:origin], holdout, axis=0)
        expected = forecast_metrics(values[origin:origin + holdout], naive, values[:origin],
                                    season)
        for key, value in expected.items():
            assert fold["naive"][key] == pytest.approx(value), (k, key)


def test_a_season_longer_than_the_earliest_folds_history_is_refused_before_training():
    """The earliest fold's 20 rows were shorter than the MASE scale's season + 1 (31 rows):
    the backtest failed after the holdout model and two folds had trained."""
    from rnnkit.tasks.forecast.backtest import check_backtest

    series = TimeSeries(np.arange(100.0).reshape(-1, 1), np.arange(100), ["y"], None, [],
                        "synthetic", None)
    config = make_config(data={"season": 30})
    # origins 70, 45, 20 before the 5-row holdout at 95; training windows need only 17 rows
    assert check_backtest(make_config(), series, 3, 25) == [70, 45, 20]
    with pytest.raises(ValueError) as info:
        check_backtest(config, series, 3, 25)
    message = str(info.value)
    assert "\n" not in message and "earliest fold trains on at least 31" in message
    assert check_backtest(config, series, 2, 25) == [70, 45]


@needs_statsmodels
def test_a_baseline_missing_from_a_fold_has_no_mean_instead_of_crashing(tmp_path, monkeypatch):
    """AR(p) fitted at the holdout origin but not at an earlier one (a constant history): its
    mean was an empty dict, and printing the table raised KeyError after all the training.
    Oracle: the other methods' means over the folds' own scores."""
    from rnnkit.cli.forecast import format_table
    from rnnkit.tasks.forecast import backtest as backtest_module
    from rnnkit.tasks.forecast.task import holdout_report

    rng = np.random.default_rng(0)
    t = np.arange(100)
    values = np.where(t < 60, 5.0, 5.0 + np.sin(t / 2) + rng.normal(0, 0.2, 100)).reshape(-1, 1)
    series = TimeSeries(values, t, ["y"], None, [], "synthetic", None)
    config = make_config(data={"horizon": 5, "window": 10, "warmup": 2})
    monkeypatch.setattr(backtest_module, "fit_forecaster", lambda *args, **kwargs: None)
    fold_0 = holdout_report(series, None, config, values[:95], "model")
    said = []
    result = rolling_origin_backtest(config, series, fold_0, folds=1, step=40, run_dir=tmp_path,
                                     label="model", notify=said.append)
    assert "AR(p)" in result["folds"][0] and "AR(p)" not in result["folds"][1]
    assert "AR(p)" not in result["mean"] and any("AR(p) could not be fitted" in s for s in said)
    for key in ("rmse", "smape"):
        expected = np.mean([fold["naive"][key] for fold in result["folds"]])
        assert result["mean"]["naive"][key] == pytest.approx(expected)
    assert "naive" in format_table(result["mean"])


@needs_statsmodels
def test_a_fold_retrained_on_resume_starts_from_a_clean_folder(sunspots_run, tmp_path):
    """Resuming a run interrupted in a backtest fold retrains that fold; what the interrupted
    try left was appended to (its metrics twice over). Oracle: the uninterrupted run's fold."""
    config, run_dir, result = sunspots_run
    stale = tmp_path / "bt" / "fold-1"
    shutil.copytree(run_dir / "backtest" / "fold-1", stale)  # a finished earlier try
    rolling_origin_backtest(config, load_series("sunspots"), {"table": result["table"]},
                            folds=1, step=BACKTEST_STEP, run_dir=tmp_path / "bt",
                            label=result["model"], notify=quiet)
    steps = lambda d: [(r["split"], r["step"]) for r in train_records(d)]  # noqa: E731
    assert steps(stale) == steps(run_dir / "backtest" / "fold-1")


def test_a_run_folder_another_process_holds_is_refused_before_anything_is_written(tmp_path):
    """The task holds its run folder for the whole run, backtest folds included (they train in
    subfolders): a second call into a folder another process holds raises and writes nothing.
    Oracle: a second process holding the folder's lock, and the folder's listing."""
    from run_holder import Holder

    from rnnkit.training import RunFolderBusyError

    run_dir = tmp_path / "run"
    holder = Holder(run_dir)
    try:
        with pytest.raises(RunFolderBusyError, match="another process is training in"):
            train_forecast(make_config(), run_dir, backtest_folds=2, notify=quiet)
        assert [p.name for p in run_dir.iterdir()] == [".training.lock"]
    finally:
        holder.release()


def test_a_huge_fold_count_is_refused_before_its_origins_are_listed():
    """--backtest 1000000000000 built the list of origins before checking it, and the process
    was killed for memory. Oracle: the arithmetic of the message (95 - 10**12 * 25 rows)."""
    import tracemalloc

    from rnnkit.tasks.forecast.backtest import check_backtest

    series = TimeSeries(np.arange(100.0).reshape(-1, 1), np.arange(100), ["y"], None, [],
                        "synthetic", None)
    tracemalloc.start()
    with pytest.raises(ValueError, match="use fewer folds or a smaller step"):
        check_backtest(make_config(), series, 10 ** 12, 25)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 ** 6  # no list of 10**12 origins (nor of a million)


def test_a_diverged_model_s_forecast_is_named_as_such_not_as_bad_data(monkeypatch):
    """A model trained at --lr 1e12 forecast NaN, and the metrics called the data's values
    NaN ("fill or drop them first", exit 2). Oracle: the model's own non-finite forecast."""
    from types import SimpleNamespace

    from rnnkit.tasks.forecast.task import holdout_report
    from rnnkit.training import NonFiniteLossError

    series = TimeSeries(np.arange(100.0).reshape(-1, 1), np.arange(100), ["y"], None, [],
                        "synthetic", None)
    nan = np.full((5, 1), np.nan)
    fitted = SimpleNamespace(model=SimpleNamespace(covariates=0),
                             forecast=lambda rows, horizon, cov=None: {
                                 "point": nan, "lower": nan, "upper": nan})
    with pytest.raises(NonFiniteLossError, match="training diverged; lower"):
        holdout_report(series, fitted, make_config(), series.values[:95], "rnnkit GRU")


def test_predict_takes_target_columns_named_in_another_order_by_name(csv_runs, tmp_path):
    """--value-col b --value-col a fed b into a's slot, scaled by a's statistics, and labelled
    the result by the order given (found by fuzzing, 2026-12-06). Oracle: the forecast with
    the columns named in the training order. The stamps are the dates after the series',
    written as dates (they came out as 2021-03-02T00:00:00.000000)."""
    path, runs = csv_runs
    run_dir = runs["direct"][0]
    ordered = predict_forecast(run_dir, str(path), out=tmp_path / "ordered.csv",
                               value_cols=["a", "b"])
    swapped = predict_forecast(run_dir, str(path), out=tmp_path / "swapped.csv",
                               value_cols=["b", "a"])
    assert swapped["forecast"] == ordered["forecast"]
    assert read_csv(tmp_path / "swapped.csv") == read_csv(tmp_path / "ordered.csv")
    # names are matched in any case, as the series loader matches them
    upper = predict_forecast(run_dir, str(path), out=tmp_path / "upper.csv",
                             value_cols=["B", "A"])
    assert upper["forecast"] == ordered["forecast"]
    assert ordered["time"][0] == str(np.datetime64("2021-01-01") + ROWS)
    one_line_value_error(predict_forecast, run_dir, str(path), out=tmp_path / "bad.csv",
                         value_cols=["b", "u"],
                         match=r"--value-col 'b' is column 1 here but was column 2 in training")


def test_a_folder_where_the_plot_goes_is_refused_before_the_csv_is_replaced(csv_runs,
                                                                         tmp_path):
    """The CSV was replaced, then the plot failed on the folder. Oracle: the earlier forecast's
    bytes."""
    path, runs = csv_runs
    out = tmp_path / "forecast.csv"
    predict_forecast(runs["direct"][0], str(path), out=out, horizon=2)
    before = out.read_bytes()
    out.with_suffix(".png").unlink(missing_ok=True)
    out.with_suffix(".png").mkdir()
    one_line_value_error(predict_forecast, runs["direct"][0], str(path), out=out, horizon=3,
                         match="where the forecast's plot goes, is a folder")
    assert out.read_bytes() == before


def test_monthly_stamps_keep_their_day_of_the_month():
    """Without a frequency pandas can name (the 15th of each month; the 1st with one month
    missing), the median spacing of 31 days was added: 02-15, 03-17, 04-17, ...
    Oracle: stamps written by hand."""
    from rnnkit.tasks.forecast.task import future_times

    def dates(texts):
        return np.array(texts, dtype="datetime64[ns]")

    mid = dates([f"2019-{m:02d}-15" for m in range(1, 13)])
    np.testing.assert_array_equal(future_times(mid, 3),
                                  dates(["2020-01-15", "2020-02-15", "2020-03-15"]))
    gap = dates([f"2019-{m:02d}-01" for m in range(1, 13) if m != 5])
    np.testing.assert_array_equal(future_times(gap, 3),
                                  dates(["2020-01-01", "2020-02-01", "2020-03-01"]))
    ends = dates(["2019-01-31", "2019-02-28", "2019-04-30", "2019-05-31"])
    np.testing.assert_array_equal(future_times(ends, 2), dates(["2019-06-30", "2019-07-31"]))
    quarterly_on_the_10th = dates(["2019-01-10", "2019-04-10", "2019-07-10", "2019-10-10"])
    np.testing.assert_array_equal(future_times(quarterly_on_the_10th, 1), dates(["2020-01-10"]))
    # the 30th (February on its last day, one month missing) went on by 31 days, skipping
    # June: 05-31, 07-01, 08-01 (review 2026-12-06); and from a clipped February, on the 30th
    thirtieth = dates(["2021-11-30", "2021-12-30", "2022-01-30", "2022-02-28", "2022-04-30"])
    np.testing.assert_array_equal(future_times(thirtieth, 4), dates(
        ["2022-05-30", "2022-06-30", "2022-07-30", "2022-08-30"]))
    np.testing.assert_array_equal(future_times(thirtieth[:4], 2),
                                  dates(["2022-03-30", "2022-04-30"]))
    leap_29th = dates(["2023-12-29", "2024-01-29", "2024-02-29", "2024-03-29"])
    np.testing.assert_array_equal(future_times(leap_29th, 1), dates(["2024-04-29"]))
    # a float step no longer carries rounding into the stamps (6.1000000000000005), at any
    # magnitude (seconds since 1970 with milliseconds; rounding to 12 digits repeated them)
    assert future_times(np.array([5.8, 5.9, 6.0]), 2).tolist() == [6.1, 6.2]
    assert future_times(np.array([1600000000.001, 1600000000.002, 1600000000.003]),
                        3).tolist() == [1600000000.004, 1600000000.005, 1600000000.006]
    assert future_times(np.array([1e-9, 2e-9, 3e-9]), 2).tolist() == [4e-9, 5e-9]


def test_a_checkpoint_without_a_task_is_named_as_such(tmp_path):
    """A backtest fold's checkpoint was "a None checkpoint, not a forecaster"."""
    from rnnkit.training.checkpoint import CheckpointError, save_checkpoint

    save_checkpoint(tmp_path / "fold", 1, model_state={}, train_state={}, meta={})
    with pytest.raises(CheckpointError, match="records no task, so it is not a forecaster; "
                                              "pass the folder of a run"):
        load_forecaster(tmp_path / "fold")


def test_the_metrics_table_keeps_large_values_apart():
    """Fixed widths ran an RMSE of 6e10 into the MASE beside it ("0.924159768848340.99").
    Oracle: the numbers of the table, read back from each row's whitespace-separated cells."""
    from rnnkit.cli.forecast import format_table

    table = {"rnnkit GRU H=4": {"mase": 0.924, "rmse": 6.0e10, "smape": 60.3, "coverage": 0.5},
             "naive": {"mase": 1.0, "rmse": 1234.5, "smape": 100.0},
             "seasonal naive": {"mase": 12345.678, "rmse": 1e150, "smape": 7.25}}
    lines = format_table(table, title="holdout").splitlines()
    assert lines[0] == "holdout" and lines[1].split() == ["method", "MASE", "RMSE", "sMAPE",
                                                           "coverage"]
    for line, (name, metrics) in zip(lines[2:], table.items()):
        assert line.startswith(name)
        cells = [float(cell) for cell in line[len(name):].split()]
        expected = [metrics["mase"], metrics["rmse"], metrics["smape"]] + (
            [metrics["coverage"]] if "coverage" in metrics else [])
        assert cells == pytest.approx(expected, rel=1e-3, abs=0.05)  # as rounded for print
    header = lines[1]
    for line in lines[2:]:  # right-aligned under their headers
        for title in ("MASE", "RMSE", "sMAPE"):
            end = header.index(title) + len(title)
            assert line[end - 1] != " " and (end == len(line) or line[end] == " ")


def test_a_highway_longer_than_the_window_is_refused_before_training(tmp_path):
    """--highway 100 with --window 10 trained: the lags before the window are zeros in every
    training window, so their weights never learn, yet the autoregressive decoder feeds real
    values into them. Oracle: the run folder, never made."""
    config = make_config(data={"window": 10, "warmup": 2}, model={"highway": 11})
    with pytest.raises(ValueError) as info:
        train_forecast(config, tmp_path / "run", notify=lambda line: None)
    message = str(info.value)
    assert "\n" not in message and "model.highway 11 is longer than data.window 10" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, needle", [
    (lambda path: write_series(path, holdout_shift=5.0), "the same rows, other numbers"),
    (lambda path: write_series(path, rows=ROWS + 3), f"{ROWS} rows then, {ROWS + 3} now"),
], ids=["values", "rows"])
def test_resuming_on_a_changed_file_is_refused_before_training(tmp_path, change, needle):
    """Only the path was compared: after the file's numbers changed, --resume refitted the
    scaling and trained on under it without a word (review 2026-12-06). Oracle: the run
    folder's files, unchanged by the refused resume, and a resume on the file as it was."""
    path = write_series(tmp_path / "series.csv")
    config = csv_config(path, "direct")
    train_forecast(config, tmp_path / "run", notify=quiet)
    before = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*"))
    original = path.read_bytes()
    change(path)
    more = csv_config(path, "direct")
    more.train.max_steps = 12
    with pytest.raises(ValueError) as info:
        train_forecast(more, tmp_path / "run", resume=True, notify=quiet)
    message = str(info.value)
    assert "\n" not in message and "the series differs" in message and needle in message
    assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*")) == before
    path.write_bytes(original)
    notes = []
    train_forecast(more, tmp_path / "run", resume=True, notify=notes.append)
    assert "resuming from step 8" in notes


def test_trained_column_names_with_spaces_match_the_names_read_now():
    """A run trained before header names lost the space after their commas saved " value";
    predict matched the columns given against it ignoring case only. Oracle: the training
    order, kept."""
    from rnnkit.tasks.forecast.task import _in_trained_order

    assert _in_trained_order(["b", "value"], [" value", " b"], "--value-col") == [" value", " b"]
    with pytest.raises(ValueError, match="is column 1 here but was column 2"):
        _in_trained_order(["b", "other"], [" value", " b"], "--value-col")


@pytest.mark.parametrize("implementation, layer", [("rnnkit", "rnnkit"), ("torch", "torch.nn")])
def test_the_model_label_names_the_layer_that_ran(implementation, layer):
    """A run with torch.nn's layer (model.implementation=torch) was labelled "rnnkit GRU" in
    its table and plot. Oracle: the implementation the config names."""
    config = make_config(model={"implementation": implementation, "ensemble": 2})
    assert model_label(config) == f"{layer} GRU H={config.model.hidden_size} x2"


def test_the_run_names_the_columns_it_forecasts(tmp_path):
    """A text column is left out of the default targets; nothing said so, and the run
    forecast the other column alone (audit, 2026-12-06; a column of "1,000"s, which is now an
    error of its own, tests/data/test_timeseries.py). Oracle: the columns load_series chose."""
    rows = [f'2020-01-{day:02d},shop {day % 3},{day % 7 + 0.5}' for day in range(1, 31)]
    path = tmp_path / "shop.csv"
    path.write_text("date,store,temp\n" + "\n".join(rows) + "\n")
    assert load_series(str(path)).columns == ["temp"]
    notes = []
    config = make_config(data={"data": str(path), "holdout": 5, "window": 6, "warmup": 2},
                         model={"ensemble": 1}, train={"max_steps": 2})
    train_forecast(config, tmp_path / "run", notify=notes.append)
    assert any("; forecasting temp;" in note for note in notes)


def test_python_arguments_of_the_wrong_type_are_refused_before_anything_is_written(
        sunspots_run, tmp_path):
    """predict_forecast(horizon=True) wrote a 1-row forecast and its PNG, then failed; a
    backtest_step of 1.5 trained the whole run first; a horizon of True in the config was one
    step (probe, 2026-12-08). Oracle: nothing written; the same call with an int works."""
    _, run_dir, _ = sunspots_run
    for horizon in (True, 2.5, "3"):
        with pytest.raises(ValueError, match=r"horizon must be a whole number from 1 to 100000"):
            predict_forecast(run_dir, "sunspots", horizon=horizon, out=tmp_path / "next.csv")
        assert list(tmp_path.iterdir()) == []
    assert predict_forecast(run_dir, "sunspots", horizon=3, out=tmp_path / "next.csv")["horizon"] == 3
    config = make_config()
    with pytest.raises(ValueError, match=r"backtest_step must be a whole number; got 1.5"):
        train_forecast(config, tmp_path / "run", backtest_folds=1, backtest_step=1.5,
                       notify=quiet)
    config.data.horizon = True
    with pytest.raises(ValueError, match=r"config key 'data.horizon' must be an integer; got True"):
        train_forecast(config, tmp_path / "run", notify=quiet)
    assert not (tmp_path / "run").exists()
