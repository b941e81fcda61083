"""A scoped CPU thread count for tasks whose matrices are too small to share out.

With hidden sizes of tens of units, a second intra-op thread saves little arithmetic and, on a
machine whose cores are busy with other jobs, its synchronization can cost far more: one
classification step measured 21 ms on one thread and 550 ms on two while another job ran.
"""

from __future__ import annotations

import contextlib
import logging
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
        # thread pool (100000 segfaulted); a run trained on a larger machine still resumes
        logging.getLogger("rnnkit").info("threads=%d is more than the %d CPU cores here; "
                                         "using %d", count, cores, cores)
        count = cores
    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
