"""Gradient clipping, RNG capture/restore, and the metrics log with its plot."""

from __future__ import annotations

import json
import math
import random
import sys

import numpy as np
import pytest
import torch

from rnnkit.training.checkpoint import flatten_tensors, unflatten_tensors
from rnnkit.training.clipping import clip_gradients
from rnnkit.training.metrics import MetricsLog, plot_curves
from rnnkit.training.seeding import capture_rng_state, restore_rng_state, seed_everything


# --- clipping ----------------------------------------------------------------------------------

def params_with_grads(*grads):
    params = []
    for grad in grads:
        p = torch.nn.Parameter(torch.zeros_like(grad))
        p.grad = grad.clone()
        params.append(p)
    return params


def global_norm(tensors) -> float:
    return math.sqrt(sum(float(x) ** 2 for t in tensors for x in t.flatten().tolist()))


GRADS = (torch.tensor([3.0, -4.0]), torch.tensor([[12.0]]), torch.tensor([0.5, 1.5, -2.0]))


def test_returns_pre_clip_global_norm_and_clips_to_max():
    params = params_with_grads(*GRADS)
    before = global_norm(GRADS)
    norm = clip_gradients(params, max_norm=2.0)
    assert norm == pytest.approx(before, rel=1e-6)
    assert global_norm([p.grad for p in params]) == pytest.approx(2.0, rel=1e-5)
    for p, g in zip(params, GRADS):  # same direction, uniformly scaled
        assert torch.allclose(p.grad, g * (2.0 / before), rtol=1e-5)


def test_a_module_or_a_text_threshold_is_refused_naming_the_fix():
    """"'Linear' object is not iterable" and a raw comparison TypeError (probe, 2026-12-08).
    Oracle: the same call with the module's parameters and a number clips."""
    module = torch.nn.Linear(2, 2)
    module(torch.randn(3, 2)).sum().backward()
    with pytest.raises(TypeError, match=r"got the module Linear itself: pass its .parameters\(\)"):
        clip_gradients(module, 1.0)
    with pytest.raises(ValueError, match="max_norm must be a positive number .*; got '1'"):
        clip_gradients(module.parameters(), "1")
    grads = [p.grad.clone() for p in module.parameters()]
    assert clip_gradients(module.parameters(), 1.0) == pytest.approx(global_norm(grads), rel=1e-6)


def test_grads_below_max_norm_are_unchanged():
    params = params_with_grads(*GRADS)
    norm = clip_gradients(params, max_norm=global_norm(GRADS) * 2)
    assert norm == pytest.approx(global_norm(GRADS), rel=1e-6)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, GRADS))


def test_none_returns_norm_without_clipping():
    params = params_with_grads(*GRADS)
    assert clip_gradients(params, None) == pytest.approx(global_norm(GRADS), rel=1e-6)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, GRADS))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_gradient_returns_non_finite_and_scales_nothing(bad):
    grads = (torch.tensor([1.0, bad]), torch.tensor([30.0]))
    params = params_with_grads(*grads)
    norm = clip_gradients(params, max_norm=1.0)
    assert math.isnan(norm) if math.isnan(bad) else norm == math.inf
    for p, g in zip(params, grads):  # bit-identical, nan included
        assert torch.allclose(p.grad, g, rtol=0, atol=0, equal_nan=True)


def test_one_tensor_is_clipped_as_torch_does():
    # Oracle: torch.nn.utils.clip_grad_norm_, which takes one tensor. Iterating it walked its
    # rows, non-leaf views without .grad: nothing was clipped and the norm came back 0.0.
    grad = torch.tensor([[3.0, 4.0], [12.0, 0.0]])
    ours, theirs = params_with_grads(grad, grad)
    norm = clip_gradients(ours, max_norm=1.0)
    assert norm == pytest.approx(float(torch.nn.utils.clip_grad_norm_(theirs, 1.0)))
    assert torch.allclose(ours.grad, theirs.grad)


