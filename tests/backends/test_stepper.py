"""FusedStepper (the streaming single-step kernel) against the full-sequence reference backend."""

from __future__ import annotations

import re

import pytest
import torch

import rnnkit
from rnnkit.backends import BACKENDS
from rnnkit.backends.fused import FusedStepper
from tolerances import assert_close

fused_reason = BACKENDS["fused"].unavailable()
pytestmark = [
    pytest.mark.skipif(fused_reason is not None, reason=f"fused kernels unavailable: {fused_reason}"),
    pytest.mark.usefixtures("single_thread"),
]

CELLS = {
    "lstm": lambda i, h: rnnkit.LSTMCell(i, h),
    "lstm_proj": lambda i, h: rnnkit.LSTMCell(i, h, proj_size=max(1, h // 2)),
    "gru": lambda i, h: rnnkit.GRUCell(i, h),
    "rnn_tanh": lambda i, h: rnnkit.RNNCell(i, h),
    "rnn_relu": lambda i, h: rnnkit.RNNCell(i, h, nonlinearity="relu"),
    "lstm_nobias": lambda i, h: rnnkit.LSTMCell(i, h, bias=False),
    "gru_nobias": lambda i, h: rnnkit.GRUCell(i, h, bias=False),
}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("features, hidden", [(3, 5), (16, 32), (7, 130)])
def test_steps_equal_the_whole_sequence(kind, batch, features, hidden):
    torch.manual_seed(0)
    cell = CELLS[kind](features, hidden)
    x = torch.randn(batch, 9, features)
    with torch.no_grad():
        expected, final = rnnkit.Recurrent(cell, backend="reference")(x)
    stepper = FusedStepper(cell, batch_size=batch)
    for t in range(x.size(1)):
        h = stepper.step(x[:, t].contiguous())
        assert h is stepper.h  # the state tensor itself, updated in place
        assert_close(h, expected[:, t], what=f"step {t}")
    for got, want in zip(stepper.state, final):
        assert_close(got, want)


def test_state_can_be_set_and_reset():
    torch.manual_seed(1)
    cell = rnnkit.LSTMCell(4, 6)
    x = torch.randn(2, 5, 4)
    h0, c0 = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        expected, _ = rnnkit.Recurrent(cell, backend="reference")(x, rnnkit.LSTMState(h0, c0))
    stepper = FusedStepper(cell, batch_size=2)
    stepper.step(torch.randn(2, 4))
    stepper.state = (h0, c0)
    for t in range(5):
        stepper.step(x[:, t].contiguous())
    assert_close(stepper.h, expected[:, -1])
    stepper.reset()
    assert torch.count_nonzero(stepper.h) == 0 and torch.count_nonzero(stepper.c) == 0


def test_gru_state_takes_a_bare_tensor_and_bad_states_write_nothing():
    """A GRU's state given as torch.nn gives it (a bare h) used to be iterated row by row: row 0
    was broadcast into every stream before an AttributeError; an LSTM given (h,) kept its old c
    silently (review, 2026-12-05). The oracle: the reference backend from the same h0."""
    torch.manual_seed(2)
    cell = rnnkit.GRUCell(4, 6)
    x, h0 = torch.randn(3, 5, 4), torch.randn(3, 6)
    with torch.no_grad():
        expected, _ = rnnkit.Recurrent(cell, backend="reference")(x, cell.state_type(h0))
    stepper = FusedStepper(cell, batch_size=3)
    stepper.state = h0
    for t in range(5):
        stepper.step(x[:, t].contiguous())
    assert_close(stepper.h, expected[:, -1])

    lstm = FusedStepper(rnnkit.LSTMCell(4, 6), batch_size=3)
    lstm.step(torch.randn(3, 4))
    before = [t.clone() for t in lstm.state]
    for bad, needle in (((torch.randn(3, 6),), "(h, c)"), (torch.randn(3, 6), "(h, c)"),
                        ((torch.randn(3, 6), torch.randn(1, 6)), "state c must have shape"),
                        ((torch.randn(3, 6), torch.randn(3, 6).double()), "dtype")):
        with pytest.raises((ValueError, TypeError), match=re.escape(needle)):
            lstm.state = bad
        assert all(torch.equal(a, b) for a, b in zip(lstm.state, before))  # nothing written


def test_weights_are_a_snapshot():
    cell = rnnkit.GRUCell(3, 4)
    stepper = FusedStepper(cell)
    x = torch.randn(1, 3)
    before = stepper.step(x).clone()
    with torch.no_grad():
        cell.weight_hh.mul_(3.0)
    stepper.reset()
    assert torch.equal(stepper.step(x), before)


@pytest.mark.parametrize("bad, message", [
    (torch.randn(2, 3), r"shape \(1, 3\); got Float on cpu of shape \[2, 3\]"),
    (torch.randn(1, 3, dtype=torch.float64), r"float32 CPU tensor of shape \(1, 3\); got Double"),
    (torch.randn(3, 2)[:1], r"shape \(1, 3\); got Float on cpu of shape \[1, 2\]"),
])
def test_bad_input_is_a_one_line_error(bad, message):
    stepper = FusedStepper(rnnkit.LSTMCell(3, 4))
    with pytest.raises(ValueError, match=message) as error:
        stepper.step(bad)
    assert "\n" not in str(error.value)
    with pytest.raises(TypeError, match="x must be a torch.Tensor; got list"):
        stepper.step([1.0, 2.0, 3.0])


def test_strided_input_steps_as_its_contiguous_copy():
    torch.manual_seed(2)
    cell = rnnkit.GRUCell(3, 4)
    wide = torch.randn(2, 6)
    strided, packed = FusedStepper(cell, batch_size=2), FusedStepper(cell, batch_size=2)
    for _ in range(3):
        assert torch.equal(strided.step(wide[:, ::2]), packed.step(wide[:, ::2].contiguous()))


def test_unsupported_cells_and_dtypes():
    with pytest.raises(TypeError, match="runs float32 cells on the CPU; the cell's weight_ih is "
                                        "torch.float64"):
        FusedStepper(rnnkit.GRUCell(3, 4).double())
    with pytest.raises(TypeError, match="supports rnnkit LSTMCell, GRUCell and RNNCell; got GRUCell"):
        FusedStepper(torch.nn.GRUCell(3, 4))
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        FusedStepper(rnnkit.GRUCell(3, 4), batch_size=0)


def test_a_bound_step_kept_alone_owns_the_lstm_cell_state():
    """`step = FusedStepper(cell, B).step` frees the FusedStepper; the native object held h but
    only a raw pointer to the LSTM's c, so every step read and wrote freed memory (NaN under
    glibc's free-fill below, heap corruption otherwise). Run in a child process with freed
    memory filled with 0xFF bytes (a float32 NaN). Oracle: a stepper that is kept alive."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import gc, torch, rnnkit
        from rnnkit.backends.fused import FusedStepper
        torch.manual_seed(0)
        cell = rnnkit.LSTMCell(4, 32)
        xs = torch.randn(3, 64, 4)
        kept = FusedStepper(cell, batch_size=64)
        expected = [kept.step(x).clone() for x in xs]
        step = FusedStepper(cell, batch_size=64).step
        gc.collect()
        garbage = [torch.randn(64, 32) for _ in range(8)]  # reuse of freed memory
        print(max((step(x) - e).abs().max().item() for x, e in zip(xs, expected)))
    """)
    env = dict(os.environ, MALLOC_PERTURB_="255", GLIBC_TUNABLES="glibc.malloc.perturb=255")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) == 0.0


