"""The fused backend: each cell's recurrence, forward and backward, in C++ (see csrc/), and the
streaming single-step kernel (:class:`FusedStepper`)."""

from .backend import (
    fused_project, fused_run_without_grad, fused_scan, fused_unavailable, fused_unsupported,
)
from .buffer_cache import buffer_cache_bytes, empty_buffer_cache, set_buffer_cache_limit
from .stepper import FusedStepper

__all__ = [
    "FusedStepper",
    "buffer_cache_bytes",
    "empty_buffer_cache",
    "fused_project",
    "fused_run_without_grad",
    "fused_scan",
    "fused_unavailable",
    "fused_unsupported",
    "set_buffer_cache_limit",
]