def test_the_norm_of_finite_float16_gradients_is_finite():
    # Oracle: the float64 norm. Summed in float16 (max 65504) the norm of these finite
    # gradients, 384000, was inf: nothing was clipped and the Trainer stopped the run.
    grads = (torch.full((4096,), 6000.0, dtype=torch.float16),)
    params = params_with_grads(*grads)
    exact = global_norm(grads)
    assert clip_gradients(params, max_norm=1.0) == pytest.approx(exact, rel=1e-3)
    assert global_norm([p.grad for p in params]) == pytest.approx(1.0, rel=1e-2)


def test_parameters_without_grad_are_ignored():
    params = params_with_grads(torch.tensor([6.0, 8.0]))
    params.append(torch.nn.Parameter(torch.ones(3)))  # grad is None
    assert clip_gradients(iter(params), 1.0) == pytest.approx(10.0)
    assert clip_gradients([torch.nn.Parameter(torch.ones(2))], 1.0) == 0.0


def test_nonpositive_max_norm_raises():
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradients(params_with_grads(torch.ones(2)), 0.0)


# --- seeding -----------------------------------------------------------------------------------

@pytest.fixture
def keep_global_rngs():
    saved = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    yield
    torch.set_rng_state(saved[0])
    np.random.set_state(saved[1])
    random.setstate(saved[2])


def draw_everything():
    return (torch.rand(4).tolist(), torch.randn(3).tolist(), np.random.rand(3).tolist(),
            np.random.standard_normal(3).tolist(), [random.random() for _ in range(3)],
            random.gauss(0.0, 1.0))


def prime_cached_gaussians():
    # Leave a cached second normal in NumPy's and Python's generators, so restoring has to
    # bring those caches back too.
    np.random.standard_normal(1)
    random.gauss(0.0, 1.0)


def test_restore_replays_every_generator(keep_global_rngs):
    seed_everything(11)
    prime_cached_gaussians()
    state = capture_rng_state()
    first = draw_everything()
    restore_rng_state(state)
    assert draw_everything() == first


def test_rng_state_survives_checkpoint_round_trip(keep_global_rngs):
    from safetensors.torch import load, save

    seed_everything(12)
    prime_cached_gaussians()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.loads(json.dumps(flatten_tensors(capture_rng_state(), tensors)))
    first = draw_everything()
    draw_everything()  # move every generator on
    restore_rng_state(unflatten_tensors(skeleton, load(save(tensors))))
    assert draw_everything() == first


def test_seed_everything_is_reproducible(keep_global_rngs):
    seed_everything(5)
    first = draw_everything()
    seed_everything(5)
    assert draw_everything() == first
    seed_everything(6)
    assert draw_everything() != first


# --- metrics -----------------------------------------------------------------------------------

RECORDS = [
    {"split": "train", "step": 1, "loss": 2.5, "lr": 0.001},
    {"split": "train", "step": 2, "loss": 2.25, "lr": 0.002},
    {"split": "validation", "step": 2, "loss": 2.4},
    {"split": "train", "step": 3, "loss": 2.0, "lr": 0.002},
    {"split": "train", "step": 4, "loss": 1.75, "lr": 0.002},
    {"split": "validation", "step": 4, "loss": 2.1},
]


def written_log(tmp_path, records=RECORDS):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for record in records:
        log.write(record)
    return log


def test_write_read_round_trip(tmp_path):
    assert written_log(tmp_path).read() == RECORDS


def test_read_of_missing_file_is_empty(tmp_path):
    assert MetricsLog(tmp_path / "none.jsonl").read() == []


def test_truncate_after_drops_only_later_records(tmp_path):
    log = written_log(tmp_path)
    log.truncate_after(2)
    assert log.read() == [r for r in RECORDS if r["step"] <= 2]


