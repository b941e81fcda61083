"""The fused kernels' cache of large buffers (see ``csrc/buffer_pool.h``).

The fused ops take their large outputs and temporaries (gates, saved activations, gradients;
256 KB and up) from a cache of blocks that earlier calls freed, instead of fresh pages that the
OS must fault in and zero: at B = 64 that was about a quarter of a training step. A steady loop
therefore keeps up to its peak working set cached, 1 GiB at most by default. These functions
inspect and bound it, like ``torch.cuda.empty_cache`` and friends for the GPU.
"""

from __future__ import annotations

from .build import loaded_ops as _ops


def buffer_cache_bytes() -> int:
    """Bytes held in the cache now (blocks no tensor uses)."""
    return int(_ops().buffer_cache_bytes())


def empty_buffer_cache() -> None:
    """Return every cached block to the OS; tensors alive keep their memory."""
    _ops().empty_buffer_cache()


def set_buffer_cache_limit(limit_bytes: int) -> None:
    """Keep at most ``limit_bytes`` cached from now on (0 turns caching off)."""
    if not isinstance(limit_bytes, int) or limit_bytes < 0:
        raise ValueError(f"limit_bytes must be an int >= 0, got {limit_bytes!r}")
    _ops().set_buffer_cache_limit(limit_bytes)
