"""The fused backend: each cell's recurrence, forward and backward, in C++ (see csrc/)."""

from .backend import fused_scan, fused_unavailable, fused_unsupported

__all__ = ["fused_scan", "fused_unavailable", "fused_unsupported"]