def test_truncate_after_drops_torn_last_line(tmp_path):
    log = written_log(tmp_path)
    with open(log.path, "a", encoding="utf-8") as file:
        file.write('{"split": "train", "st')  # a crash mid-write
    log.truncate_after(10)
    assert log.read() == RECORDS
    log.write({"split": "train", "step": 5, "loss": 1.5})
    assert log.read() == RECORDS + [{"split": "train", "step": 5, "loss": 1.5}]


def test_truncate_after_on_missing_file_creates_nothing(tmp_path):
    log = MetricsLog(tmp_path / "none.jsonl")
    log.truncate_after(3)
    assert not log.path.exists()


def test_plot_curves_writes_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (rnnkit[plot])")
    out = plot_curves(RECORDS, tmp_path / "curves.png", title="tiny")
    assert out == tmp_path / "curves.png"
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_without_matplotlib_no_png_is_written_and_that_is_said_once(tmp_path, monkeypatch,
                                                                     caplog):
    """An ensemble or a backtest plots once per model: the notice came once per plot."""
    from rnnkit.training import metrics

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    metrics._say_once.cache_clear()
    with caplog.at_level("INFO", logger="rnnkit.training"):
        for name in ("a.png", "b.png", "c.png"):
            assert plot_curves(RECORDS, tmp_path / name, title="tiny") is None
    assert [r.getMessage() for r in caplog.records if "matplotlib" in r.getMessage()] == [
        "matplotlib is not installed, so no plot of the curves was written; "
        "pip install 'rnnkit[plot]' adds it"]
    assert list(tmp_path.iterdir()) == []
    metrics._say_once.cache_clear()


def test_truncating_the_metrics_on_resume_is_atomic(tmp_path, monkeypatch):
    """truncate_after rewrote metrics.jsonl in place: a full disk or a kill part-way cut the
    run's history short. A failed write now leaves the file as it was."""
    from rnnkit.training import checkpoint

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 11):
        log.write({"split": "train", "step": step})
    before = log.path.read_bytes()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        log.truncate_after(4)
    assert log.path.read_bytes() == before
    monkeypatch.undo()
    log.truncate_after(4)
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4]


def test_perplexity_of_a_diverged_score_is_infinite_not_an_overflow():
    """2.0 ** bpc raised OverflowError for a diverged model's score (train lm --lr 1e12 lost
    its run to it). Oracle: 2 ** bits where float64 holds it, inf past it, NaN kept."""
    import math

    from rnnkit.training.metrics import perplexity_of_bits

    assert perplexity_of_bits(3.0) == 8.0 and perplexity_of_bits(1023.0) == 2.0 ** 1023
    assert perplexity_of_bits(1024.0) == math.inf and perplexity_of_bits(1e12) == math.inf
    assert math.isnan(perplexity_of_bits(math.nan))


def test_cpu_threads_are_capped_at_the_cores(caplog):
    """threads=100000 segfaulted torch's thread pool; a run trained with more threads than
    this machine's cores must still resume and evaluate. Oracle: os.cpu_count()."""
    import logging
    import os

    import torch

    from rnnkit.training import cpu_threads

    cores = os.cpu_count()
    before = torch.get_num_threads()
    for asked in (cores, cores + 1, 100_000):
        with caplog.at_level(logging.INFO, logger="rnnkit"), cpu_threads(asked):
            assert torch.get_num_threads() == cores
        assert torch.get_num_threads() == before
    assert f"threads=100000 is more than the {cores} CPU cores here" in caplog.text


def test_train_seed_is_checked_against_torch_s_range():
    """train.seed = 2**64 reached torch.manual_seed and failed with "Overflow when unpacking
    long long". Oracle: torch.manual_seed's range, 0..2**64-1."""
    from rnnkit.training import TrainConfig

    TrainConfig(seed=2 ** 64 - 1, max_steps=1).check()
    for seed in (-1, 2 ** 64):
        with pytest.raises(ValueError, match=r"train.seed must be an integer in 0..2\*\*64-1"):
            TrainConfig(seed=seed, max_steps=1).check()
