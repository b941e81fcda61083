"""Under torch.autocast, rnnkit layers run the recurrence in their parameters' dtype.

Oracle: the same layer called outside autocast on the float32 input.
"""

from __future__ import annotations

import torch

import rnnkit


def _layers():
    torch.manual_seed(0)
    return {
        "LSTM": rnnkit.LSTM(6, 8, num_layers=2, batch_first=True),
        "GRU bidirectional": rnnkit.GRU(6, 8, bidirectional=True, batch_first=True),
        "Recurrent": rnnkit.Recurrent(rnnkit.RNNCell(6, 8)),
        "Stacked": rnnkit.Stacked([rnnkit.Recurrent(rnnkit.GRUCell(6, 8)),
                                   rnnkit.Recurrent(rnnkit.GRUCell(8, 8))]),
    }


def test_output_under_bf16_autocast_equals_float32_without_it():
    x = torch.randn(3, 5, 6)
    for name, layer in _layers().items():
        expected, _ = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            # A bfloat16 input, as a preceding autocast layer would produce, is accepted too.
            got, _ = layer(x)
            got_from_bf16, _ = layer(x.bfloat16())
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got, expected, atol=0, rtol=0, msg=name)
        torch.testing.assert_close(got_from_bf16, layer(x.bfloat16().float())[0], atol=0, rtol=0,
                                   msg=name)


def test_gradients_flow_under_autocast_into_a_bf16_head():
    layer = rnnkit.LSTM(6, 8, batch_first=True)
    head = torch.nn.Linear(8, 3)
    x = torch.randn(2, 4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = layer(x)
        loss = head(output).float().square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
