"""Under torch.autocast, rnnkit layers run the recurrence in their parameters' dtype, except
under CPU bfloat16 autocast on a CPU that multiplies bfloat16 natively (AMX-BF16 or
AVX512-BF16): there LSTM layers may take oneDNN's bfloat16 LSTM (the bfloat16 route), and the
other layers run their input projection, and where it pays their recurrent products, in
bfloat16.

Oracles: the same layer called outside autocast on the float32 input; for the bfloat16 route,
torch.nn.LSTM with the same weights under the same autocast (the same oneDNN primitive), and
the float32 layer to bfloat16 accuracy; for the bfloat16 projection, F.linear in bfloat16
followed by the reference backend's float32 scan.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from torch.nn import functional as F

from rnnkit.backends import lowered
from rnnkit.backends.scan import scan
from rnnkit.interop import from_torch

from bf16_oracle import bf16_reference  # noqa: F401 (a fixture)

needs_native_bf16 = pytest.mark.skipif(
    not lowered.cpu_bf16_instructions(),
    reason="the bfloat16 paths (LSTM route, bf16 projection) run only on CPUs with AMX-BF16 or "
           "AVX512-BF16, which this one lacks")


@pytest.fixture
def onednn_lstm_training(monkeypatch):
    """Training calls of plain LSTM layers take oneDNN's bfloat16 LSTM, as inference does (by
    default the fused kernels take those they run faster, fused_lstm_pays_bf16)."""
    import sys

    monkeypatch.setattr(sys.modules["rnnkit.backends.scan"], "fused_lstm_pays_bf16",
                        lambda batch, hidden, training: False)


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


def test_output_under_bf16_autocast_equals_float32_with_the_route_off(float32_recurrence):
    _assert_float32_under_autocast(_layers(), torch.randn(3, 5, 6))


def test_output_under_bf16_autocast_equals_float32_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(lowered, "cpu_bf16_instructions", lambda: "")
    _assert_float32_under_autocast(_layers(), torch.randn(3, 5, 6))
    _assert_float32_under_autocast({"LSTM": rnnkit.LSTM(6, 8, num_layers=2, batch_first=True)},
                                   torch.randn(3, 5, 6), lengths=torch.tensor([5, 2, 4]))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_input_and_state_may_come_by_keyword_as_in_torch(float32_recurrence, kind):
    """lstm(input=x, hx=h) raised "missing 1 required positional argument", and under
    autocast a bfloat16 hx= was not cast (a dtype error), while the positional call worked.
    Oracle: the positional call."""
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(3, 4)
    x = torch.randn(5, 2, 3)
    h = torch.randn(1, 2, 4).bfloat16()
    hx = (h, h.clone()) if kind == "LSTM" else h
    float_hx = tuple(t.float() for t in hx) if kind == "LSTM" else hx.float()
    expected, _ = layer(x, float_hx)
    torch.testing.assert_close(layer(input=x, hx=float_hx)[0], expected, atol=0, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        positional, _ = layer(x, hx)
        by_keyword, _ = layer(input=x, hx=hx)
    torch.testing.assert_close(positional, expected, atol=0, rtol=0)
    torch.testing.assert_close(by_keyword, expected, atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_a_cell_loop_under_autocast_runs_in_the_parameters_dtype(kind):
    """A bfloat16 input (an autocast Linear's output) was refused, and so was the bfloat16
    state a torch cell returns under autocast; torch.nn's cells take both. Oracle: the same
    loop in float32 without autocast, on the inputs rounded to bfloat16 where they were."""
    torch.manual_seed(0)
    cell = getattr(rnnkit, kind)(3, 4)
    xs = torch.randn(5, 2, 3)
    expected = None
    for x in xs:
        expected = cell(x.bfloat16().float(), expected)
    state = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for x in xs:
            state = cell(x.bfloat16(), state)
    for got, want in zip(state if kind == "LSTMCell" else [state],
                         expected if kind == "LSTMCell" else [expected]):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    h = torch.zeros(2, 4, dtype=torch.bfloat16)  # a state in bfloat16, as torch's cells return
    hx = (h, h.clone()) if kind == "LSTMCell" else h
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cell(xs[0], hx)


class _ScaledProjectionGRUCell(rnnkit.GRUCell):
    """A cell that changes its input projection (part of the cell contract)."""

    def project_input(self, x):
        return 0.1 * F.linear(x, self.weight_ih, self.bias_ih)


def test_a_cell_subclass_keeps_its_own_projection_under_autocast():
    """The bfloat16 projection was computed as x W_ih^T + b_ih, past the subclass's
    project_input: its output was the base class's. Oracle: the layer in float32 (a subclass
    stays float32)."""
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(_ScaledProjectionGRUCell(6, 16), batch_first=True)
    _assert_float32_under_autocast({"subclass": layer}, torch.randn(4, 10, 6))


def test_a_backend_asked_for_by_name_keeps_float32_under_autocast():
    torch.manual_seed(0)
    layers = {"LSTM reference": rnnkit.LSTM(6, 8, batch_first=True, backend="reference"),
              "GRU fused": rnnkit.GRU(6, 8, backend="fused"),
              "GRU reference": rnnkit.GRU(6, 8, backend="reference")}
    _assert_float32_under_autocast(layers, torch.randn(3, 5, 6))


def test_lstm_keeps_float32_when_the_route_is_off_or_the_cpu_lacks_bf16(float32_recurrence,
                                                                        monkeypatch):
    torch.manual_seed(0)
    layers = {"LSTM": rnnkit.LSTM(6, 8, num_layers=2, batch_first=True)}
    _assert_float32_under_autocast(layers, torch.randn(3, 5, 6))
    lowered.set_bf16_recurrence(True)
    monkeypatch.setattr(lowered, "cpu_bf16_instructions", lambda: "")
    _assert_float32_under_autocast(layers, torch.randn(3, 5, 6))


def _bf16_projection_then_reference_scan(cell, x, lengths=None):
    """The oracle of the bfloat16 projection: F.linear in bfloat16, then torch-op float32 steps."""
    bias = cell.bias_ih.bfloat16() if cell.bias_ih is not None else None
    gates_x = F.linear(x.bfloat16(), cell.weight_ih.bfloat16(), bias).float()
    state0 = cell.initial_state(x.size(1), dtype=x.dtype, device=x.device)
    return scan(cell, gates_x, state0, lengths=lengths, backend="reference")[0]


@needs_native_bf16
@pytest.mark.parametrize("make_cell", [
    lambda: rnnkit.GRUCell(6, 16),
    lambda: rnnkit.GRUCell(6, 16, bias=False),
    lambda: rnnkit.RNNCell(6, 16),
    lambda: rnnkit.RNNCell(6, 16, nonlinearity="relu"),
    lambda: rnnkit.LSTMCell(6, 16, proj_size=8),
], ids=["gru", "gru-nobias", "rnn-tanh", "rnn-relu", "lstm-proj"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("products", ["float32", "bf16"])
def test_declined_layers_project_in_bf16(request, monkeypatch, make_cell, with_lengths, products):
    """The bf16 projection, then the recurrence with float32 products (what the size rule picks
    for this small layer) or with bfloat16 products (the rule's limits lifted)."""
    from rnnkit.backends.fused import backend as fused_backend

    if products == "bf16":
        if not fused_backend.bf16_products_kernel():
            pytest.skip("no bfloat16 product kernel is usable in this build or process")
        monkeypatch.setattr(fused_backend, "_MIN_ROWS_BF16", 1)
        monkeypatch.setattr(fused_backend, "_MIN_WIDTH_BF16", 1)
        request.getfixturevalue("bf16_reference")  # the oracle multiplies in bfloat16 too
    torch.manual_seed(0)
    cell = make_cell()
    if products == "float32":  # the rule keeps a layer this small on float32 products
        assert not fused_backend.bf16_products_pay(4, 16, cell.weight_hh.numel() * 2)
    layer = rnnkit.Recurrent(cell, batch_first=False)
    x = torch.randn(9, 4, 6)  # (T, B, I)
    lengths = torch.tensor([9, 3, 7, 1]) if with_lengths else None
    kwargs = {"lengths": lengths} if with_lengths else {}

    x_leaf = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = layer(x_leaf, **kwargs)
    got.square().sum().backward()
    got_grads = [x_leaf.grad] + [p.grad.clone() for p in cell.parameters()]
    cell.zero_grad(set_to_none=True)

    x_leaf = x.clone().requires_grad_()
    expected = _bf16_projection_then_reference_scan(cell, x_leaf, lengths)
    expected.square().sum().backward()
    expected_grads = [x_leaf.grad] + [p.grad for p in cell.parameters()]

    assert got.dtype == torch.float32  # the recurrence ran in float32
    # Same bfloat16 gates; the fused and the reference float32 steps differ by rounding only.
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # The gradients of x and W_ih come out of a bfloat16 product whose input (the gates'
    # gradient) differs between the two by float32 rounding, which can flip a bfloat16 rounding.
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        torch.testing.assert_close(got_grad, expected_grad, atol=2e-3, rtol=1.6e-2)
    # And it is not the float32 layer: the projection was rounded.
    assert not torch.equal(got, layer(x, **kwargs)[0])


@needs_native_bf16
def test_bf16_projection_stacks_and_stays_near_float32():
    torch.manual_seed(0)
    layer = rnnkit.GRU(8, 32, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(4, 20, 8)
    expected, h_expected = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, h = layer(x)
    assert got.dtype == h.dtype == torch.float32
    # The products are rounded (relative 2^-8), the state between steps is not: the error stays
    # at the scale of one rounding instead of growing with T.
    torch.testing.assert_close(got, expected, atol=0.02, rtol=0)
    torch.testing.assert_close(h, h_expected, atol=0.02, rtol=0)
    assert not torch.equal(got, expected)


@needs_native_bf16
@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("upper", ["GRU", "RNN", "Bidirectional GRU"])
def test_a_layer_above_the_bf16_lstm_route_makes_its_zero_state_in_float32(backend, upper):
    """Without gradients the LSTM route hands on a bfloat16 output; the layer above made its
    default zero state like it, in bfloat16, and then failed ('h0 must be float32 or float64',
    or a dtype mismatch on reference). Oracle: the float32 stack outside autocast."""
    torch.manual_seed(0)
    above = {"GRU": lambda: rnnkit.Recurrent(rnnkit.GRUCell(8, 8), backend=backend),
             "RNN": lambda: rnnkit.Recurrent(rnnkit.RNNCell(8, 8), backend=backend),
             "Bidirectional GRU": lambda: rnnkit.Bidirectional(
                 rnnkit.GRUCell(8, 4), rnnkit.GRUCell(8, 4), backend=backend)}[upper]
    model = rnnkit.Stacked([rnnkit.Recurrent(rnnkit.LSTMCell(4, 8)), above()])
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        expected, _ = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = model(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=0.03, rtol=0)


@needs_native_bf16
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_bf16_route_equals_torch_nn_lstm_under_the_same_autocast(onednn_lstm_training, batch_first,
                                                                 bidirectional, bias):
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


@needs_native_bf16
def test_bf16_route_is_float32_to_bfloat16_accuracy(onednn_lstm_training):
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


@needs_native_bf16
def test_vmap_and_forward_mode_derivatives_run_under_bf16_autocast():
    """Calls that need no gradient took oneDNN's LSTM under bfloat16 autocast even inside
    torch.func.vmap (no batching rule: RuntimeError) or forward-mode AD (no derivative:
    NotImplementedError), where without autocast the reference loop runs them. Oracle: the
    float32 layer outside autocast, per sample and by finite differences, to bfloat16
    accuracy."""
    from torch.autograd import forward_ad
    from torch.func import functional_call, vmap

    torch.manual_seed(0)
    layer = rnnkit.LSTM(4, 16)
    params = {name: p.detach() for name, p in layer.named_parameters()}
    xs = torch.randn(2, 6, 3, 4)
    run = lambda x: functional_call(layer, params, (x,))[0]  # noqa: E731
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batched = vmap(run)(xs)
    for got, x in zip(batched, xs):
        torch.testing.assert_close(got.float(), layer(x)[0], atol=0.03, rtol=0)
    layer.requires_grad_(False)
    x, tangent = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16), forward_ad.dual_level():
        derivative = forward_ad.unpack_dual(layer(forward_ad.make_dual(x, tangent))[0]).tangent
    step = 1e-3
    difference = (layer(x + step * tangent)[0] - layer(x - step * tangent)[0]) / (2 * step)
    torch.testing.assert_close(derivative.float(), difference, atol=0.05, rtol=0)


def test_gradients_flow_under_autocast_into_a_bf16_head():
    layer = rnnkit.LSTM(6, 8, batch_first=True)
    head = torch.nn.Linear(8, 3)
    x = torch.randn(2, 4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = layer(x)
        loss = head(output).float().square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_each_decline_is_logged_once_with_what_runs_instead(caplog, monkeypatch):
    monkeypatch.setattr(lowered, "_declines_logged", set())
    monkeypatch.setattr(lowered, "cpu_bf16_instructions", lambda: "amx_bf16")  # the message
    layer, lstm = rnnkit.GRU(6, 8), rnnkit.LSTM(6, 8, backend="reference")
    x = torch.randn(5, 3, 6)
    with caplog.at_level("INFO", logger="rnnkit.backends"), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(2):
            layer(x)
            lstm(x)
    messages = [r.getMessage() for r in caplog.records if "bfloat16" in r.getMessage()]
    assert messages == [
        "rnnkit: bfloat16 LSTM route skipped (only LSTM cells have it (got GRUCell)): the input "
        "projection runs in bfloat16, and on the fused kernels the recurrent products too where "
        "bfloat16 products pay; the state stays float32",
        "rnnkit: bfloat16 recurrence skipped (the parameters' dtype instead): "
        "backend='reference' was asked for by name",
    ]


@needs_native_bf16
@pytest.mark.parametrize("threads", [1, 2])
def test_a_layer_large_enough_for_bf16_products_takes_them_under_autocast(threads):
    """Routing: where bf16_products_pay says so, the layer's recurrence is the fused kernel with
    bf16=True after the bfloat16 projection (bitwise), and otherwise the float32 products."""
    from rnnkit.backends.fused import bf16_products_kernel, fused_scan
    from rnnkit.backends.fused.backend import bf16_products_pay

    if not bf16_products_kernel():
        pytest.skip("no bfloat16 product kernel is usable in this build or process")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        for batch in (1, 32):
            layer = rnnkit.Recurrent(rnnkit.GRUCell(16, 256), batch_first=False)
            x = torch.randn(6, batch, 16)
            with torch.no_grad():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    got, _ = layer(x)
                cell = layer.cell
                gates_x = lowered.run_projection_bf16(cell, x)  # bfloat16
                tiles = bf16_products_pay(batch, 256, cell.weight_hh.numel())
                if not tiles:  # the float32 products take a float32 copy
                    gates_x = gates_x.float()
                expected, _ = fused_scan(cell, gates_x, cell.initial_state(batch), bf16=tiles)
            assert tiles == (batch == 32)
            torch.testing.assert_close(got, expected, atol=0, rtol=0)
    finally:
        torch.set_num_threads(previous)


@needs_native_bf16
@pytest.mark.parametrize("threads", [1, 2])
def test_plain_lstm_training_takes_the_fused_kernels_where_they_are_faster(threads):
    """Routing: a training call of a plain LSTM layer under autocast is the bfloat16 projection
    plus the fused kernel (bitwise, float32 out) where fused_lstm_pays_bf16 says so, and
    oneDNN's LSTM (bfloat16 out) otherwise; inference is oneDNN's always."""
    from rnnkit.backends.fused import bf16_products_kernel, fused_scan
    from rnnkit.backends.fused.backend import bf16_products_pay, fused_lstm_pays_bf16

    kernel = bf16_products_kernel()
    if not kernel:
        pytest.skip("no bfloat16 product kernel is usable in this build or process")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        # (batch, hidden) -> whether the fused kernels take training. On AMX: few rows per
        # thread; a deep weight; 128 deep only with 2 threads; many rows of a narrow weight
        # never. With AVX512-BF16 dot products: always.
        cases = {(3, 16): True, (32, 256): True, (32, 128): threads == 2, (64, 64): False}
        if kernel == "avx512_bf16":
            cases = dict.fromkeys(cases, True)
        for (batch, hidden), expected_fused in cases.items():
            layer = rnnkit.LSTM(8, hidden)
            x = torch.randn(5, batch, 8, requires_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got, (h_n, _) = layer(x)
                with torch.no_grad():
                    inferred, _ = layer(x)
            assert inferred.dtype == torch.bfloat16  # oneDNN's LSTM
            assert not fused_lstm_pays_bf16(batch, hidden, training=False)
            fused = fused_lstm_pays_bf16(batch, hidden, training=True)
            assert fused == expected_fused
            if not fused:
                assert got.dtype == torch.bfloat16
                continue
            cell = next(m for m in layer.modules() if isinstance(m, rnnkit.LSTMCell))
            with torch.no_grad():
                gates_x = lowered.run_projection_bf16(cell, x)
                tiles = bf16_products_pay(batch, hidden, cell.weight_hh.numel())
                if not tiles:
                    gates_x = gates_x.float()
                expected, final = fused_scan(cell, gates_x, cell.initial_state(batch), bf16=tiles)
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, expected, atol=0, rtol=0)
            torch.testing.assert_close(h_n[0], final.h, atol=0, rtol=0)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("value", ["no", "false", 0, None])
def test_set_bf16_recurrence_takes_only_a_bool(value):
    """set_bf16_recurrence("no") turned the bfloat16 route on (any truthy value did).
    Oracle: the setting afterwards, unchanged by the refused call."""
    before = lowered.bf16_recurrence_enabled()
    with pytest.raises(TypeError, match=r"^enabled must be True or False; got "):
        lowered.set_bf16_recurrence(value)
    assert lowered.bf16_recurrence_enabled() is before
