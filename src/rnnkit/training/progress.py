"""A progress bar for training: step, loss, tokens/s and ETA (tqdm, on stderr).

With a time budget the bar counts seconds, so its ETA is the budget's end; with a step limit it
counts steps. Without tqdm, or with ``enabled=False``, it prints nothing.
"""

from __future__ import annotations


class Progress:
    def __init__(self, *, total_steps: int | None, budget_seconds: float | None,
                 start_step: int = 0, start_seconds: float = 0.0, enabled: bool = True) -> None:
        self.by_time = budget_seconds is not None
        self.bar = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        if self.by_time:
            self.bar = tqdm(total=round(budget_seconds), initial=round(start_seconds), unit="s",
                            dynamic_ncols=True, leave=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{remaining}{postfix}]")
        else:
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step",
                            dynamic_ncols=True, leave=True)

    def update(self, *, step: int, seconds: float, **fields) -> None:
        if self.bar is None:
            return
        self.bar.n = min(round(seconds), self.bar.total) if self.by_time else step
        self.bar.set_postfix(step=step, **fields, refresh=False)
        self.bar.refresh()

    def write(self, line: str) -> None:
        """Print a line above the bar (or plainly, without one)."""
        if self.bar is not None:
            self.bar.write(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
