"""The fused backend: each cell's recurrence, forward and backward, in C++ (see csrc/), and the
streaming single-step kernel (:class:`FusedStepper`)."""

from .backend import (
    amx_bf16_usable, bf16_products_kernel, fused_project, fused_run_without_grad, fused_scan, fused_scan_bf16,
    fused_unavailable, fused_unsupported,
)
from .buffer_cache import buffer_cache_bytes, empty_buffer_cache, set_buffer_cache_limit
from .dense_engine import dense_engine, host_dense_engine, set_dense_engine
from .stepper import FusedStepper

__all__ = [
    "FusedStepper",
    "amx_bf16_usable",
    "bf16_products_kernel",
    "buffer_cache_bytes",
    "dense_engine",
    "empty_buffer_cache",
    "fused_project",
    "fused_run_without_grad",
    "fused_scan",
    "fused_scan_bf16",
    "fused_unavailable",
    "fused_unsupported",
    "host_dense_engine",
    "set_buffer_cache_limit",
    "set_dense_engine",
]
