"""Learning-rate schedule: warmup, cosine, step and constant decay against closed forms."""

from __future__ import annotations

import math

import pytest

from rnnkit.training.schedule import LearningRateSchedule


def test_warmup_is_linear_up_to_peak():
    schedule = LearningRateSchedule(peak=0.2, warmup_steps=4)
    for step in range(4):
        assert schedule(step, progress=0.3) == pytest.approx(0.2 * (step + 1) / 4)
    assert schedule(3, 0.0) == pytest.approx(0.2)  # the last warmup step reaches the peak


@pytest.mark.parametrize("progress", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_cosine_matches_closed_form(progress):
    peak, ratio = 0.1, 0.05
    low = peak * ratio
    expected = low + (peak - low) * (1 + math.cos(math.pi * progress)) / 2
    schedule = LearningRateSchedule(peak=peak, decay="cosine", min_lr_ratio=ratio)
    assert schedule(10, progress) == pytest.approx(expected)


def test_cosine_endpoints_and_midpoint():
    schedule = LearningRateSchedule(peak=1.0, min_lr_ratio=0.2)
    assert schedule(0, 0.0) == pytest.approx(1.0)
    assert schedule(0, 0.5) == pytest.approx((1.0 + 0.2) / 2)
    assert schedule(0, 1.0) == pytest.approx(0.2)


def test_cosine_starts_after_warmup():
    schedule = LearningRateSchedule(peak=0.5, warmup_steps=2)
    assert schedule(2, 0.0) == pytest.approx(0.5)


def test_step_decay_multiplies_by_gamma_at_each_milestone():
    peak, gamma, milestones = 0.4, 0.5, (0.3, 0.6, 0.9)
    schedule = LearningRateSchedule(peak=peak, decay="step", gamma=gamma, milestones=milestones)
    for progress in (0.0, 0.29, 0.3, 0.45, 0.6, 0.89, 0.9, 1.0):
        passed = sum(1 for m in milestones if progress >= m)
        assert schedule(5, progress) == pytest.approx(peak * gamma ** passed), progress


def test_constant_stays_at_peak():
    schedule = LearningRateSchedule(peak=0.3, decay="constant")
    assert all(schedule(s, p) == 0.3 for s in (0, 10, 1000) for p in (0.0, 0.5, 1.0))


def test_progress_is_clamped_to_unit_interval():
    # Only cosine is sensitive to progress outside [0, 1] (step counts milestones passed, which
    # already saturates), so it is the case where a missing clamp would show.
    schedule = LearningRateSchedule(peak=0.1, decay="cosine")
    assert schedule(5, -3.0) == schedule(5, 0.0)
    assert schedule(5, 7.5) == schedule(5, 1.0)


@pytest.mark.parametrize("kwargs", [
    dict(peak=0.0),
    dict(peak=-1.0),
    dict(peak=float("nan")),
    dict(peak=0.1, decay="linear"),
    dict(peak=0.1, warmup_steps=-1),
    # accepted before: inf made every rate nan, 2.5 warmup steps overshot the peak (1.2x at
    # step 2), nan turned warmup off
    dict(peak=float("inf")),
    dict(peak=0.1, warmup_steps=2.5),
    dict(peak=0.1, warmup_steps=float("nan")),
    dict(peak=0.1, warmup_steps=True),
    dict(peak=0.1, min_lr_ratio=-0.1),
    dict(peak=0.1, min_lr_ratio=1.5),
    dict(peak=0.1, decay="step", gamma=0.0),
    dict(peak=0.1, decay="step", gamma=1.5),
    dict(peak=0.1, decay="step", milestones=(0.5, 1.2)),
    dict(peak=0.1, decay="step", milestones=(-0.1,)),
    # raw TypeErrors from a comparison or iteration (probe, 2026-12-08)
    dict(peak="1"),
    dict(peak=0.1, min_lr_ratio="0.1"),
    dict(peak=0.1, decay="step", milestones=0.5),
])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError) as info:
        LearningRateSchedule(**kwargs)
    assert "\n" not in str(info.value)


def test_a_negative_step_is_refused_not_given_a_negative_rate():
    """Step -5 of a 5-step warmup gave a rate of -0.08 (probe, 2026-12-08). Oracle: the
    warmup formula's own rates at steps 0..4, which are all positive."""
    schedule = LearningRateSchedule(peak=0.1, warmup_steps=5)
    assert [schedule(step, 0.0) for step in range(5)] == pytest.approx([0.02, 0.04, 0.06, 0.08,
                                                                       0.1])
    for step in (-5, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"step must be a whole number >= 0 \(0-based\)"):
            schedule(step, 0.0)
