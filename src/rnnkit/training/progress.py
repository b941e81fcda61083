"""A progress bar for training: percent of the run, step, loss, rate and ETA (tqdm, stderr).

A run may be limited by steps, epochs and a time budget at once; it ends at whichever comes
first, so the bar shows the largest of the three fractions (the trainer's progress fraction)
and its ETA is the time to that end. Without tqdm, or with ``enabled=False``, it prints nothing; with it, everything goes to stderr.
"""

from __future__ import annotations

import sys

_UNITS = 1000  # the bar counts thousandths of the run, smooth enough for the ETA


class Progress:
    def __init__(self, *, start_fraction: float = 0.0, enabled: bool = True) -> None:
        self.bar = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=_UNITS, initial=round(start_fraction * _UNITS), dynamic_ncols=True,
                        leave=True, bar_format="{percentage:3.0f}%|{bar}| "
                                               "[{elapsed}<{remaining}{postfix}]")

    def update(self, *, fraction: float, step: int, **fields) -> None:
        """``fraction`` of the run done (0..1), after optimizer step ``step``."""
        if self.bar is None:
            return
        self.bar.n = min(round(fraction * _UNITS), _UNITS)
        self.bar.set_postfix(step=step, **fields, refresh=False)
        self.bar.refresh()

    def write(self, line: str) -> None:
        """Print a line above the bar, on stderr like the bar (stdout may carry a command's
        --json result); nothing without a bar (the metrics file has every line)."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
