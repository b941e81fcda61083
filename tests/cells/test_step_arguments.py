"""A cell's ``step`` takes the projected input (B, G) and its own state type.

The raw input in place of the gates broadcast to a plausible next state when I was 1 or G (no
error at all), and a tensor state failed with "'Tensor' object has no attribute 'h'" (probe,
2026-12-08). Oracle: the same step with the arguments as documented, which equals one step of
torch.nn's cell.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.errors import ShapeMismatchError

CELLS = {"gru": (rnnkit.cells.GRUCell, torch.nn.GRUCell),
         "rnn": (rnnkit.cells.RNNCell, torch.nn.RNNCell),
         "lstm": (rnnkit.cells.LSTMCell, torch.nn.LSTMCell)}


@pytest.mark.parametrize("kind", list(CELLS))
def test_step_refuses_the_raw_input_and_a_foreign_state(kind):
    ours_type, torch_type = CELLS[kind]
    torch.manual_seed(0)
    cell = ours_type(1, 4)  # I = 1 broadcast against any G
    reference = torch_type(1, 4)
    reference.load_state_dict(cell.state_dict())
    x, state = torch.randn(2, 1), cell.initial_state(2)
    stepped = cell.step(cell.project_input(x), state)
    expected = reference(x)
    assert torch.allclose(stepped.h, expected[0] if kind == "lstm" else expected, atol=1e-6)
    with pytest.raises(ShapeMismatchError, match=r"gates_x_t must be the projected input \(B, G\) "
                                                 rf"with G = {cell.gate_count * 4}"):
        cell.step(x, state)
    with pytest.raises(TypeError, match=rf"state must be a {cell.state_type.__name__} "
                                        r"\(cell.initial_state\(batch\) makes one\); got Tensor"):
        cell.step(cell.project_input(x), state.h)
    with pytest.raises(RuntimeError):  # another batch: the step's own product refuses it
        cell.step(cell.project_input(torch.randn(3, 1)), state)
