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
