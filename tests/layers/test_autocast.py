"""Under torch.autocast, rnnkit layers run the recurrence in their parameters' dtype, except
LSTM layers under CPU bfloat16 autocast on a CPU with AMX (the bfloat16 route).

Oracles: the same layer called outside autocast on the float32 input; for the bfloat16 route,
torch.nn.LSTM with the same weights under the same autocast (the same oneDNN primitive), and
the float32 layer to bfloat16 accuracy.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.backends import lowered
from rnnkit.interop import from_torch

needs_amx = pytest.mark.skipif(
    not lowered.cpu_has_amx_bf16(),
    reason="the bfloat16 LSTM route runs only on CPUs with AMX-BF16, which this one lacks")


@pytest.fixture
def float32_recurrence():
    lowered.set_bf16_recurrence(False)
    yield
    lowered.set_bf16_recurrence(True)


def _layers():
    torch.manual_seed(0)
    return {
        "GRU bidirectional": rnnkit.GRU(6, 8, bidirectional=True, batch_first=True),
        "Recurrent": rnnkit.Recurrent(rnnkit.RNNCell(6, 8)),
        "Stacked": rnnkit.Stacked([rnnkit.Recurrent(rnnkit.GRUCell(6, 8)),
                                   rnnkit.Recurrent(rnnkit.GRUCell(8, 8))]),
        # LSTMs the bfloat16 route declines: a projection, a backend asked for by name.
        "LSTM proj_size": rnnkit.LSTM(6, 8, proj_size=4, num_layers=2, batch_first=True),
        "LSTM reference": rnnkit.LSTM(6, 8, batch_first=True, backend="reference"),
    }


def _assert_float32_under_autocast(layers, x, **kwargs):
    for name, layer in layers.items():
        expected, _ = layer(x, **kwargs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            # A bfloat16 input, as a preceding autocast layer would produce, is accepted too.
            got, _ = layer(x, **kwargs)
            got_from_bf16, _ = layer(x.bfloat16(), **kwargs)
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got, expected, atol=0, rtol=0, msg=name)
        torch.testing.assert_close(got_from_bf16, layer(x.bfloat16().float(), **kwargs)[0],
                                   atol=0, rtol=0, msg=name)


def test_output_under_bf16_autocast_equals_float32_without_it():
    _assert_float32_under_autocast(_layers(), torch.randn(3, 5, 6))


def test_lstm_with_lengths_keeps_the_float32_recurrence():
    torch.manual_seed(0)
    layers = {"LSTM": rnnkit.LSTM(6, 8, num_layers=2, batch_first=True)}
    _assert_float32_under_autocast(layers, torch.randn(3, 5, 6), lengths=torch.tensor([5, 2, 4]))


def test_lstm_keeps_float32_when_the_route_is_off_or_the_cpu_lacks_amx(float32_recurrence,
                                                                       monkeypatch):
    torch.manual_seed(0)
    layers = {"LSTM": rnnkit.LSTM(6, 8, num_layers=2, batch_first=True)}
    _assert_float32_under_autocast(layers, torch.randn(3, 5, 6))
    lowered.set_bf16_recurrence(True)
    monkeypatch.setattr(lowered, "cpu_has_amx_bf16", lambda: False)
    _assert_float32_under_autocast(layers, torch.randn(3, 5, 6))


@needs_amx
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_bf16_route_equals_torch_nn_lstm_under_the_same_autocast(batch_first, bidirectional,
                                                                 bias):
    torch.manual_seed(0)
    reference = torch.nn.LSTM(6, 16, num_layers=2, bias=bias, batch_first=batch_first,
                              bidirectional=bidirectional)
    ours = from_torch(reference)
    x = torch.randn(3, 7, 6) if batch_first else torch.randn(7, 3, 6)
    directions = 2 if bidirectional else 1
    state = (torch.randn(2 * directions, 3, 16), torch.randn(2 * directions, 3, 16))
    results = []
    for module in (reference, ours):
        x_leaf = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, (h_n, c_n) = module(x_leaf, state)
        (output.float().square().sum() + h_n.float().sum() + c_n.float().sum()).backward()
        results.append((output, h_n, c_n, x_leaf.grad, [p.grad for p in module.parameters()]))
    (out_ref, h_ref, c_ref, dx_ref, dw_ref), (out, h, c, dx, dw) = results
    assert out.dtype == torch.bfloat16 and h.dtype == c.dtype == torch.float32
    # The same primitive on the same numbers: equal up to the final state's cast to float32.
    torch.testing.assert_close(out, out_ref, atol=0, rtol=0)
    torch.testing.assert_close(h, h_ref.float(), atol=0, rtol=0)
    torch.testing.assert_close(c, c_ref.float(), atol=0, rtol=0)
    # Gradients: where the two sum partial gradients (the directions' input gradients, the
    # weight gradients of a bidirectional layer's input) the order and the precision of the sum
    # differ, so they agree to bfloat16 rounding (torch's own bf16 rtol, 1.6e-2).
    torch.testing.assert_close(dx, dx_ref, atol=2e-3, rtol=1.6e-2)
    for got, expected in zip(dw, dw_ref):
        torch.testing.assert_close(got, expected, atol=2e-3, rtol=1.6e-2)


@needs_amx
def test_bf16_route_is_float32_to_bfloat16_accuracy():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(8, 32, num_layers=2, batch_first=True)
    x = torch.randn(4, 20, 8)
    expected, (h_expected, _) = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, (h, _) = layer(x)
    assert got.dtype == torch.bfloat16  # the route ran
    # bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.004); over 20 steps and two
    # layers the error stays a few of those steps on outputs of size <= 1.
    torch.testing.assert_close(got.float(), expected, atol=0.03, rtol=0)
    torch.testing.assert_close(h, h_expected, atol=0.03, rtol=0)
    assert not torch.equal(got.float(), expected)  # and it is not the float32 result


def test_gradients_flow_under_autocast_into_a_bf16_head():
    layer = rnnkit.LSTM(6, 8, batch_first=True)
    head = torch.nn.Linear(8, 3)
    x = torch.randn(2, 4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = layer(x)
        loss = head(output).float().square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
