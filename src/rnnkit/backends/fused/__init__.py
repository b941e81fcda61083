"""The fused backend: each cell's recurrence, forward and backward, in C++ (see csrc/), and the
streaming single-step kernel (:class:`FusedStepper`)."""

from .backend import fused_project, fused_scan, fused_unavailable, fused_unsupported
from .stepper import FusedStepper

__all__ = ["FusedStepper", "fused_project", "fused_scan", "fused_unavailable", "fused_unsupported"]
