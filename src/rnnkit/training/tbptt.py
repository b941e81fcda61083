"""Truncated backpropagation through time over one long token stream.

The stream of N tokens is cut into B equal rows, read side by side (row b is the b-th
contiguous piece of the text), so the hidden state after window k of row b is exactly the
state the model needs at the start of window k + 1 of the same row. Training carries that
state across windows and detaches it at each window boundary: gradients flow back at most one
window (the truncation length L), while the state itself remembers arbitrarily far.

    tokens (N,) -> rows (B, N // B)
    window k:  inputs = rows[:, t_k : t_k + L],  targets = rows[:, t_k + 1 : t_k + L + 1]

With ``random_length=True`` each window's length is drawn around L (Merity et al. 2017: L with
probability 0.95, else L / 2, then jittered by a normal with standard deviation 5), so the
truncation points move between epochs. The draw is a pure function of (seed, epoch, window
index): resuming from a checkpoint replays exactly the same windows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils import _pytree as pytree


class Window(NamedTuple):
    inputs: torch.Tensor  #: (B, L) int64
    targets: torch.Tensor  #: (B, L) int64, the inputs shifted by one token
    starts_epoch: bool  #: the first window of an epoch: carried state must be reset


def detach_state(state: Any) -> Any:
    """The same (nested) state with every tensor detached from the autograd graph."""
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, state)


class ContiguousBatches:
    """Windows over a token stream for truncated BPTT, resumable through ``state_dict``.

    ``tokens`` (N,) int64; ``batch_size`` B rows; ``window`` the truncation length L.
    Iterating never ends: after the last window of an epoch it starts the next one.
    """

    def __init__(self, tokens: torch.Tensor, batch_size: int, window: int, *,
                 random_length: bool = False, seed: int = 0) -> None:
        if batch_size < 1 or window < 1:
            raise ValueError(f"batch_size and window must be >= 1; got {batch_size}, {window}")
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be a 1-D stream; got shape {tuple(tokens.shape)}")
        needed = batch_size * (window + 1)
        if tokens.numel() < needed:
            raise ValueError(
                f"the training text has {tokens.numel()} tokens, fewer than one batch "
                f"(batch_size {batch_size} x (window {window} + 1) = {needed}); use a larger "
                f"corpus or lower the batch size or window"
            )
        columns = tokens.numel() // batch_size
        self.rows = tokens[: columns * batch_size].reshape(batch_size, columns)
        self.window = window
        self.random_length = random_length
        self.seed = seed
        self.epoch = 0
        self.position = 0  #: column where the next window starts
        self.index = 0  #: windows read in this epoch

    @property
    def columns(self) -> int:
        return self.rows.size(1)

    @property
    def epochs_done(self) -> float:
        """Fractional epochs consumed, e.g. 2.5 halfway through the third epoch."""
        return self.epoch + self.position / max(self.columns - 1, 1)

    def _length(self) -> int:
        if not self.random_length:
            return self.window
        mixed = ((self.seed * 1_000_003 + self.epoch) * 1_000_033 + self.index) % (2 ** 63)
        draw = torch.Generator().manual_seed(mixed)
        base = self.window if torch.rand((), generator=draw).item() < 0.95 else self.window / 2
        length = int(round(base + 5.0 * torch.randn((), generator=draw).item()))
        return max(2, min(length, 2 * self.window))

    def __iter__(self):
        return self

    def __next__(self) -> Window:
        if self.position >= self.columns - 1:
            self.epoch += 1
            self.position = 0
            self.index = 0
        start = self.position
        stop = min(start + self._length(), self.columns - 1)
        self.position = stop
        self.index += 1
        return Window(self.rows[:, start:stop], self.rows[:, start + 1: stop + 1], start == 0)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.index = state["epoch"], state["position"], state["index"]
