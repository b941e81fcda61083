"""A scoped CPU thread count for tasks whose matrices are too small to share out.

With hidden sizes of tens of units, a second intra-op thread saves little arithmetic and, on a
machine whose cores are busy with other jobs, its synchronization can cost far more: one
classification step measured 21 ms on one thread and 550 ms on two while another job ran.
"""

from __future__ import annotations

import contextlib
import os

import torch


@contextlib.contextmanager
def cpu_threads(count: int):
    """Run the block with ``count`` intra-op threads (0: leave torch's setting), then restore."""
    if count < 0:
        raise ValueError(f"threads must be >= 0 (0 keeps torch's setting); got {count}")
    cores = os.cpu_count() or 1
    if count > cores:
        # more threads than cores only adds synchronization, and a huge count crashes the
        # thread pool (100000 segfaulted)
        raise ValueError(f"threads must be at most the {cores} CPU cores here; got {count}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
