"""ShuffledBatches: every sample once per epoch, reproducible, and resumable mid-epoch."""

import pytest
import torch

from rnnkit.training import ShuffledBatches


def _take(batches, count):
    return [next(batches) for _ in range(count)]


def test_each_epoch_is_a_permutation_of_all_samples():
    batches = ShuffledBatches(10, 4, seed=3)
    for epoch in range(3):
        got = torch.cat(_take(batches, 3))  # 4 + 4 + 2
        assert sorted(got.tolist()) == list(range(10))
    assert batches.epochs_done == pytest.approx(3.0)


def test_epochs_differ_and_seeds_reproduce():
    first = torch.cat(_take(ShuffledBatches(50, 50, seed=1), 2))
    again = torch.cat(_take(ShuffledBatches(50, 50, seed=1), 2))
    assert torch.equal(first, again)
    assert not torch.equal(first[:50], first[50:])


def test_drop_last_keeps_batches_full():
    batches = ShuffledBatches(10, 4, drop_last=True)
    assert [b.numel() for b in _take(batches, 5)] == [4, 4, 4, 4, 4]


def test_resume_replays_the_same_batches():
    reference = ShuffledBatches(13, 5, seed=7)
    _take(reference, 4)
    state = reference.state_dict()
    expected = _take(reference, 6)
    resumed = ShuffledBatches(13, 5, seed=7)
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(expected, _take(resumed, 6)))


def test_batch_larger_than_data_is_capped_and_bad_sizes_are_errors():
    assert next(ShuffledBatches(3, 10)).numel() == 3
    with pytest.raises(ValueError, match="no training samples"):
        ShuffledBatches(0, 4)
    with pytest.raises(ValueError, match="batch_size"):
        ShuffledBatches(5, 0)


def test_drop_last_counts_an_epoch_done_after_its_last_full_batch():
    """The dropped tail was never counted, so max_epochs=1 drew a batch of the second epoch
    (0.4, 0.8, then 1.4). Oracle: an epoch is N // B full batches."""
    batches = ShuffledBatches(10, 4, drop_last=True)
    counts = []
    for _ in range(4):
        next(batches)
        counts.append(batches.epochs_done)
    assert counts == [0.5, 1.0, 1.5, 2.0]
    assert ShuffledBatches(10, 4).epochs_done == 0.0
