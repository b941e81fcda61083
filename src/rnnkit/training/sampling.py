"""Shuffled minibatches of sample indices, resumable: the batch stream of sample-based tasks.

Forecasting windows and labelled sequences are independent samples, so an epoch is one pass
over a random permutation of the N sample indices, cut into batches of B (the last batch of an
epoch may be smaller unless ``drop_last``). The permutation of epoch e is a pure function of
(seed, e), so a run resumed from a checkpoint replays exactly the batches it would have seen.
The task maps each batch of indices (B,) int64 to tensors in its ``loss_fn``.
"""

from __future__ import annotations

import torch


class ShuffledBatches:
    """Endless iterator of index batches (B,) int64 over ``num_samples`` samples."""

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0,
                 drop_last: bool = False) -> None:
        if num_samples < 1:
            raise ValueError(f"there are no training samples (num_samples={num_samples}); "
                             f"provide more data or a shorter window")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.num_samples = num_samples
        # A batch larger than the data would repeat samples within a step; cap it instead.
        self.batch_size = min(batch_size, num_samples)
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0  #: index into this epoch's permutation where the next batch starts
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2 ** 63))
        return torch.randperm(self.num_samples, generator=generator)

    @property
    def epochs_done(self) -> float:
        """Fractional epochs consumed, e.g. 2.5 halfway through the third epoch. With
        ``drop_last`` an epoch is its full batches (the dropped tail is never drawn), so it is
        done, 1.0, after the last of them rather than one batch into the next epoch."""
        used = self.num_samples - (self.num_samples % self.batch_size if self.drop_last else 0)
        return self.epoch + self.position / used

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        remaining = self.num_samples - self.position
        if remaining == 0 or (self.drop_last and remaining < self.batch_size):
            self.epoch += 1
            self.position = 0
            self._order = self._permutation(self.epoch)
        batch = self._order[self.position: self.position + self.batch_size]
        self.position += batch.numel()
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._permutation(self.epoch)
