"""The fused kernels with bf16=True: recurrent products (and an LSTM's projection) in bfloat16,
on AMX tiles or with AVX512-BF16 dot products (whichever this CPU has).

Oracles: the cells' own step functions (the reference backend) with the recurrent product
replaced by bf16(h) bf16(W_hh)^T summed in float64 (what the AMX unit computes, summed exactly),
fed the kernel's own previous outputs one step at a time (teacher forcing, so a rounding flip in
an earlier step cannot spread); for gradients, autograd through that scan; for lengths, each
sequence run alone; and the float32 kernel, from which bf16=True must differ.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.backends.fused import bf16_products_kernel
from rnnkit.backends.reference import reference_scan
from rnnkit.cells.elman import ElmanState, elman_step
from rnnkit.cells.gru import GRUState, gru_step
from rnnkit.cells.lstm import LSTMState, lstm_step

from bf16_oracle import bf16_reference  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(
    not bf16_products_kernel(),
    reason="bf16=True needs AMX-BF16 or AVX512-BF16, which this CPU or build lacks")

ops = torch.ops.rnnkit


def _problem(kind, T, B, H, bias=True, seed=0):
    """Inputs of one op call; for "lstm-proj" the projection is H // 2 wide."""
    torch.manual_seed(seed)
    G = {"gru": 3 * H, "elman": H}.get(kind, 4 * H)
    P = H // 2 if kind == "lstm-proj" else H
    problem = dict(gates_x=torch.randn(T, B, G), h0=torch.randn(B, P) * 0.5,
                   weight_hh=torch.randn(G, P) / P ** 0.5,
                   bias_hh=torch.randn(G) * 0.1 if bias else None)
    if kind.startswith("lstm"):
        problem["c0"] = torch.randn(B, H) * 0.5
        problem["weight_hr"] = torch.randn(P, H) / H ** 0.5 if kind == "lstm-proj" else None
    return problem


def _forward(kind, p, bf16, lengths=None, reverse=False, relu=False, training=False):
    """(output, h_n), and for an LSTM the cells c_t of every step as well (the LSTM saves for
    backward always, the GRU with ``training``)."""
    if kind.startswith("lstm"):
        out, h_n, _, _, cells = ops.lstm_forward(p["gates_x"], p["h0"], p["c0"], p["weight_hh"],
                                                 p["bias_hh"], p["weight_hr"], lengths, reverse,
                                                 True, bf16)
        return out, h_n, cells
    if kind == "gru":
        out, h_n, _ = ops.gru_forward(p["gates_x"], p["h0"], p["weight_hh"], p["bias_hh"], lengths,
                                      reverse, training, bf16)
    else:
        out, h_n = ops.elman_forward(p["gates_x"], p["h0"], p["weight_hh"], p["bias_hh"], lengths,
                                     reverse, relu, bf16)
    return out, h_n


def _oracle_step(kind, p, gates_x_t, h, relu, c=None):
    if kind.startswith("lstm"):
        state = lstm_step(gates_x_t, LSTMState(h, c), p["weight_hh"], p["bias_hh"], p["weight_hr"])
        return state.h, state.c
    if kind == "gru":
        return gru_step(gates_x_t, GRUState(h), p["weight_hh"], p["bias_hh"]).h
    return elman_step(gates_x_t, ElmanState(h), p["weight_hh"], p["bias_hh"],
                      "relu" if relu else "tanh").h


CASES = [("gru", False), ("tanh", False), ("relu", True), ("lstm", False), ("lstm-proj", False)]
_OP_KIND = {"gru": "gru", "tanh": "elman", "relu": "elman", "lstm": "lstm", "lstm-proj": "lstm-proj"}


