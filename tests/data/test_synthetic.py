import pytest
import torch

from rnnkit.data import adding_problem


def test_adding_problem_targets_are_the_sum_of_the_two_marked_values():
    x, y = adding_problem(64, 20, generator=torch.Generator().manual_seed(3))
    assert x.shape == (64, 20, 2) and y.shape == (64, 1)
    markers = x[..., 1]
    assert torch.equal(markers.sum(dim=1), torch.full((64,), 2.0))
    assert torch.equal(markers[:, :10].sum(dim=1), torch.ones(64))  # one marker per half
    for row in range(64):
        marked = x[row, markers[row] == 1, 0]
        assert torch.allclose(y[row, 0], marked.sum())


def test_mean_predictor_error_is_one_sixth():
    # The sum of two U(0, 1) has mean 1 and variance 1/6: the demo's baseline.
    _, y = adding_problem(200_000, 4, generator=torch.Generator().manual_seed(0))
    assert abs(y.mean().item() - 1.0) < 0.005
    assert abs(((y - 1.0) ** 2).mean().item() - 1 / 6) < 0.003


def test_same_seed_same_data():
    a = adding_problem(8, 6, generator=torch.Generator().manual_seed(1))
    b = adding_problem(8, 6, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("call, error, message", [
    (dict(batch_size=0, steps=5), ValueError, "batch_size must be >= 1; got 0"),
    (dict(batch_size=-1, steps=5), ValueError, "batch_size must be >= 1; got -1"),
    (dict(batch_size=2.5, steps=5), TypeError, "batch_size must be an int; got float 2.5"),
    (dict(batch_size=True, steps=5), TypeError, "batch_size must be an int; got bool True"),
    (dict(batch_size=4, steps=10.0), TypeError, "steps must be an int; got float 10.0"),
    (dict(batch_size=4, steps=1), ValueError, "steps must be >= 2 (one marker per half); got 1"),
    (dict(batch_size=4, steps=5, generator="seed"), TypeError,
     "generator must be a torch.Generator or None; got str"),
])
def test_bad_arguments_are_one_line_errors_naming_them(call, error, message):
    """batch_size=0 returned empty tensors (a NaN MSE downstream), and floats, bools or a
    string generator gave torch's multi-line signature dump of rand(). Oracle: the argument
    named, with its value, in one line."""
    with pytest.raises(error) as info:
        adding_problem(**call)
    assert str(info.value) == message


def test_numpy_integers_are_taken_as_ints():
    """Sizes computed with NumPy are integers too. Oracle: the same call with Python ints."""
    import numpy as np

    a = adding_problem(np.int64(3), np.int32(6), generator=torch.Generator().manual_seed(2))
    b = adding_problem(3, 6, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
