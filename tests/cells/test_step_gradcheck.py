"""float64 ``torch.autograd.gradcheck`` of the pure step functions and of ``rnnkit.scan``.

gradcheck compares autograd's gradients with finite differences, w.r.t. the projected input
``gates_x_t``, every state field and every weight the step function takes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call

import rnnkit
from rnnkit.cells import (
    ElmanState, GRUState, LSTMState, elman_step, gru_step, lstm_step,
)

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH, HIDDEN, PROJ = 3, 4, 2
DTYPE = torch.float64
#: Finite differences step by 1e-6; ReLU inputs are kept at least this far from the kink.
KINK_MARGIN = 0.05


def randn(*shape, generator):
    return torch.randn(*shape, dtype=DTYPE, generator=generator)


def leaf(tensor):
    return tensor.detach().clone().requires_grad_()


# -- step functions ----------------------------------------------------------------------------
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias_hh", "no_bias_hh"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_elman_step_gradcheck(nonlinearity, with_bias):
    gen = torch.Generator().manual_seed(1)
    gates_x = randn(BATCH, HIDDEN, generator=gen)
    h = randn(BATCH, HIDDEN, generator=gen)
    weight_hh = randn(HIDDEN, HIDDEN, generator=gen) * 0.5
    bias_hh = randn(HIDDEN, generator=gen) if with_bias else None
    if nonlinearity == "relu":
        # Shift gates_x so every pre-activation is at least KINK_MARGIN away from 0 (keeping its
        # sign), and make sure some are positive and some negative so both branches are checked.
        pre = gates_x + nn.functional.linear(h, weight_hh, bias_hh)
        gates_x = gates_x + torch.where(pre >= 0, KINK_MARGIN, -KINK_MARGIN)
        pre = gates_x + nn.functional.linear(h, weight_hh, bias_hh)
        assert pre.abs().min() >= KINK_MARGIN
        assert (pre > 0).any() and (pre < 0).any()

    inputs = [leaf(gates_x), leaf(h), leaf(weight_hh)] + ([leaf(bias_hh)] if with_bias else [])

    def fn(gx, h_, w, *b):
        return elman_step(gx, ElmanState(h_), w, b[0] if b else None, nonlinearity).h

    assert gradcheck(fn, inputs)
    # And the step is the documented formula.
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    expected = act(gates_x + h @ weight_hh.T + (bias_hh if with_bias else 0))
    torch.testing.assert_close(fn(*inputs), expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias_hh", "no_bias_hh"])
@pytest.mark.parametrize("proj", [0, PROJ], ids=["no_weight_hr", "weight_hr"])
def test_lstm_step_gradcheck(proj, with_bias):
    gen = torch.Generator().manual_seed(2)
    out = proj or HIDDEN
    tensors = [
        randn(BATCH, 4 * HIDDEN, generator=gen),  # gates_x_t
        randn(BATCH, out, generator=gen),  # h
        randn(BATCH, HIDDEN, generator=gen),  # c
        randn(4 * HIDDEN, out, generator=gen) * 0.5,  # weight_hh
    ]
    if with_bias:
        tensors.append(randn(4 * HIDDEN, generator=gen))
    if proj:
        tensors.append(randn(proj, HIDDEN, generator=gen) * 0.5)
    inputs = [leaf(t) for t in tensors]

    def fn(gx, h, c, w_hh, *rest):
        rest = list(rest)
        b_hh = rest.pop(0) if with_bias else None
        w_hr = rest.pop(0) if proj else None
        state = lstm_step(gx, LSTMState(h, c), w_hh, b_hh, w_hr)
        return state.h, state.c

    assert gradcheck(fn, inputs)
    # The documented formula, gate order i, f, g, o.
    gx, h, c, w_hh = tensors[:4]
    gates = gx + h @ w_hh.T + (tensors[4] if with_bias else 0)
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    if proj:
        h_new = h_new @ tensors[-1].T
    got_h, got_c = fn(*inputs)
    torch.testing.assert_close(got_h, h_new, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(got_c, c_new, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias_hh", "no_bias_hh"])
def test_gru_step_gradcheck(with_bias):
    gen = torch.Generator().manual_seed(3)
    tensors = [
        randn(BATCH, 3 * HIDDEN, generator=gen),  # gates_x_t
        randn(BATCH, HIDDEN, generator=gen),  # h
        randn(3 * HIDDEN, HIDDEN, generator=gen) * 0.5,  # weight_hh
    ]
    if with_bias:
        tensors.append(randn(3 * HIDDEN, generator=gen))
    inputs = [leaf(t) for t in tensors]

    def fn(gx, h, w_hh, *b):
        return gru_step(gx, GRUState(h), w_hh, b[0] if b else None).h

    assert gradcheck(fn, inputs)
    # The documented formula, gate order r, z, n, reset applied after the recurrent matmul.
    gx, h, w_hh = tensors[:3]
    gh = h @ w_hh.T + (tensors[3] if with_bias else 0)
    x_r, x_z, x_n = gx.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    torch.testing.assert_close(fn(*inputs), (1 - z) * n + z * h, atol=1e-12, rtol=1e-12)


# -- the whole scan, per backend ----------------------------------------------------------------------
STEPS = 4
LENGTHS = [3, 1, STEPS]

SCAN_CELLS = {
    "rnn_tanh": lambda bias: rnnkit.RNNCell(2, HIDDEN, bias, "tanh", dtype=DTYPE),
    "rnn_relu": lambda bias: rnnkit.RNNCell(2, HIDDEN, bias, "relu", dtype=DTYPE),
    "lstm": lambda bias: rnnkit.LSTMCell(2, HIDDEN, bias, dtype=DTYPE),
    "lstm_proj": lambda bias: rnnkit.LSTMCell(2, HIDDEN, bias, dtype=DTYPE, proj_size=PROJ),
    "gru": lambda bias: rnnkit.GRUCell(2, HIDDEN, bias, dtype=DTYPE),
}


class _Scan(nn.Module):
    """``rnnkit.scan`` as a module, so functional_call can swap in the weights gradcheck perturbs."""

    def __init__(self, cell, lengths, reverse, backend):
        super().__init__()
        self.cell = cell
        self.lengths = lengths
        self.reverse = reverse
        self.backend = backend

    def forward(self, gates_x, *state_fields):
        output, final = rnnkit.scan(self.cell, gates_x, self.cell.state_type(*state_fields),
                                    lengths=self.lengths, reverse=self.reverse,
                                    backend=self.backend)
        return (output, *final)


def _scan_setup(kind, bias, reverse, lengths, backend):
    torch.manual_seed(4)
    cell = SCAN_CELLS[kind](bias)
    gen = torch.Generator().manual_seed(5)
    gates_x = randn(STEPS, len(LENGTHS), cell.gate_count * HIDDEN, generator=gen)
    state = [randn(len(LENGTHS), width, generator=gen) for width in cell.state_sizes().values()]
    # Every weight the step uses: the recurrent ones (weight_ih/bias_ih act through gates_x).
    names = [n for n, _ in cell.named_parameters() if n not in ("weight_ih", "bias_ih")]
    weights = [leaf(cell.get_parameter(n)) for n in names]
    module = _Scan(cell, lengths, reverse, backend)
    return module, names, leaf(gates_x), [leaf(s) for s in state], weights


def _assert_relu_away_from_kink(cell, gates_x, h0, lengths, reverse):
    """Finite differences are wrong where a ReLU pre-activation is within eps of 0: check that
    none of the steps that run is (a precondition of the fixed-seed data, not of rnnkit)."""
    steps = gates_x.size(0)
    valid = torch.ones(steps, gates_x.size(1), dtype=torch.bool) if lengths is None else (
        torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0))
    h, smallest = h0.detach(), float("inf")
    with torch.no_grad():
        for t in (reversed(range(steps)) if reverse else range(steps)):
            pre = gates_x[t] + nn.functional.linear(h, cell.weight_hh, cell.bias_hh)
            smallest = min(smallest, pre[valid[t]].abs().min().item())
            h = torch.where(valid[t].unsqueeze(1), torch.relu(pre), h)
    assert smallest > 1e-3, f"test data puts a ReLU input at {smallest:.2e} from the kink"


@pytest.mark.parametrize("with_lengths", [True, False], ids=["lengths", "full"])
@pytest.mark.parametrize("reverse", [True, False], ids=["reverse", "forward"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", list(SCAN_CELLS))
def test_scan_gradcheck(kind, bias, reverse, with_lengths, backend):
    """gradcheck of :func:`rnnkit.scan` for every backend (the reference one, and e.g. the fused
    kernels, whose backward is hand-written)."""
    lengths = torch.tensor(LENGTHS) if with_lengths else None
    module, names, gates_x, state, weights = _scan_setup(kind, bias, reverse, lengths, backend)
    n_state = len(state)

    def fn(gx, *rest):
        fields, params = rest[:n_state], rest[n_state:]
        return functional_call(module, {f"cell.{n}": p for n, p in zip(names, params)},
                               (gx, *fields))

    if kind == "rnn_relu":
        _assert_relu_away_from_kink(module.cell, gates_x, state[0], lengths, reverse)
    inputs = [gates_x, *state, *weights]
    # Not vacuous: every input, the swapped-in weights included, reaches the outputs.
    outputs = fn(*inputs)
    grads = torch.autograd.grad(sum(o.sum() for o in outputs), inputs)
    for name, grad in zip(["gates_x", *module.cell.state_type._fields, *names], grads):
        assert grad.abs().sum() > 0, name
    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("reverse", [True, False], ids=["reverse", "forward"])
@pytest.mark.parametrize("kind", list(SCAN_CELLS))
def test_scan_padding_is_inert(kind, reverse, backend):
    """Past each length: outputs exactly zero, and nothing there influences any result."""
    lengths = torch.tensor(LENGTHS)
    module, _, gates_x, state, _ = _scan_setup(kind, True, reverse, lengths, backend)
    output, *final = module(gates_x, *state)
    for b, length in enumerate(LENGTHS):
        assert torch.equal(output[length:, b], torch.zeros_like(output[length:, b]))
    gen = torch.Generator().manual_seed(6)
    loss = sum((t * torch.randn(t.shape, dtype=DTYPE, generator=gen)).sum()
               for t in (output, *final))
    loss.backward()
    for b, length in enumerate(LENGTHS):
        assert torch.equal(gates_x.grad[length:, b], torch.zeros_like(gates_x.grad[length:, b]))
        assert gates_x.grad[:length, b].abs().sum() > 0