@pytest.mark.parametrize("kind,relu", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("shape", [(6, 5, 40), (4, 37, 96), (3, 64, 256)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_each_step_is_the_bf16_product_of_the_previous_output(bf16_reference, kind, relu, shape,
                                                              bias, reverse):
    cell_kind = _OP_KIND[kind]
    T, B, H = shape
    p = _problem(cell_kind, T, B, H, bias)
    out, h_n, *cells = _forward(cell_kind, p, True, reverse=reverse, relu=relu)
    full = _forward(cell_kind, p, False, reverse=reverse, relu=relu)[0]
    order = range(T - 1, -1, -1) if reverse else range(T)
    h, c = p["h0"], p.get("c0")
    for t in order:
        expected = _oracle_step(cell_kind, p, p["gates_x"][t], h, relu, c)
        if cells:  # LSTM: the cell state of the step too, and both fed to the next step
            expected, expected_c = expected
            torch.testing.assert_close(cells[0][t], expected_c, atol=2e-5, rtol=2e-5)
            c = cells[0][t]
        # Summed in float32 by the tiles, in float64 by the oracle: rounding of the sum only.
        # With a projection, m = o tanh(c) is rounded to bfloat16 inside the step, and a sum's
        # rounding can move an m_j across a bfloat16 rounding boundary: one ulp of m_j (2^-8
        # relative) times a column of W_hr, ~1e-4 here.
        tolerance = 1e-3 if kind == "lstm-proj" else 2e-5
        torch.testing.assert_close(out[t], expected, atol=tolerance, rtol=tolerance)
        h = out[t]
    torch.testing.assert_close(h_n, h, atol=0, rtol=0)
    assert (out - full).abs().max() > 1e-4  # the products really were rounded


@pytest.mark.parametrize("kind,relu", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lengths_run_each_sequence_as_if_alone(kind, relu, reverse):
    cell_kind = _OP_KIND[kind]
    p = _problem(cell_kind, 7, 5, 48)
    lengths = torch.tensor([7, 2, 5, 1, 6])
    out, h_n = _forward(cell_kind, p, True, lengths=lengths, reverse=reverse, relu=relu)[:2]
    for b, length in enumerate(lengths.tolist()):
        alone = {k: (v[:length, b:b + 1].contiguous() if k == "gates_x"
                     else v[b:b + 1] if k in ("h0", "c0") else v) for k, v in p.items()}
        expected, h_expected = _forward(cell_kind, alone, True, reverse=reverse, relu=relu)[:2]
        # Rows never mix in a tile product, so a row's numbers do not depend on its neighbours.
        torch.testing.assert_close(out[:length, b:b + 1], expected, atol=0, rtol=0)
        torch.testing.assert_close(h_n[b:b + 1], h_expected, atol=0, rtol=0)
        assert out[length:, b].abs().max() == 0 if length < 7 else True


@pytest.mark.parametrize("make_cell", [
    lambda: rnnkit.GRUCell(8, 48),
    lambda: rnnkit.GRUCell(8, 48, bias=False),
    lambda: rnnkit.RNNCell(8, 48),
    lambda: rnnkit.RNNCell(8, 48, nonlinearity="relu"),
    lambda: rnnkit.LSTMCell(8, 48),
    lambda: rnnkit.LSTMCell(8, 48, proj_size=24),
], ids=["gru", "gru-nobias", "rnn-tanh", "rnn-relu", "lstm", "lstm-proj"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_gradients_match_autograd_through_the_bf16_oracle(bf16_reference, make_cell, with_lengths,
                                                          reverse):
    from rnnkit.backends.fused import fused_scan

    torch.manual_seed(0)
    cell = make_cell()
    T, B = 5, 6
    gates_x = torch.randn(T, B, cell.weight_hh.size(0), requires_grad=True)
    state0 = cell.state_type(*[(torch.randn_like(s) * 0.5).requires_grad_()
                               for s in cell.initial_state(B)])
    lengths = torch.tensor([5, 2, 4, 1, 5, 3]) if with_lengths else None
    weights = [gates_x, *state0] + list(cell.parameters())
    names = ["gates_x", *state0._fields] + [n for n, _ in cell.named_parameters()]

    def grads(run):
        out, final = run(cell, gates_x, state0, lengths, reverse)
        if lengths is not None:  # padding steps carry no output, in either backend
            out = out * (torch.arange(T)[:, None] < lengths[None, :])[..., None]
        torch.manual_seed(1)  # the same upstream gradients for every run
        outputs = [out, *final]
        upstream = [torch.randn_like(o) for o in outputs]
        g = torch.autograd.grad(outputs, weights, upstream, allow_unused=True)
        return out, [torch.zeros_like(w) if x is None else x for x, w in zip(g, weights)]

    got_out, got = grads(lambda *a: fused_scan(*a, bf16=True))
    expected_out, expected = grads(reference_scan)
    _, full = grads(fused_scan)
    torch.testing.assert_close(got_out, expected_out, atol=1e-4, rtol=1e-4)
    for name, g, e, f in zip(names, got, expected, full):
        scale = e.abs().max().item() + 1e-6
        # dG is rounded to bfloat16 before each product, and dW_hh once at the end of its sum
        # over steps: agreement to bfloat16 rounding (2^-8 relative) of the largest entry.
        torch.testing.assert_close(g, e, atol=8e-3 * scale, rtol=0, msg=name)
        if name in ("h", "weight_hh"):
            assert not torch.equal(g, f), f"{name}: same as the float32 kernel"


def test_bf16_is_refused_for_float64():
    p = {k: v.double() if v is not None else None for k, v in _problem("gru", 3, 2, 8).items()}
    with pytest.raises(RuntimeError, match="float32 tensors only"):
        _forward("gru", p, True)


def test_opcheck_with_bf16():
    p = _problem("gru", 4, 3, 16)
    gates_x, h0 = p["gates_x"].requires_grad_(), p["h0"].requires_grad_()
    torch.library.opcheck(ops.gru_forward.default,
                          (gates_x, h0, p["weight_hh"], p["bias_hh"], None, False, True, True))
    q = _problem("elman", 4, 3, 16)
    torch.library.opcheck(ops.elman_forward.default,
                          (q["gates_x"].requires_grad_(), q["h0"], q["weight_hh"], q["bias_hh"],
                           None, False, False, True))


# ---- a bfloat16 gates_x: what the autocast path hands the kernels ---------------------------------
def _op_grads(kind, p, gates_x, lengths, relu=False):
    """Outputs and the gradients of every tensor input of one forward op call (bf16=True)."""
    p = dict(p, gates_x=gates_x)
    names = [n for n in ("gates_x", "h0", "c0", "weight_hh", "bias_hh", "weight_hr")
             if p.get(n) is not None]
    leaves = {n: p[n].detach().clone().requires_grad_() for n in names}
    outputs = _forward(kind, dict(p, **leaves), True, lengths=lengths, relu=relu, training=True)[:2]
    torch.manual_seed(1)
    upstream = [torch.randn_like(o) for o in outputs]
    grads = torch.autograd.grad(outputs, list(leaves.values()), upstream)
    return outputs, dict(zip(names, grads))


@pytest.mark.parametrize("kind,relu", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_a_bfloat16_gates_x_runs_as_its_float32_values(kind, relu, with_lengths):
    """The kernels read a bfloat16 gates_x exactly (its float32 values), and return its gradient in
    bfloat16: the rounding, in the kernel, of the gradient that a float32 gates_x gets."""
    kind = _OP_KIND[kind]
    p = _problem(kind, 5, 6, 48)
    low = p["gates_x"].bfloat16()
    lengths = torch.tensor([5, 2, 4, 1, 5, 3]) if with_lengths else None
    out_low, grads_low = _op_grads(kind, p, low, lengths, relu)
    out_full, grads_full = _op_grads(kind, p, low.float(), lengths, relu)
    for got, expected in zip(out_low, out_full):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert grads_low["gates_x"].dtype == torch.bfloat16
    assert grads_full["gates_x"].dtype == torch.float32
    for name, got in grads_low.items():
        expected = grads_full[name]
        torch.testing.assert_close(got.float(), expected, atol=0, rtol=0, msg=name)
    # the float32 gates_x's gradient went through bfloat16: representable there exactly
    torch.testing.assert_close(grads_full["gates_x"].bfloat16().float(), grads_full["gates_x"],
                               atol=0, rtol=0)


def test_a_bfloat16_gates_x_without_bf16_is_refused():
    p = _problem("gru", 3, 2, 16)
    p["gates_x"] = p["gates_x"].bfloat16()
    with pytest.raises(RuntimeError, match="bfloat16 gates_x needs bf16=True"):
        _forward("gru", p, False)


@pytest.mark.parametrize("kind", ["gru", "elman", "lstm", "lstm-proj"])
def test_opcheck_with_a_bfloat16_gates_x(kind):
    p = _problem(kind, 4, 3, 32)
    gates_x = p["gates_x"].bfloat16().requires_grad_()
    h0 = p["h0"].requires_grad_()
    if kind == "gru":
        args = (gates_x, h0, p["weight_hh"], p["bias_hh"], None, False, True, True)
        op = ops.gru_forward.default
    elif kind == "elman":
        args = (gates_x, h0, p["weight_hh"], p["bias_hh"], None, False, False, True)
        op = ops.elman_forward.default
    else:
        args = (gates_x, h0, p["c0"], p["weight_hh"].requires_grad_(), p["bias_hh"],
                p["weight_hr"], None, False, True, True)
        op = ops.lstm_forward.default
    torch.library.opcheck(op, args)
