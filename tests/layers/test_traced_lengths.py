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