@pytest.mark.parametrize("kind, name", [("gru", "weight_hh"), ("gru", "bias_ih"),
                                        ("lstm", "bias_hh"), ("lstm_proj", "weight_hr")])
def test_every_weight_is_checked_not_only_weight_ih(kind, name):
    """A float64 weight_hh was read as float32 memory: a wrong state and no error, where the
    cell's own forward raises."""
    cell = CELLS[kind](3, 4)
    setattr(cell, name, torch.nn.Parameter(getattr(cell, name).detach().double()))
    with pytest.raises(TypeError, match=f"the cell's {name} is torch.float64 on cpu"):
        FusedStepper(cell)


def test_a_state_from_a_forward_is_copied_without_its_graph():
    """The state setter copied under autograd: the stepper's h then carried a CopyBackwards
    node, .numpy() refused it, and a backward through a step treated the step as the identity.
    Oracle: the cell's own step from the same state."""
    torch.manual_seed(0)
    cell = CELLS["gru"](3, 4)
    h0 = cell(torch.randn(2, 3))
    assert h0.requires_grad
    stepper = FusedStepper(cell, batch_size=2)
    stepper.state = h0
    x = torch.randn(2, 3)
    h1 = stepper.step(x)
    assert not h1.requires_grad and h1.grad_fn is None
    with torch.no_grad():
        expected = cell(x, h0)
    assert_close(h1, getattr(expected, "h", expected), what="a step from a state set from a forward")
    h1.numpy()  # no "requires grad" refusal


