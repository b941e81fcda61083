"""``lengths=`` in traced programs: torch.export and torch.compile(fullgraph=True).

The eager checks of ``lengths`` read its values (``int(lengths.min())``), which a tracer cannot
do; traced, they become assertions in the graph. Oracles: the eager module (outputs must be
equal) and the eager errors (bad lengths must still fail, now when the program runs).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

STEPS, BATCH, INPUT, HIDDEN = 6, 4, 3, 5
LENGTHS = [6, 3, 1, 4]


class WithLengths(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        return self.layer(x, lengths=lengths)[0]


def _lengths(form: str, good: bool) -> torch.Tensor:
    values = torch.tensor(LENGTHS if good else [STEPS + 1, 3, 1, 4])
    if form == "mask":  # (T, B), True on each sequence's valid steps
        mask = torch.arange(STEPS).unsqueeze(1) < values.clamp(max=STEPS).unsqueeze(0)
        if not good:
            mask[2, 0] = False  # a hole: not a prefix
        return mask
    return values


@pytest.mark.parametrize("form", ["lengths", "mask"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_export_and_full_graph_compile_take_lengths(kind, form, backend):
    torch.manual_seed(0)
    layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[kind](
        INPUT, HIDDEN, bidirectional=True, backend=backend)
    module = WithLengths(layer)
    x = torch.randn(STEPS, BATCH, INPUT)
    lengths = _lengths(form, good=True)
    expected = module(x, lengths)
    exported = torch.export.export(module, (x, lengths)).module()
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    for name, program in (("export", exported), ("compile", compiled)):
        assert torch.equal(program(x, lengths), expected), name
        with pytest.raises(RuntimeError,
                           match="lengths must be in 1..T, T the input|must be True on a"):
            program(x, _lengths(form, good=False))


@pytest.mark.parametrize("with_lengths", [False, True], ids=["no-lengths", "lengths"])
def test_an_lstm_exports_and_compiles_for_every_batch_size_under_no_grad(with_lengths):
    """Under no_grad the fused LSTM chose its in-loop projection from B >= 8, a Python branch
    on the batch size: torch.export with a dynamic batch refused every B on the other side
    ("Constraints violated (B)"), and torch.compile(dynamic=True) made one graph per side.
    Oracle: the eager module at batch sizes on both sides of 8."""
    from torch._dynamo.utils import counters
    from torch.export import Dim

    torch.manual_seed(0)
    layer = rnnkit.LSTM(INPUT, HIDDEN, batch_first=True).eval()

    class Module(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x, lengths):
            return self.layer(x, lengths=lengths if with_lengths else None)[0]

    module = Module()

    def inputs(batch):
        return (torch.randn(batch, STEPS, INPUT),
                torch.arange(batch) % STEPS + 1)

    dynamic = {"x": {0: Dim("B", min=2, max=64)}, "lengths": {0: Dim("B", min=2, max=64)}}
    with torch.no_grad():
        exported = torch.export.export(module, inputs(4), dynamic_shapes=dynamic).module()
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(module, backend="eager", dynamic=True)
        for batch in (4, 5, 9, 16):
            example = inputs(batch)
            expected = module(*example)
            torch.testing.assert_close(exported(*example), expected)
            torch.testing.assert_close(compiled(*example), expected)
    assert counters["stats"]["unique_graphs"] == 1
