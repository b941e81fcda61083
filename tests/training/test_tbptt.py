"""Truncated-BPTT windows over a token stream, their resume, and detaching carried state."""

from __future__ import annotations

import json
from typing import NamedTuple

import pytest
import torch

from rnnkit.training.tbptt import ContiguousBatches, detach_state


def take(batches, count):
    return [next(batches) for _ in range(count)]


def one_epoch(batches):
    """The windows of the epoch that starts with the next window."""
    first = next(batches)
    assert first.starts_epoch
    windows = [first]
    while batches.position < batches.columns - 1:
        # each window advances at least one column: more windows than columns is a loop that
        # never reaches the epoch's end (windows overlapping by one did: a hang, not a failure)
        assert len(windows) < batches.columns, "the windows never reach the end of the epoch"
        windows.append(next(batches))
    return windows


def expected_rows(n, batch):
    columns = n // batch
    return [list(range(b * columns, (b + 1) * columns)) for b in range(batch)]


def test_rows_are_contiguous_pieces():
    batches = ContiguousBatches(torch.arange(53), batch_size=3, window=5)
    assert batches.rows.tolist() == expected_rows(53, 3)


def test_targets_are_inputs_plus_one():
    batches = ContiguousBatches(torch.arange(61), batch_size=4, window=3)
    for window in take(batches, 12):  # several epochs
        assert torch.equal(window.targets, window.inputs + 1)
        assert window.inputs.shape == window.targets.shape


@pytest.mark.parametrize("random_length", [False, True])
def test_windows_tile_each_row_once_per_epoch(random_length):
    n, batch, length = 203, 3, 6
    batches = ContiguousBatches(torch.arange(n), batch, length, random_length=random_length)
    rows = expected_rows(n, batch)
    for _ in range(2):
        windows = one_epoch(batches)
        for b in range(batch):
            inputs = [t for w in windows for t in w.inputs[b].tolist()]
            targets = [t for w in windows for t in w.targets[b].tolist()]
            assert inputs == rows[b][:-1]  # no gap, no overlap, in order
            assert targets == rows[b][1:]


def test_fixed_windows_have_the_truncation_length():
    n, batch, length = 53, 3, 5  # 17 columns: inputs cover 16 of them
    windows = one_epoch(ContiguousBatches(torch.arange(n), batch, length))
    columns = n // batch
    expected = [min(length, columns - 1 - start) for start in range(0, columns - 1, length)]
    assert [w.inputs.shape[1] for w in windows] == expected
    assert all(w.inputs.shape[0] == batch for w in windows)


def test_starts_epoch_only_at_each_epochs_first_window():
    n, batch, length = 53, 3, 5
    per_epoch = -(-(n // batch - 1) // length)  # ceil((columns - 1) / L)
    batches = ContiguousBatches(torch.arange(n), batch, length)
    flags = [w.starts_epoch for w in take(batches, 3 * per_epoch + 1)]
    assert flags == [i % per_epoch == 0 for i in range(3 * per_epoch + 1)]


def test_epochs_done_counts_consumed_columns():
    n, batch, length = 53, 3, 5
    batches = ContiguousBatches(torch.arange(n), batch, length)
    assert batches.epochs_done == 0
    consumed, seen = 0, []
    for _ in range(10):  # two and a half epochs
        consumed += next(batches).inputs.shape[1]
        seen.append(batches.epochs_done)
        assert batches.epochs_done == pytest.approx(consumed / (n // batch - 1))
    assert all(b > a for a, b in zip(seen, seen[1:]))


def test_epochs_done_after_whole_epochs():
    batches = ContiguousBatches(torch.arange(53), 3, 5)
    one_epoch(batches)
    assert batches.epochs_done == pytest.approx(1.0)
    one_epoch(batches)
    assert batches.epochs_done == pytest.approx(2.0)


@pytest.mark.parametrize("random_length", [False, True])
def test_resume_replays_the_same_windows(random_length):
    def make():
        return ContiguousBatches(torch.arange(400), 4, 8, random_length=random_length, seed=3)

    original = make()
    take(original, 7)
    state = json.loads(json.dumps(original.state_dict()))  # as stored in a checkpoint
    expected = take(original, 25)  # crosses epoch boundaries

    resumed = make()
    resumed.load_state_dict(state)
    for want, got in zip(expected, take(resumed, 25)):
        assert torch.equal(want.inputs, got.inputs)
        assert torch.equal(want.targets, got.targets)
        assert want.starts_epoch == got.starts_epoch


def lengths(seed, count=30):
    batches = ContiguousBatches(torch.arange(4000), 2, 10, random_length=True, seed=seed)
    return [w.inputs.shape[1] for w in take(batches, count)]


def test_random_lengths_are_reproducible_per_seed():
    assert lengths(1) == lengths(1)
    assert lengths(1) != lengths(2)


def test_random_lengths_vary_and_stay_in_range():
    drawn = lengths(0, count=60)
    assert len(set(drawn)) > 3
    assert all(2 <= n <= 20 for n in drawn)


def test_random_truncation_points_move_between_epochs():
    batches = ContiguousBatches(torch.arange(600), 2, 10, random_length=True, seed=0)
    first = [w.inputs.shape[1] for w in one_epoch(batches)]
    second = [w.inputs.shape[1] for w in one_epoch(batches)]
    assert first != second


def test_smallest_stream_is_accepted():
    batches = ContiguousBatches(torch.arange(3 * 6), batch_size=3, window=5)
    window = next(batches)
    assert window.inputs.shape == (3, 5)


def test_too_small_stream_raises_naming_batch_and_window():
    with pytest.raises(ValueError) as excinfo:
        ContiguousBatches(torch.arange(3 * 6 - 1), batch_size=3, window=5)
    message = str(excinfo.value)
    assert "batch" in message and "window" in message


@pytest.mark.parametrize("kwargs", [dict(batch_size=0, window=4), dict(batch_size=2, window=0)])
def test_nonpositive_sizes_raise(kwargs):
    with pytest.raises(ValueError):
        ContiguousBatches(torch.arange(100), **kwargs)


def test_two_dimensional_tokens_raise():
    with pytest.raises(ValueError, match="1-D"):
        ContiguousBatches(torch.arange(100).reshape(10, 10), 2, 3)


class State(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor


def test_detach_state_on_nested_structure():
    weight = torch.randn(3, requires_grad=True)
    h, c, extra = weight * 2, weight + 1, weight.exp()
    state = {"layers": (State(h, c), [extra, None]), "step": 4}
    assert h.requires_grad and c.requires_grad

    detached = detach_state(state)
    layer, rest = detached["layers"]
    assert type(layer) is State
    assert detached["step"] == 4 and rest[1] is None
    for before, after in ((h, layer.h), (c, layer.c), (extra, rest[0])):
        assert not after.requires_grad
        assert torch.equal(before.detach(), after)


def test_detach_state_on_plain_tensor():
    weight = torch.ones(2, requires_grad=True)
    out = detach_state(weight * 3)
    assert not out.requires_grad and torch.equal(out, torch.full((2,), 3.0))