def test_a_stepper_made_under_inference_mode_resets_and_takes_states_after_it():
    """Its state tensors were inference tensors, which reset() and the state setter may not
    write outside that mode. Oracle: a stepper made normally."""
    torch.manual_seed(0)
    cell = CELLS["lstm"](3, 4)
    with torch.inference_mode():
        made_inside = FusedStepper(cell, batch_size=2)
    normal = FusedStepper(cell, batch_size=2)
    x = torch.randn(2, 3)
    for stepper in (made_inside, normal):
        stepper.step(x)
        state = tuple(t.clone() for t in stepper.state)
        stepper.reset()
        stepper.state = state
        stepper.step(x)
    assert_close(made_inside.h, normal.h, what="h of a stepper made under inference_mode")
    assert_close(made_inside.c, normal.c, what="c of a stepper made under inference_mode")


def test_batch_size_may_be_a_numpy_integer_and_a_state_must_be_tensors():
    import numpy as np  # a dependency of rnnkit
    cell = CELLS["gru"](3, 4)
    assert FusedStepper(cell, batch_size=np.int64(2)).h.shape == (2, 4)
    stepper = FusedStepper(cell, batch_size=2)
    for value in (None, np.zeros((2, 4), np.float32)):
        with pytest.raises(TypeError, match=r"takes h, tensors of shape \(2, 4\); got "):
            stepper.state = value
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        FusedStepper(cell, batch_size=True)


def test_a_pruned_cell_steps_with_the_weights_a_forward_would_use():
    """prune keeps the weight a forward uses as an attribute its pre-hook recomputes, so after
    an optimizer step the stepper packed the previous values. Oracle: the cell's own forward
    after the step; a hook the stepper cannot run is refused."""
    from torch.nn.utils import prune

    from rnnkit.runtime import UnsupportedModelError

    torch.manual_seed(0)
    cell = CELLS["gru"](3, 4)
    prune.l1_unstructured(cell, "weight_hh", amount=0.5)
    x = torch.randn(2, 3)
    optimizer = torch.optim.SGD(cell.parameters(), lr=0.5)
    cell(x, cell(x)).square().sum().backward()
    optimizer.step()
    stepper = FusedStepper(cell, batch_size=2)
    stepper.step(x)
    with torch.no_grad():
        expected = cell(x, cell(x))
    assert_close(stepper.step(x), expected, what="two steps of a pruned cell")
    cell.register_forward_pre_hook(lambda module, inputs: None)
    with pytest.raises(UnsupportedModelError, match="cell has a forward pre-hook"):
        FusedStepper(cell)
