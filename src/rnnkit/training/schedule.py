"""Learning-rate schedules: linear warmup, then cosine, step or constant decay.

The schedule is a pure function of the step and of the run's progress in [0, 1], where
progress is the larger of ``step / max_steps`` and ``elapsed / time budget``. That lets one
definition serve step-limited runs and "the best model in 10 minutes" runs, and makes resuming
exact: nothing but the step and the elapsed time needs saving.

    warmup:    lr(s) = lr_max * (s + 1) / warmup_steps              for s < warmup_steps
    cosine:    lr(p) = lr_min + (lr_max - lr_min) * (1 + cos(pi p)) / 2
    step:      lr(p) = lr_max * gamma ** (number of milestones <= p)
    constant:  lr(p) = lr_max
with ``lr_min = lr_max * min_lr_ratio``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class LearningRateSchedule:
    peak: float
    warmup_steps: int = 0
    decay: str = "cosine"  #: "cosine", "step" or "constant"
    min_lr_ratio: float = 0.05
    gamma: float = 0.3  #: step decay factor at each milestone
    milestones: tuple[float, ...] = (0.6, 0.85)  #: progress fractions of the step decay

    def __post_init__(self) -> None:
        for name in ("peak", "min_lr_ratio", "gamma"):  # '1' failed a comparison with a str
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name} must be a number; got {value!r}")
        if not isinstance(self.milestones, (tuple, list)) or any(
                isinstance(m, bool) or not isinstance(m, numbers.Real) for m in self.milestones):
            raise ValueError(f"milestones must be a tuple of fractions of the run, such as "
                             f"(0.6, 0.85); got {self.milestones!r}")
        if self.decay not in ("cosine", "step", "constant"):
            raise ValueError(f"decay must be 'cosine', 'step' or 'constant'; got {self.decay!r}")
        if not 0 < self.peak < math.inf:  # inf made every rate nan (inf - inf)
            raise ValueError(f"learning rate must be positive and finite; got {self.peak}")
        # a fraction of a step overshot the peak during warmup; nan turned warmup off
        if (isinstance(self.warmup_steps, bool)
                or not isinstance(self.warmup_steps, numbers.Integral) or self.warmup_steps < 0):
            raise ValueError(f"warmup_steps must be a whole number >= 0; got "
                             f"{self.warmup_steps!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma (step decay factor) must be in (0, 1]; got {self.gamma}")
        if any(not 0 <= m <= 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of the run in [0, 1]; got "
                             f"{self.milestones}")

    def __call__(self, step: int, progress: float) -> float:
        """Learning rate for optimizer step ``step`` (0-based) at ``progress`` in [0, 1]."""
        if progress != progress:  # NaN: a broken caller, not a point in the run
            raise ValueError("progress must be a number in [0, 1]; got nan")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            # a negative step gave a negative rate during warmup
            raise ValueError(f"step must be a whole number >= 0 (0-based); got {step!r}")
        progress = min(max(progress, 0.0), 1.0)
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        if self.decay == "cosine":
            low = self.peak * self.min_lr_ratio
            return low + (self.peak - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.decay == "step":
            return self.peak * self.gamma ** sum(progress >= m for m in self.milestones)
        return self.peak
