"""The fused C++ backend against the reference backend (the oracle), and its registration.

Every cell and option: lengths, reverse, bidirectional, multi-layer, proj_size, batch_first,
float32 and float64; outputs, final states and the gradient of every input, initial state and
parameter. Sizes are chosen to hit the kernels' edges: hidden sizes that are not a multiple of
the SIMD width, more gate columns than one packed panel, batches larger than one row block.
"""

from __future__ import annotations

import itertools
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import rnnkit
from rnnkit.backends import BACKENDS, select_backend
from rnnkit.backends.fused import empty_buffer_cache
from tolerances import assert_close

pytestmark = pytest.mark.usefixtures("single_thread")

fused_reason = BACKENDS["fused"].unavailable()
requires_fused = pytest.mark.skipif(fused_reason is not None,
                                    reason=f"fused backend unavailable here: {fused_reason}")

KINDS = {
    "lstm": lambda *a, **k: rnnkit.LSTM(*a, **k),
    "lstm_proj": lambda *a, **k: rnnkit.LSTM(*a, proj_size=3, **k),
    "gru": lambda *a, **k: rnnkit.GRU(*a, **k),
    "rnn_tanh": lambda *a, **k: rnnkit.RNN(*a, **k),
    "rnn_relu": lambda *a, **k: rnnkit.RNN(*a, nonlinearity="relu", **k),
}


def _loss_and_grads(model, x, hx, lengths):
    output, hidden = model(x, hx, lengths=lengths)
    hidden = hidden if isinstance(hidden, tuple) else (hidden,)
    weights = torch.Generator().manual_seed(7)
    loss = (output * torch.randn(output.shape, generator=weights, dtype=output.dtype)).sum()
    for h in hidden:
        loss = loss + (h * torch.randn(h.shape, generator=weights, dtype=h.dtype)).sum()
    hx_list = [] if hx is None else list(hx) if isinstance(hx, tuple) else [hx]
    inputs = [x, *hx_list, *model.parameters()]
    return [output, *hidden], torch.autograd.grad(loss, inputs)


@requires_fused
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (1, True), (2, True), (3, False)])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_fused_equals_reference(kind, dtype, layers, bidirectional, use_lengths, batch_first):
    torch.manual_seed(0)
    steps, batch, features, hidden = 6, 7, 5, 17  # 7 rows > one 6-row block; 17 = 16 + tail
    make = KINDS[kind]
    common = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                  dtype=dtype)
    reference = make(features, hidden, backend="reference", **common)
    fused = make(features, hidden, backend="fused", **common)
    fused.load_state_dict(reference.state_dict())
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    rows = layers * (2 if bidirectional else 1)
    out_width = 3 if kind == "lstm_proj" else hidden
    h0 = torch.randn(rows, batch, out_width, dtype=dtype, requires_grad=True)
    hx = (h0, torch.randn(rows, batch, hidden, dtype=dtype, requires_grad=True)) \
        if kind.startswith("lstm") else h0
    lengths = torch.tensor([6, 1, 4, 6, 2, 5, 3]) if use_lengths else None
    values_ref, grads_ref = _loss_and_grads(reference, x, hx, lengths)
    values_fused, grads_fused = _loss_and_grads(fused, x, hx, lengths)
    for index, (a, b) in enumerate(zip(values_fused, values_ref)):
        assert_close(a, b, what=f"value {index}")
    for index, (a, b) in enumerate(zip(grads_fused, grads_ref)):
        assert_close(a, b, grad=True, what=f"gradient {index}")


@requires_fused
@pytest.mark.parametrize("cell_kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("hidden", [1, 16, 33, 70])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch", [1, 13])
def test_scan_sizes_and_reverse(cell_kind, hidden, reverse, batch):
    """rnnkit.scan directly, over hidden sizes around the SIMD width and several panels; batch 1
    takes the matrix-vector path of the GEMM."""
    torch.manual_seed(1)
    cell = {"lstm": lambda: rnnkit.LSTMCell(4, hidden),
            "gru": lambda: rnnkit.GRUCell(4, hidden),
            "rnn_tanh": lambda: rnnkit.RNNCell(4, hidden),
            "rnn_relu": lambda: rnnkit.RNNCell(4, hidden, nonlinearity="relu")}[cell_kind]()
    x = torch.randn(5, batch, 4)
    gates_x = cell.project_input(x).detach().requires_grad_()
    state0 = cell.state_type(*(torch.randn(batch, w, requires_grad=True)
                               for w in cell.state_sizes().values()))
    lengths = torch.randint(1, 6, (batch,))
    results = {}
    for backend in ("reference", "fused"):
        out, final = rnnkit.scan(cell, gates_x, state0, lengths=lengths, reverse=reverse,
                                 backend=backend)
        loss = (out ** 2).sum() + sum((s * 1.5).sum() for s in final)
        grads = torch.autograd.grad(loss, [gates_x, *state0, *cell.parameters()],
                                    allow_unused=True)
        results[backend] = (out, *final, *grads)
    for a, b in zip(results["fused"], results["reference"]):
        assert_close(a, b, grad=True)


@requires_fused
@pytest.mark.parametrize("kind", KINDS)
def test_no_grad_inference_and_partial_requires_grad(kind):
    """Under no_grad nothing is saved for backward; with frozen weights only the input's
    gradient is asked for. Both must equal the reference."""
    torch.manual_seed(2)
    reference = KINDS[kind](3, 9, backend="reference")
    fused = KINDS[kind](3, 9, backend="fused")
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(8, 4, 3)
    with torch.no_grad():
        assert_close(fused(x)[0], reference(x)[0])
    for model in (reference, fused):
        model.requires_grad_(False)
    x.requires_grad_()
    grads = [torch.autograd.grad(model(x)[0].square().sum(), x)[0] for model in (fused, reference)]
    assert_close(grads[0], grads[1], grad=True)


class _OpsCalled(TorchDispatchMode):
    """Records the name of every op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func))
        return func(*args, **(kwargs or {}))


@requires_fused
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("proj_size", [0, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_inference_projects_inside_the_loop(dtype, proj_size, batch_first):
    """Without gradients a fused LSTM runs rnnkit::lstm_inference (the input projection inside
    the time loop) for batches > 1; it must equal the reference with lengths, both directions
    and stacked layers, and agree with the project-then-scan path that training takes."""
    torch.manual_seed(5)
    reference = rnnkit.LSTM(5, 17, num_layers=2, bidirectional=True, proj_size=proj_size,
                            batch_first=batch_first, backend="reference", dtype=dtype)
    fused = rnnkit.LSTM(5, 17, num_layers=2, bidirectional=True, proj_size=proj_size,
                        batch_first=batch_first, backend="fused", dtype=dtype)
    fused.load_state_dict(reference.state_dict())
    # enough rows per thread for the loop (fused_run_without_grad), and a tail past the
    # micro-kernel's row blocks of 8
    batch, steps = 16 * torch.get_num_threads() + 1, 7
    x = torch.randn((batch, steps, 5) if batch_first else (steps, batch, 5), dtype=dtype)
    lengths = torch.randint(1, steps + 1, (batch,))
    with torch.no_grad():
        expected = reference(x, lengths=lengths)
        with _OpsCalled() as called:
            got = fused(x, lengths=lengths)
    assert "rnnkit.lstm_inference.default" in called.names
    with _OpsCalled() as called:
        with_grad = fused(x.clone().requires_grad_(), lengths=lengths)  # the training path
    assert "rnnkit.lstm_inference.default" not in called.names
    for actual in (got, with_grad):
        assert_close(actual[0], expected[0])
        for a, b in zip(actual[1], expected[1]):
            assert_close(a, b)


def _training_results(model, x, grad_output, lengths=None):
    """Output, final states and the gradients of x and of every parameter for one backward."""
    output, hidden = model(x, lengths=lengths)
    hidden = hidden if isinstance(hidden, tuple) else (hidden,)
    grads = torch.autograd.grad(output, [x, *model.parameters()], grad_output)
    return [output, *hidden], grads


class _ProjectedInputs(TorchDispatchMode):
    """Records the shape of the input of every rnnkit::linear call (the layers' input
    projections, which the fused backend runs) while active, in call order."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) == "rnnkit.linear.default":
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


@requires_fused
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("use_lengths", [False, True])
def test_batch_first_training_computes_what_time_major_does(kind, use_lengths):
    """A batch-first layer that trains projects its input in time-major order (a copy of x no
    wider than the gates, scan.batch_first_projects_time_major) and hands a time-major output on
    to the layer above, which projects it as it lies. So it runs exactly the time-major layer's
    products, in the same order: outputs, states and every gradient equal the time-major
    layer's bit for bit (projected in the input's own order, the weight gradients summed their
    rows in another order and differed in the last bits). With lengths too: the padding is
    zeroed in x's own memory order, so the layer above still receives a time-major input.
    Oracles: the same model run time-major, and the (T, B, I) shapes the projections receive."""
    torch.manual_seed(3)
    steps, batch, features, hidden = 9, 5, 6, 20  # features <= the gate width of every cell
    make = KINDS[kind]
    time_major = make(features, hidden, num_layers=2, backend="fused")
    batch_first = make(features, hidden, num_layers=2, backend="fused", batch_first=True)
    batch_first.load_state_dict(time_major.state_dict())
    x = torch.randn(steps, batch, features)
    out_width = 3 if kind == "lstm_proj" else hidden
    grad_output = torch.randn(steps, batch, out_width)
    lengths = torch.tensor([9, 2, 5, 1, 7]) if use_lengths else None
    values_tm, grads_tm = _training_results(time_major, x.clone().requires_grad_(), grad_output,
                                            lengths)
    x_batch_major = x.transpose(0, 1).contiguous().requires_grad_()  # (B, T, I) as users hold it
    with _ProjectedInputs() as projected:
        values_bf, grads_bf = _training_results(batch_first, x_batch_major,
                                                grad_output.transpose(0, 1), lengths)
    assert projected.shapes == [(steps, batch, features), (steps, batch, out_width)]
    assert torch.equal(values_bf[0].transpose(0, 1), values_tm[0])
    for a, b in zip(values_bf[1:], values_tm[1:]):
        assert torch.equal(a, b)
    assert torch.equal(grads_bf[0].transpose(0, 1), grads_tm[0])
    names = [name for name, _ in time_major.named_parameters()]
    for name, a, b in zip(names, grads_bf[1:], grads_tm[1:]):
        assert torch.equal(a, b), name
    if use_lengths:
        # without gradients the first layer keeps x's (B, T) order, and the zeroed padding of
        # its time-major output must not turn it batch-major for the layer above
        with torch.no_grad(), _ProjectedInputs() as projected:
            batch_first(x_batch_major.detach(), lengths=lengths)
        assert projected.shapes == [(batch, steps, features), (steps, batch, out_width)]


class _ProjectionBiases(TorchDispatchMode):
    """Records, for every rnnkit::linear call while active, whether it was given a bias."""

    def __init__(self):
        super().__init__()
        self.biased = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) == "rnnkit.linear.default":
            self.biased.append(args[2] is not None)
        return func(*args, **(kwargs or {}))


@requires_fused
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers, bidirectional, batch_first, use_lengths",
                         [(1, False, False, False), (2, True, True, True), (2, False, True, False),
                          (1, True, False, True)])
def test_b_ih_added_in_the_recurrence_computes_what_the_reference_does(
        kind, layers, bidirectional, batch_first, use_lengths, monkeypatch):
    """LSTM and Elman layers may project without b_ih and let the recurrence add b_ih + b_hh
    (fused.backend.folds_input_bias, from 256k gate values; forced here at every size): the
    outputs, final states and the gradients of x, h0 and every parameter, b_ih's included,
    must still be the reference backend's. A GRU keeps b_ih in its projection (b_hn is scaled
    by the reset gate), whatever the size. Oracles: the reference backend, and the bias each
    projection receives."""
    from rnnkit.backends.fused import backend as fused_backend

    monkeypatch.setattr(fused_backend, "_MIN_GATE_VALUES_TO_FOLD_BIAS", 0)
    torch.manual_seed(5)
    steps, batch, features, hidden = 6, 7, 5, 17
    make = KINDS[kind]
    common = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    reference = make(features, hidden, backend="reference", **common)
    fused = make(features, hidden, backend="fused", **common)
    fused.load_state_dict(reference.state_dict())
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = torch.randn(shape, requires_grad=True)
    rows = layers * (2 if bidirectional else 1)
    out_width = 3 if kind == "lstm_proj" else hidden
    h0 = torch.randn(rows, batch, out_width, requires_grad=True)
    hx = (h0, torch.randn(rows, batch, hidden, requires_grad=True)) \
        if kind.startswith("lstm") else h0
    lengths = torch.tensor([6, 1, 4, 6, 2, 5, 3]) if use_lengths else None
    values_ref, grads_ref = _loss_and_grads(reference, x, hx, lengths)
    with _ProjectionBiases() as projections:
        values_fused, grads_fused = _loss_and_grads(fused, x, hx, lengths)
    assert projections.biased == [kind == "gru"] * rows
    for index, (a, b) in enumerate(zip(values_fused, values_ref)):
        assert_close(a, b, what=f"value {index}")
    for index, (a, b) in enumerate(zip(grads_fused, grads_ref)):
        assert_close(a, b, grad=True, what=f"gradient {index}")


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh"])
def test_b_ih_moves_to_the_recurrence_only_in_large_float32_calls(kind):
    """The size rule of folds_input_bias: a call with fewer than 256k gate values (T * B * G)
    keeps b_ih in its projection, as does a layer without biases and a float64 one; a larger
    float32 call projects without it, with or without gradients (where the projection is a
    separate GEMM), except while traced. Oracles: the bias each projection receives, and the
    values of the unfolded call for the folded ones (forced unfolded by the limit)."""
    from rnnkit.backends.fused import backend as fused_backend

    torch.manual_seed(6)
    hidden = 16
    gates = (4 if kind == "lstm" else 1) * hidden
    make = KINDS[kind]
    model = make(hidden, hidden, backend="fused")
    large_rows = fused_backend._MIN_GATE_VALUES_TO_FOLD_BIAS // gates
    small = torch.randn(large_rows - 1, 1, hidden)
    large = torch.randn(large_rows // 8, 8, hidden, requires_grad=True)
    with _ProjectionBiases() as projections:
        model(small)
        output, _ = model(large)
        with torch.no_grad():
            output_without_grad, _ = model(large)
    assert projections.biased == [True, False, False]  # 8 rows: no in-loop LSTM projection
    assert fused_backend.folds_input_bias(model.stack.layers[0].cell, large)
    float64 = make(hidden, hidden, backend="fused", dtype=torch.float64).stack.layers[0].cell
    assert not fused_backend.folds_input_bias(float64, large.double())
    unbiased = make(hidden, hidden, backend="fused", bias=False).stack.layers[0].cell
    assert not fused_backend.folds_input_bias(unbiased, large)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_backend, "_MIN_GATE_VALUES_TO_FOLD_BIAS", 1 << 62)
        unfolded, _ = model(large)
    assert_close(output, unfolded)
    assert_close(output_without_grad, unfolded)
    with _ProjectionBiases() as projections:  # a traced graph must not hold a size rule
        torch.jit.trace(model, (large,), check_trace=False)
    assert projections.biased == [True]


@requires_fused
@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
def test_batch_first_input_wider_than_the_gates(train):
    """An Elman layer with more inputs than gates (I > H) projects a batch-major input in its
    own (B, T) order (a time-major copy of x would cost more than it saves), as does any layer
    without gradients, while the layer above projects the time-major output it is handed as it
    lies: both routes in one model. Oracles: the reference backend for the values, the
    projections' input shapes for the routes."""
    torch.manual_seed(4)
    batch, steps, features, hidden = 5, 8, 40, 12
    reference = rnnkit.RNN(features, hidden, num_layers=2, batch_first=True, backend="reference")
    fused = rnnkit.RNN(features, hidden, num_layers=2, batch_first=True, backend="fused")
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(batch, steps, features)
    grad_output = torch.randn(batch, steps, hidden)
    if train:
        with _ProjectedInputs() as projected:
            values_f, grads_f = _training_results(fused, x.clone().requires_grad_(), grad_output)
        values_r, grads_r = _training_results(reference, x.clone().requires_grad_(), grad_output)
        pairs = zip([*values_f, *grads_f], [*values_r, *grads_r])
    else:
        with torch.no_grad():
            with _ProjectedInputs() as projected:
                got = fused(x)
            pairs = zip(got, reference(x))
    assert projected.shapes == [(batch, steps, features), (steps, batch, hidden)]
    for a, b in pairs:
        assert_close(a, b)


@requires_fused
def test_in_loop_projection_takes_weights_under_the_kernels_l2():
    """The in-loop projection takes W_ih and W_hh together under one core's L2, the size the C++
    plans read (Python's os.sysconf has no name for it: a fallback there was always 1 MiB). An
    LSTM whose weights are just under it projects inside the loop, one unit wider does not.
    Oracle for the size: getconf, where it reports one."""
    l2 = torch.ops.rnnkit.l2_cache_bytes()
    getconf = shutil.which("getconf")
    reported = subprocess.run([getconf, "LEVEL2_CACHE_SIZE"], capture_output=True,
                              text=True).stdout.strip() if getconf else ""
    if reported.isdigit() and int(reported) > 0:
        assert l2 == int(reported)

    def weight_bytes(hidden):  # float32 W_ih (4H x 4) and W_hh (4H x H)
        return 4 * (4 * hidden * 4 + 4 * hidden * hidden)

    under = max(h for h in range(1, 4096) if weight_bytes(h) < l2)
    x = torch.randn(2, 16 * torch.get_num_threads(), 4)  # enough rows per thread for the loop
    for hidden, in_loop in ((under, True), (under + 1, False)):
        layer = rnnkit.LSTM(4, hidden, backend="fused")
        with torch.no_grad(), _OpsCalled() as called:
            layer(x)
        assert ("rnnkit.lstm_inference.default" in called.names) == in_loop, hidden


@requires_fused
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_a_width_one_input_with_any_stride_runs(grad):
    """A channels-first (1, T, B) signal permuted to (T, B, 1) has stride 160 along its last
    dim yet counts as contiguous, so .contiguous() kept it and lstm_inference refused it (no_grad,
    16 or more rows per thread). Oracle: torch.nn.LSTM on the same tensor."""
    torch.manual_seed(0)
    oracle = torch.nn.LSTM(1, 16)
    ours = rnnkit.LSTM(1, 16, backend="fused")
    ours.load_state_dict(oracle.state_dict())
    x = torch.randn(1, 20, 16 * torch.get_num_threads()).permute(1, 2, 0)
    assert x.stride(-1) != 1 and x.is_contiguous()
    with torch.set_grad_enabled(grad):
        expected, got = oracle(x), ours(x)
    assert_close(got[0], expected[0])
    for a, b in zip(got[1], expected[1]):
        assert_close(a, b)


@requires_fused
def test_scan_takes_a_one_wide_gates_x_with_any_stride():
    """The same for rnnkit.scan's gates_x of an Elman cell with H = 1. Oracle: the reference
    backend on a contiguous copy."""
    torch.manual_seed(0)
    cell = rnnkit.RNNCell(3, 1)
    gates_x = torch.randn(1, 6, 4).permute(1, 2, 0)  # (T, B, 1), last stride 24
    expected = rnnkit.scan(cell, gates_x.clone(memory_format=torch.contiguous_format), None,
                           backend="reference")
    got = rnnkit.scan(cell, gates_x, None, backend="fused")
    assert_close(got[0], expected[0])
    assert_close(got[1].h, expected[1].h)


@requires_fused
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("used", ["final_state_only", "output_only"])
def test_gradients_when_some_outputs_are_unused(kind, used):
    """The ops do not materialize gradients of unused outputs; the ones they read must be
    filled in (as zero) by them, so a loss on the final state alone (classification) or on the
    output alone gives the reference gradients."""
    torch.manual_seed(4)
    reference = KINDS[kind](3, 9, num_layers=2, backend="reference")
    fused = KINDS[kind](3, 9, num_layers=2, backend="fused")
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(6, 4, 3, requires_grad=True)
    grads = []
    for model in (fused, reference):
        output, state = model(x)
        first_state = state[0] if isinstance(state, tuple) else state
        loss = (first_state.sum() if used == "final_state_only" else output.square().sum())
        grads.append(torch.autograd.grad(loss, [x, *model.parameters()]))
    for a, b in zip(*grads):
        assert_close(a, b, grad=True)


@requires_fused
def test_auto_picks_fused_for_supported_calls_and_reference_otherwise():
    cell = rnnkit.GRUCell(3, 4)
    assert select_backend(cell, torch.zeros(2, 2, 12)).name == "fused"
    assert select_backend(cell, torch.zeros(2, 2, 12, dtype=torch.float16)).name == "reference"
    with pytest.raises(RuntimeError, match=r"backend='fused' cannot run this call: fused kernels "
                                           r"support float32 and float64; got torch.float16"):
        select_backend(cell, torch.zeros(2, 2, 12, dtype=torch.float16), "fused")


@requires_fused
def test_the_ops_refuse_inputs_that_do_not_fit_together():
    """A mismatched width would index past the state's rows: each is a one-line error instead."""
    ops = torch.ops.rnnkit
    T, B, H = 3, 2, 8
    h0, w = torch.zeros(B, H), torch.zeros(H, H)
    with pytest.raises(RuntimeError, match=r"shapes do not fit together: gates_x \[3, 2, 32\]"):
        ops.elman_forward(torch.zeros(T, B, 4 * H), h0, w, None, None, False, False)
    with pytest.raises(RuntimeError, match="shapes do not fit together"):
        ops.gru_forward(torch.zeros(T, B + 1, 3 * H), h0, torch.zeros(3 * H, H), None, None,
                        False, False)
    with pytest.raises(RuntimeError, match="shapes do not fit together"):
        ops.lstm_forward(torch.zeros(T, B, 4 * H), h0, h0, torch.zeros(4 * H, H + 1), None, None,
                         None, False, False)
    with pytest.raises(RuntimeError, match="gates_x is Double but the state is Float; pass both"):
        ops.elman_forward(torch.zeros(T, B, H, dtype=torch.float64), h0, w, None, None, False,
                          False)


@requires_fused
def test_the_ops_check_every_state_bias_and_projection_they_read():
    """c0's batch size, bias_hh's length, weight_hr's shape and all of lstm_inference's
    arguments but x and weight_ih went unchecked: a direct op call with a short one read or
    wrote past its buffer (a segfault, glibc's "corrupted double-linked list", or 192 values
    read from a 3-value bias). Oracle: the shapes torch.nn's own layers require."""
    ops = torch.ops.rnnkit
    T, B, H, P, I = 3, 4, 8, 5, 6
    h0, c0 = torch.zeros(B, H), torch.zeros(B, H)
    with pytest.raises(RuntimeError, match=r"bias_hh must hold 24 values of Float; got Float of shape \[3\]"):
        ops.gru_forward(torch.zeros(T, B, 3 * H), h0, torch.zeros(3 * H, H), torch.zeros(3),
                        None, False, False)
    with pytest.raises(RuntimeError, match="bias_hh must hold 8 values"):
        ops.elman_forward(torch.zeros(T, B, H), h0, torch.zeros(H, H), torch.zeros(H + 1), None,
                          False, False)
    with pytest.raises(RuntimeError, match="bias_hh must hold 8 values of Float; got Double"):
        ops.elman_forward(torch.zeros(T, B, H), h0, torch.zeros(H, H),
                          torch.zeros(H, dtype=torch.float64), None, False, False)
    with pytest.raises(RuntimeError, match=r"c0 must be \(B, H\) = \(4, 8\)"):
        ops.lstm_forward(torch.zeros(T, B, 4 * H), h0, torch.zeros(1, H), torch.zeros(4 * H, H),
                         None, None, None, False, False)
    with pytest.raises(RuntimeError, match="bias_hh must hold 32 values"):
        ops.lstm_forward(torch.zeros(T, B, 4 * H), h0, c0, torch.zeros(4 * H, H), torch.zeros(8),
                         None, None, False, False)
    with pytest.raises(RuntimeError, match="do not fit H = 8"):
        ops.lstm_forward(torch.zeros(T, B, 4 * H), torch.zeros(B, P), c0, torch.zeros(4 * H, P),
                         None, torch.zeros(P, H - 1), None, False, False)
    with pytest.raises(RuntimeError, match="do not fit H = 8"):  # P != H without weight_hr
        ops.lstm_forward(torch.zeros(T, B, 4 * H), torch.zeros(B, P), c0, torch.zeros(4 * H, P),
                         None, None, None, False, False)
    x, w_ih, w_hh = torch.zeros(T, B, I), torch.zeros(4 * H, I), torch.zeros(4 * H, H)
    bad_inference_calls = {
        r"c0 must be \(B, H\)": (x, h0, torch.zeros(1, H), w_ih, None, w_hh, None, None),
        "shapes do not fit together": (x, torch.zeros(1, H), c0, w_ih, None, w_hh, None, None),
        "shapes do not fit together: x": (x, h0, c0, w_ih, None, torch.zeros(4 * H, H + 1), None,
                                          None),
        "bias_ih must hold 32 values": (x, h0, c0, w_ih, torch.zeros(3), w_hh, None, None),
        "bias_hh must hold 32 values": (x, h0, c0, w_ih, None, w_hh, torch.zeros(3), None),
        "do not fit H = 8": (x, torch.zeros(B, P), c0, w_ih, None, torch.zeros(4 * H, P), None,
                             torch.zeros(P + 1, H)),
        "must share one dtype": (x, h0.double(), c0, w_ih, None, w_hh, None, None),
    }
    for message, arguments in bad_inference_calls.items():
        with pytest.raises(RuntimeError, match=message):
            ops.lstm_inference(*arguments, None, False)
    # and the same shapes, fitting, still run (the checks refuse no valid call)
    out, h_n, c_n = ops.lstm_inference(x, torch.zeros(B, P), c0, w_ih, torch.zeros(4 * H),
                                       torch.zeros(4 * H, P), torch.zeros(4 * H),
                                       torch.zeros(P, H), None, False)
    assert out.shape == (T, B, P) and h_n.shape == (B, P) and c_n.shape == (B, H)


@requires_fused
def test_the_backward_ops_check_the_shapes_of_what_they_are_given():
    """The backward ops took the saved tensors' and gradients' shapes on trust: a direct call
    with a short one read past its end. Oracle: the shapes the forward ops return, with which
    the same calls run."""
    ops = torch.ops.rnnkit
    T, B, H, P = 3, 2, 8, 5
    zeros = torch.zeros
    out, h_n = ops.elman_forward(zeros(T, B, H), zeros(B, H), zeros(H, H), None, None, False,
                                 False)
    ops.elman_backward(zeros(T, B, H), zeros(B, H), out, zeros(B, H), zeros(H, H), None, False,
                       False)
    with pytest.raises(RuntimeError, match=r"grad_h_n must have shape \[2, 8\] \(the forward's\); got \[1, 8\]"):
        ops.elman_backward(zeros(T, B, H), zeros(1, H), out, zeros(B, H), zeros(H, H), None,
                           False, False)
    out, h_n, saved = ops.gru_forward(zeros(T, B, 3 * H), zeros(B, H), zeros(3 * H, H), None,
                                      None, False, True)
    ops.gru_backward(zeros(T, B, H), zeros(B, H), out, saved, zeros(B, H), zeros(3 * H, H), None,
                     False)
    with pytest.raises(RuntimeError, match="grad_output must have shape"):
        ops.gru_backward(zeros(T - 1, B, H), zeros(B, H), out, saved, zeros(B, H),
                         zeros(3 * H, H), None, False)
    with pytest.raises(RuntimeError, match="weight_hh must have shape"):
        ops.gru_backward(zeros(T, B, H), zeros(B, H), out, saved, zeros(B, H), zeros(H, H), None,
                         False)
    h0, c0, w_hh, w_hr = zeros(B, P), zeros(B, H), zeros(4 * H, P), zeros(P, H)
    out, h_n, c_n, gates, cells = ops.lstm_forward(zeros(T, B, 4 * H), h0, c0, w_hh, None, w_hr,
                                                   None, False, True)
    good = [zeros(T, B, P), zeros(B, P), zeros(B, H), out, gates, cells, h0, c0, w_hh, w_hr]
    ops.lstm_backward(*good, None, False)
    for index, name, wrong in ((2, "grad_c_n", zeros(1, H)), (5, "cells", zeros(T, B, 1)),
                               (7, "c0", zeros(B, P)), (9, "weight_hr", zeros(P, H + 1))):
        arguments = list(good)
        arguments[index] = wrong
        with pytest.raises(RuntimeError, match=f"{name} must have shape"):
            ops.lstm_backward(*arguments, None, False)


@requires_fused
def test_the_backward_ops_read_saved_activations_of_any_layout():
    """lstm_backward and gru_backward read the saved activations by raw pointer after checking
    only their shapes: an expanded (stride-0) tensor of the right shape was read past its
    storage (AddressSanitizer: a read past a 128-byte block). Oracle: the same call with
    contiguous copies."""
    ops = torch.ops.rnnkit
    torch.manual_seed(3)
    T, B, H = 5, 3, 8
    gates = torch.rand(1, 1, 4 * H).expand(T, B, 4 * H)
    cells = torch.rand(T, 1, H).expand(T, B, H)
    arguments = [torch.randn(T, B, H), torch.randn(B, H), torch.randn(B, H),
                 torch.rand(T, B, H), gates, cells, torch.zeros(B, H), torch.randn(B, H),
                 torch.randn(4 * H, H), None, None, False]
    copies = [a.contiguous() if isinstance(a, torch.Tensor) else a for a in arguments]
    for got, expected in zip(ops.lstm_backward(*arguments), ops.lstm_backward(*copies)):
        assert (got is None) == (expected is None) and (got is None or torch.equal(got, expected))
    saved = torch.rand(T, 1, 4 * H).expand(T, B, 4 * H)
    arguments = [torch.randn(T, B, H), torch.randn(B, H), torch.rand(T, B, H), saved,
                 torch.randn(B, H), torch.randn(3 * H, H), None, False]
    copies = [a.contiguous() if isinstance(a, torch.Tensor) else a for a in arguments]
    for got, expected in zip(ops.gru_backward(*arguments), ops.gru_backward(*copies)):
        assert (got is None) == (expected is None) and (got is None or torch.equal(got, expected))


@requires_fused
@pytest.mark.parametrize("engine", ["packed", "mkl"])
def test_the_dense_ops_refuse_operands_that_do_not_fit_together(engine):
    """rnnkit::linear and rnnkit::matmul took the inner size from the weight and the bias length
    on trust where the packed GEMM runs (large products): a weight wider than x was read past
    x's rows, and a short bias past its end (garbage added to the output, silently). Oracle:
    torch's own linear and mm refuse the same operands."""
    ops = torch.ops.rnnkit
    x = torch.randn(2048, 32)
    cases = [(ops.linear, torch.nn.functional.linear, (x, torch.randn(320, 40), None)),
             (ops.linear, torch.nn.functional.linear, (x, torch.randn(320, 32), torch.zeros(3))),
             (ops.matmul, torch.mm, (x, torch.randn(40, 320)))]
    ops.set_dense_engine(engine)
    try:
        for ours, theirs, arguments in cases:
            with pytest.raises(RuntimeError):
                theirs(*arguments)
            with pytest.raises(RuntimeError, match="must be"):
                ours(*arguments)
    finally:
        ops.set_dense_engine("auto")


@requires_fused
@pytest.mark.parametrize("bad", [[4, 1], [0, 1], [-1, 1]], ids=["past-T", "zero", "negative"])
def test_the_ops_refuse_lengths_outside_one_to_t(bad):
    """A length past T made the reverse direction read rows beyond the buffers (garbage
    gradients, found 2026-12-04): the ops and rnnkit.scan check every length."""
    ops = torch.ops.rnnkit
    T, B, H = 3, 2, 8
    h0, lengths = torch.zeros(B, H), torch.tensor(bad)
    pattern = rf"lengths must be in 1\.\.T = 3; got {bad[0]} at index 0"
    with pytest.raises(RuntimeError, match=pattern):
        ops.elman_forward(torch.zeros(T, B, H), h0, torch.zeros(H, H), None, lengths, True, False)
    with pytest.raises(RuntimeError, match=pattern):
        ops.gru_forward(torch.zeros(T, B, 3 * H), h0, torch.zeros(3 * H, H), None, lengths, True,
                        True)
    with pytest.raises(RuntimeError, match=pattern):
        ops.lstm_backward(torch.zeros(T, B, H), h0, h0, torch.zeros(T, B, H),
                          torch.zeros(T, B, 4 * H), torch.zeros(T, B, H), h0, h0,
                          torch.zeros(4 * H, H), None, lengths, True)
    cell = rnnkit.GRUCell(4, H)
    for backend in ("reference", "fused"):
        with pytest.raises(ValueError, match=r"^lengths must be (>= 1|<= the sequence length)"):
            rnnkit.scan(cell, torch.zeros(T, B, 3 * H), cell.initial_state(B), lengths=lengths,
                        reverse=True, backend=backend)


def _opcheck_cases():
    torch.manual_seed(3)
    steps, batch, hidden, proj = 4, 3, 5, 2
    lengths = torch.tensor([4, 2, 3])
    cases = []
    for training, with_lengths, reverse in itertools.product((True, False), (False, True), (False, True)):
        lens = lengths if with_lengths else None
        grad = dict(requires_grad=training)
        cases.append(pytest.param("lstm_forward", (
            torch.randn(steps, batch, 4 * hidden, **grad), torch.randn(batch, hidden, **grad),
            torch.randn(batch, hidden, **grad), torch.randn(4 * hidden, hidden, **grad),
            torch.randn(4 * hidden, **grad), None, lens, reverse, training),
            id=f"lstm-train{training}-len{with_lengths}-rev{reverse}"))
        cases.append(pytest.param("gru_forward", (
            torch.randn(steps, batch, 3 * hidden, **grad), torch.randn(batch, hidden, **grad),
            torch.randn(3 * hidden, hidden, **grad), torch.randn(3 * hidden, **grad), lens,
            reverse, training), id=f"gru-train{training}-len{with_lengths}-rev{reverse}"))
        cases.append(pytest.param("elman_forward", (
            torch.randn(steps, batch, hidden, **grad), torch.randn(batch, hidden, **grad),
            torch.randn(hidden, hidden, **grad), torch.randn(hidden, **grad), lens, reverse,
            not training), id=f"elman-grad{training}-len{with_lengths}-rev{reverse}"))
    cases.append(pytest.param("lstm_forward", (
        torch.randn(steps, batch, 4 * hidden, requires_grad=True),
        torch.randn(batch, proj, requires_grad=True), torch.randn(batch, hidden, requires_grad=True),
        torch.randn(4 * hidden, proj, requires_grad=True), None,
        torch.randn(proj, hidden, requires_grad=True), lengths, True, True), id="lstm-proj-nobias"))
    features = 6
    for with_lengths, reverse, projected in itertools.product((False, True), (False, True), (False, True)):
        width = proj if projected else hidden
        cases.append(pytest.param("lstm_inference", (
            torch.randn(steps, batch, features), torch.randn(batch, width), torch.randn(batch, hidden),
            torch.randn(4 * hidden, features), None if projected else torch.randn(4 * hidden),
            torch.randn(4 * hidden, width), torch.randn(4 * hidden),
            torch.randn(proj, hidden) if projected else None, lengths if with_lengths else None,
            reverse), id=f"lstm-inference-len{with_lengths}-rev{reverse}-proj{projected}"))
    return cases


@requires_fused
@pytest.mark.parametrize("op_name, args", _opcheck_cases())
def test_opcheck_forward_ops(op_name, args):
    torch.library.opcheck(getattr(torch.ops.rnnkit, op_name), args)


def _gradient_row_stride(width, dtype):
    """Row stride of a backward op's grad_gates_x: one cache line more than `width` when a row
    is a multiple of 2 KB (csrc/common.h, gradient_row_stride), else `width`."""
    item = dtype.itemsize
    return width + 64 // item if width * item % 2048 == 0 else width


@requires_fused
@pytest.mark.parametrize("hidden, dtype", [(5, torch.float32), (128, torch.float32),
                                           (256, torch.float64)])
def test_opcheck_backward_ops(hidden, dtype):
    """opcheck compares the fake outputs' strides with the real ones': H = 128 (float32 LSTM)
    and H = 256 (float64, every cell) give gate gradients with padded rows."""
    torch.manual_seed(4)
    steps, batch = 4, 3
    lengths = torch.tensor([4, 1, 3])
    ops = torch.ops.rnnkit
    f = dict(dtype=dtype)

    def check(op, args, width):
        torch.library.opcheck(op, args)
        grad_gates_x = op(*args)[0]
        assert grad_gates_x.shape == (steps, batch, width)
        assert grad_gates_x.stride() == (batch * _gradient_row_stride(width, dtype),
                                         _gradient_row_stride(width, dtype), 1)

    out, h_n, c_n, gates, cells = ops.lstm_forward(
        torch.randn(steps, batch, 4 * hidden, **f), torch.randn(batch, hidden, **f),
        torch.randn(batch, hidden, **f), torch.randn(4 * hidden, hidden, **f), None, None,
        lengths, False, True)
    check(ops.lstm_backward, (
        torch.randn_like(out), torch.randn_like(h_n), torch.randn_like(c_n), out, gates, cells,
        torch.randn(batch, hidden, **f), torch.randn(batch, hidden, **f),
        torch.randn(4 * hidden, hidden, **f), None, lengths, False), 4 * hidden)
    gx, h0 = torch.randn(steps, batch, 3 * hidden, **f), torch.randn(batch, hidden, **f)
    w = torch.randn(3 * hidden, hidden, **f)
    out, h_n, saved = ops.gru_forward(gx, h0, w, None, lengths, True, True)
    check(ops.gru_backward, (torch.randn_like(out), torch.randn_like(h_n), out, saved, h0, w,
                             lengths, True), 3 * hidden)
    gx, w = torch.randn(steps, batch, hidden, **f), torch.randn(hidden, hidden, **f)
    out, h_n = ops.elman_forward(gx, h0, w, None, None, False, False)
    check(ops.elman_backward, (torch.randn_like(out), torch.randn_like(h_n), out, h0, w, None,
                               False, False), hidden)


@requires_fused
@pytest.mark.parametrize("batch", [3, 1, 0])
def test_fake_gate_gradients_have_the_real_strides(batch):
    """The backward ops' fake functions (ops.py) against the ops themselves: the gate
    gradient's strides, padded rows included, for an empty batch too (whose buffer counts B as
    1 in its strides). opcheck compares strides only for non-empty outputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    torch.manual_seed(15)
    ops = torch.ops.rnnkit
    steps, hidden = 4, 128
    h0, c0 = torch.zeros(batch, hidden), torch.zeros(batch, hidden)
    weight = torch.randn(4 * hidden, hidden) * 0.1
    out, h_n, c_n, gates, cells = ops.lstm_forward(
        torch.randn(steps, batch, 4 * hidden), h0, c0, weight, None, None, None, False, True)
    lstm_args = (torch.randn_like(out), torch.zeros_like(h_n), torch.zeros_like(c_n), out, gates,
                 cells, h0, c0, weight, None, None, False)
    h64 = torch.zeros(batch, 2 * hidden, dtype=torch.float64)
    w64 = torch.randn(6 * hidden, 2 * hidden, dtype=torch.float64) * 0.1
    out64, h_n64, saved = ops.gru_forward(torch.randn(steps, batch, 6 * hidden, dtype=torch.float64),
                                          h64, w64, None, None, False, True)
    gru_args = (torch.randn_like(out64), torch.zeros_like(h_n64), out64, saved, h64, w64, None, False)
    for op, args in ((ops.lstm_backward, lstm_args), (ops.gru_backward, gru_args)):
        real = op(*args)[0]
        with FakeTensorMode() as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
            fake = op(*fake_args)[0]
        assert (fake.shape, fake.stride()) == (real.shape, real.stride()), op


@requires_fused
@pytest.mark.parametrize("kind, hidden, dtype, buffers", [
    ("lstm", 128, torch.float32, 1), ("lstm_proj", 256, torch.float32, 1),
    ("gru", 256, torch.float64, 2), ("rnn_tanh", 256, torch.float64, 1)])
def test_padded_gate_gradients_never_read_their_padding(kind, hidden, dtype, buffers):
    """The backward ops' gate gradients have rows one cache line longer than the gates where a
    row is a multiple of 2 KB (csrc/common.h, gradient_row_stride); without lengths the buffer
    is not zeroed, so the extra values are whatever the buffer pool's block held. Here the pool
    is first handed blocks of exactly that size full of NaN (outputs of rnnkit::linear, freed),
    so a read of the padding anywhere (the step's product, the weight and bias gradients, the
    input projection's backward) would turn gradients into NaN. Against the reference backend,
    one thread (the split by rows; no unit plan)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(13)
        steps, batch, features = 20, 8, 16
        reference = KINDS[kind](features, hidden, backend="reference", dtype=dtype)
        fused = KINDS[kind](features, hidden, backend="fused", dtype=dtype)
        fused.load_state_dict(reference.state_dict())
        x = torch.randn(steps, batch, features, dtype=dtype, requires_grad=True)
        gates = {"lstm": 4, "lstm_proj": 4, "gru": 3, "rnn_tanh": 1}[kind] * hidden
        row = _gradient_row_stride(gates, dtype)
        assert row > gates  # the case under test: padded rows
        values_ref, grads_ref = _loss_and_grads(reference, x, None, None)

        output, hidden_state = fused(x)
        empty_buffer_cache()  # so that the poisoned blocks are the only free ones of their size
        poison = [torch.ops.rnnkit.linear(torch.full((steps * batch, 4), float("nan"), dtype=dtype),
                                          torch.ones(row, 4, dtype=dtype), None)
                  for _ in range(buffers)]
        assert all(bool(p.isnan().all()) for p in poison)
        del poison  # their blocks go back to the pool, NaN inside, for the backward to take
        hidden_state = hidden_state if isinstance(hidden_state, tuple) else (hidden_state,)
        weights = torch.Generator().manual_seed(7)  # as _loss_and_grads weighs the outputs
        loss = (output * torch.randn(output.shape, generator=weights, dtype=dtype)).sum()
        for h in hidden_state:
            loss = loss + (h * torch.randn(h.shape, generator=weights, dtype=dtype)).sum()
        grads = torch.autograd.grad(loss, [x, *fused.parameters()])
    finally:
        torch.set_num_threads(previous)
    for a, b in zip([output, *hidden_state], values_ref):
        assert_close(a, b)
    for a, b in zip(grads, grads_ref):
        assert_close(a, b, grad=True)


@requires_fused
def test_the_pool_poison_reaches_the_padding():
    """The precondition of the test above: a block freed with NaN inside is the one the next
    backward op takes for its gate gradient, whose padding then holds NaN while every value of
    the (T, B, G) view is written (finite)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(14)
        ops = torch.ops.rnnkit
        steps, batch, hidden = 20, 8, 128
        gates = 4 * hidden
        row = _gradient_row_stride(gates, torch.float32)
        h0, c0 = torch.zeros(batch, hidden), torch.zeros(batch, hidden)
        weight = torch.randn(gates, hidden) * 0.1
        out, h_n, c_n, saved_gates, cells = ops.lstm_forward(
            torch.randn(steps, batch, gates), h0, c0, weight, None, None, None, False, True)
        empty_buffer_cache()
        poison = ops.linear(torch.full((steps * batch, 4), float("nan")), torch.ones(row, 4), None)
        address = poison.data_ptr()
        del poison
        grad = ops.lstm_backward(torch.randn_like(out), torch.zeros_like(h_n), torch.zeros_like(c_n),
                                 out, saved_gates, cells, h0, c0, weight, None, None, False)[0]
    finally:
        torch.set_num_threads(previous)
    assert grad.data_ptr() == address
    whole_rows = grad.as_strided((steps, batch, row), (batch * row, row, 1))
    assert bool(whole_rows[..., gates:].isnan().all())
    assert bool(grad.isfinite().all())


@requires_fused
def test_compiles_with_torch_compile():
    torch.manual_seed(5)
    model = rnnkit.GRU(3, 6, backend="fused")
    reference = rnnkit.GRU(3, 6, backend="reference")
    reference.load_state_dict(model.state_dict())
    compiled = torch.compile(model, fullgraph=False, backend="eager")
    x = torch.randn(5, 2, 3)
    assert_close(compiled(x)[0], reference(x)[0])


_FIRST_CALL_COMPILED_SCRIPT = textwrap.dedent("""
    import torch, rnnkit
    torch.manual_seed(5)
    model = rnnkit.GRU(3, 6, backend="fused")
    x = torch.randn(5, 2, 3)
    out = torch.compile(model, fullgraph=True, backend="eager")(x)[0]  # first fused call here
    reference = rnnkit.GRU(3, 6, backend="reference")
    reference.load_state_dict(model.state_dict())
    print("max difference", float((out - reference(x)[0]).abs().max()))
""")


@requires_fused
def test_first_fused_call_may_be_inside_a_full_graph_compile():
    """Loading the kernels takes a lock that dynamo cannot trace; before the availability check
    was marked constant, fullgraph=True failed unless an eager fused call had come first."""
    result = subprocess.run([sys.executable, "-c", _FIRST_CALL_COMPILED_SCRIPT],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    difference = float(result.stdout.split("max difference")[-1])
    assert difference < 1e-5, result.stdout


_GLOBAL_RNG_SCRIPT = textwrap.dedent("""
    import torch, rnnkit
    torch.manual_seed(0)
    rnnkit.LSTM(64, 64)                                    # the same draws for the weights
    expected = torch.rand(4)
    torch.manual_seed(0)
    model = rnnkit.LSTM(64, 64, backend="fused")
    model(torch.ones(256, 64, 64))[0].sum().backward()     # products from 16M multiply-adds
    torch.ops.rnnkit.onednn_usable()                       # the one-off probe of oneDNN's matmul
    print("same draws", bool(torch.equal(torch.rand(4), expected)))
""")


@requires_fused
def test_fused_calls_leave_torch_random_generator_alone():
    """The first large product of a process probed oneDNN with randn on torch's global
    generator, which shifted every later dropout mask: a resumed training run then differed from
    an uninterrupted one. Run in a fresh process, where that probe has not happened yet."""
    result = subprocess.run([sys.executable, "-c", _GLOBAL_RNG_SCRIPT],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "same draws True" in result.stdout, result.stdout


@requires_fused
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch, hidden, dtype", [
    (1, 192, torch.float32), (1, 200, torch.float32), (1, 200, torch.float64),
    (2, 80, torch.float32), (9, 80, torch.float32), (4, 256, torch.float32),
    (5, 256, torch.float32), (6, 512, torch.float32), (20, 512, torch.float32),
    (40, 512, torch.float32)])
def test_two_threads_split_rows_and_units(kind, batch, hidden, dtype):
    """Large enough to take the threaded paths, results must not change:
    - rows split across threads (B >= 2) for the whole sequence, each thread with its own
      packed copy of the weight, or with one copy shared where an LSTM's 4 MB or a GRU's 3 MB
      W_hh is larger than L2 (B = 40, H = 512; B = 20 too off Intel; csrc/common.h,
      BlockWeight);
    - the hidden units split across threads, a barrier per step (csrc/unit_team.h): one row
      (H = 192: at least 32k multiply-adds per step for every cell; H = 200: slices of 96 and
      104 units, the last SIMD group partial), a few rows of a wide state (B = 4, H = 256 on
      every host, checked below for LSTM and GRU; B = 5 on Intel), or a few rows of a weight
      larger than L2 (B = 6, H = 512 for LSTM and GRU on every host, checked below; B = 20 on
      Intel);
    - or each step's product over column panels where a cell has no unit plan.
    (With fewer than 2 CPUs in the affinity mask the unit plan is off, and the B = 1 cases
    compare the per-step panel split instead.)"""
    l2 = torch.ops.rnnkit.l2_cache_bytes()
    if (batch, hidden) in ((4, 256), (6, 512)) and kind in ("lstm", "gru") and l2 <= 2 << 20:
        # These cases stand for the units plan with several rows: on hosts with the L2 of the
        # two measured (1-2 MB) they must be inside its limits (rows per thread at 2 threads;
        # csrc/unit_team.h, unit_slices), whose vendor-chosen values a change could move.
        limit_any, limit_past_l2 = torch.ops.rnnkit.units_over_rows_limits()
        past_l2 = (4 if kind == "lstm" else 3) * hidden * hidden * 4 > l2
        assert -(-batch // 2) <= (limit_past_l2 if past_l2 else limit_any)
    torch.manual_seed(6)
    x = torch.randn(30, batch, 24, dtype=dtype, requires_grad=True)
    lengths = (torch.arange(batch) * 3 + 25) % 30 + 1
    _assert_two_threads_match_reference(kind, dict(hidden_size=hidden, num_layers=2,
                                                   bidirectional=True, dtype=dtype), x, lengths)


def _assert_two_threads_match_reference(kind, options, x, lengths):
    """A fused layer of `kind` run with 2 threads against the reference layer with the same
    weights: outputs, final states and every gradient."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reference = KINDS[kind](x.size(-1), backend="reference", **options)
        fused = KINDS[kind](x.size(-1), backend="fused", **options)
        fused.load_state_dict(reference.state_dict())
        values_ref, grads_ref = _loss_and_grads(reference, x, None, lengths)
        values_fused, grads_fused = _loss_and_grads(fused, x, None, lengths)
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(values_fused, values_ref):
        assert_close(a, b)
    for a, b in zip(grads_fused, grads_ref):
        assert_close(a, b, grad=True)


@requires_fused
@pytest.mark.parametrize("kind, hidden", [("lstm", 112), ("gru", 112), ("rnn_tanh", 128),
                                          ("rnn_relu", 128)])
def test_two_threads_split_units_of_two_rows(kind, hidden):
    """Two rows for one step are too little work to split by rows (under 128k multiply-adds in
    all), but the step's product (2 x hidden x gates hidden, at least 32k) is split by units
    (csrc/unit_team.h), so the plan by units must handle more than one row. Against the
    reference in float64."""
    torch.manual_seed(12)
    x = torch.randn(1, 2, 16, dtype=torch.float64, requires_grad=True)
    _assert_two_threads_match_reference(kind, dict(hidden_size=hidden, dtype=torch.float64), x,
                                        None)


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_second_derivatives_raise_and_name_the_reference_backend(kind):
    """The backward kernels have no derivative of their own: a backward with create_graph=True
    through a fused layer raises (torch's fallback only warned and dropped the term), and the
    reference backend it points to does give second derivatives (float64 gradgradcheck)."""
    torch.manual_seed(8)
    fused = KINDS[kind](2, 3, backend="fused").double()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    output, _ = fused(x)
    with pytest.raises(RuntimeError, match=r"create_graph=True.*backend='reference'"):
        torch.autograd.grad(output.pow(2).sum(), x, create_graph=True)

    reference = KINDS[kind](2, 3, backend="reference").double()
    reference.load_state_dict(fused.state_dict())
    assert torch.autograd.gradgradcheck(lambda inputs: reference(inputs)[0], (x,))


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_torch_func_transforms_run_on_the_reference_backend(kind):
    """torch.func refuses C++ autograd Functions, which the fused ops are: inside grad or vmap,
    "auto" takes the reference backend (gradients equal to plain backward through the fused
    kernels; vmap equal to a loop over the batch of inputs), and "fused" raises saying why."""
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(10)
    model = KINDS[kind](3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    params = {name: p.detach() for name, p in model.named_parameters()}
    grads = grad(lambda p: functional_call(model, p, (x,))[0].pow(2).sum())(params)
    model(x)[0].pow(2).sum().backward()
    for name, parameter in model.named_parameters():
        assert_close(grads[name], parameter.grad, grad=True)

    batch_of_inputs = torch.randn(4, 5, 2, 3, dtype=torch.float64)
    mapped = vmap(lambda one: model(one)[0])(batch_of_inputs)
    assert_close(mapped, torch.stack([model(one)[0] for one in batch_of_inputs]))

    fused = KINDS[kind](3, 4, backend="fused").double()
    with pytest.raises(RuntimeError, match="torch.func"):
        vmap(lambda one: fused(one)[0])(batch_of_inputs)


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_forward_mode_derivatives_run_on_the_reference_backend(kind):
    """The fused ops' C++ autograd has no jvp: inside forward_ad.dual_level "auto" takes the
    reference backend, whose tangent equals a central finite difference of the fused forward
    (float64), and "fused" raises saying why instead of dropping the tangent."""
    import torch.autograd.forward_ad as fwAD

    torch.manual_seed(11)
    model = KINDS[kind](3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    direction = torch.randn_like(x)
    with fwAD.dual_level():
        tangent = fwAD.unpack_dual(model(fwAD.make_dual(x, direction))[0]).tangent
    eps = 1e-6
    with torch.no_grad():
        difference = (model(x + eps * direction)[0] - model(x - eps * direction)[0]) / (2 * eps)
    assert_close(tangent, difference, grad=True)

    fused = KINDS[kind](3, 4, backend="fused").double()
    with fwAD.dual_level(), pytest.raises(RuntimeError, match="forward-mode"):
        fused(fwAD.make_dual(x, direction))


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_calls_without_a_graph_skip_autograd_and_match_those_with_one(kind):
    """Under no_grad, or with nothing requiring grad, the ops bypass their autograd Function
    (csrc/autograd.cpp, records_graph): same values as the call that records a graph, outputs
    that do not require grad, and a tangent-carrying input still reaches the Function's error
    for missing forward-mode derivatives."""
    import torch.autograd.forward_ad as fwAD

    torch.manual_seed(12)
    model = KINDS[kind](3, 4, backend="fused")
    x = torch.randn(6, 2, 3)
    recorded, _ = model(x)
    assert recorded.requires_grad
    with torch.no_grad():
        unrecorded, _ = model(x)
    model.requires_grad_(False)
    frozen, _ = model(x)
    assert not unrecorded.requires_grad and not frozen.requires_grad
    assert torch.equal(unrecorded, recorded.detach()) and torch.equal(frozen, unrecorded)
    cell = model.stack.layers[0].cell
    with fwAD.dual_level(), torch.no_grad(), pytest.raises(RuntimeError, match="jvp"):
        torch.ops.rnnkit.linear(fwAD.make_dual(x, torch.ones_like(x)), cell.weight_ih, None)


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("use_reentrant", [False, True])
def test_activation_checkpointing_recomputes_the_same_gradients(kind, use_reentrant):
    """torch.utils.checkpoint runs the fused forward again in backward (without saving it the
    first time): the gradients equal those of a plain backward, bit for bit."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(11)
    model = KINDS[kind](3, 4, num_layers=2, backend="fused")
    x = torch.randn(6, 2, 3, requires_grad=True)

    def gradients(run):
        model.zero_grad()
        x.grad = None
        run(x).pow(2).sum().backward()
        return [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]

    plain = gradients(lambda inputs: model(inputs)[0])
    recomputed = gradients(lambda inputs: checkpoint(lambda i: model(i)[0], inputs,
                                                     use_reentrant=use_reentrant))
    for a, b in zip(recomputed, plain):
        assert torch.equal(a, b)


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "lstm_proj", "gru", "rnn_relu"])
def test_parametrized_cells_run_on_the_fused_kernels(kind):
    """weight_norm and spectral_norm (torch parametrizations) swap in a subclass of the cell that
    computes its weights when read; the fused kernels still run it (backend="fused" raised
    before), matching the reference backend in values and every gradient, and the streaming
    stepper matches the cell's own step. A subclass that is not a parametrization is refused."""
    from torch.nn.utils import parametrizations
    from rnnkit.backends.fused import FusedStepper
    from rnnkit.cells import RecurrentCell

    def parametrized(backend):
        torch.manual_seed(12)
        model = KINDS[kind](3, 8, num_layers=2, backend=backend).double()
        for cell in [m for m in model.modules() if isinstance(m, RecurrentCell)]:
            parametrizations.weight_norm(cell, "weight_hh")
            parametrizations.spectral_norm(cell, "weight_ih")
        return model

    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    values_fused, grads_fused = _loss_and_grads(parametrized("fused"), x, None, None)
    values_ref, grads_ref = _loss_and_grads(parametrized("reference"), x, None, None)
    for a, b in zip(values_fused, values_ref):
        assert_close(a, b)
    for a, b in zip(grads_fused, grads_ref):
        assert_close(a, b, grad=True)

    cell = next(m for m in parametrized("fused").float().modules() if isinstance(m, RecurrentCell))
    stepper = FusedStepper(cell, batch_size=2)
    x_t = torch.randn(2, 3)
    with torch.no_grad():
        expected = cell(x_t)
    assert_close(stepper.step(x_t), expected[0] if isinstance(expected, tuple) else expected)

    class CustomStep(type(cell).__bases__[0]):
        pass

    custom = KINDS[kind](3, 8, backend="fused")
    custom_cell = next(m for m in custom.modules() if isinstance(m, RecurrentCell))
    custom_cell.__class__ = CustomStep
    with pytest.raises(RuntimeError, match="no fused kernel for CustomStep"):
        custom(torch.randn(4, 2, 3))


@requires_fused
@pytest.mark.parametrize("batch", [4, 16])  # 16: LSTM inference's own op, with no autograd
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_weight_set_as_a_plain_tensor_gets_its_gradient(kind, batch):
    """A hypernetwork's weight_hh (a computed tensor, the cell's own parameters frozen, an
    input without grad): the fused forward saved nothing, so backward raised, or at batch 16
    the LSTM inference op ran and the gradient to z was silently dropped. Oracle: the
    reference backend."""
    from rnnkit.cells import GRUCell, LSTMCell

    def gradient(backend):
        torch.manual_seed(0)
        cell = {"lstm": LSTMCell, "gru": GRUCell}[kind](3, 8)
        cell.requires_grad_(False)
        z = torch.randn(cell.weight_hh.shape, requires_grad=True)
        del cell.weight_hh
        cell.weight_hh = 0.1 * z
        out, _ = rnnkit.Recurrent(cell, backend=backend, batch_first=False)(
            torch.randn(5, batch, 3))
        out.pow(2).sum().backward()
        return z.grad

    assert_close(gradient("fused"), gradient("reference"), grad=True)


@requires_fused
def test_relu_keeps_a_nan_as_torch_does():
    """The fused ReLU (a > 0 ? a : 0) turned NaN into 0, hiding a diverging input; the
    reference backend and torch.nn pass it on. Oracle: torch.nn.RNN, and the cell's own step
    for the stepper."""
    from rnnkit.backends.fused import FusedStepper

    torch.manual_seed(1)
    x = torch.randn(4, 2, 3)
    x[1, 0, 0] = float("nan")
    layer = rnnkit.RNN(3, 5, nonlinearity="relu", backend="fused")
    oracle = torch.nn.RNN(3, 5, nonlinearity="relu")
    oracle.load_state_dict(layer.state_dict())
    with torch.no_grad():
        got, expected = layer(x)[0], oracle(x)[0]
    assert torch.equal(got.isnan(), expected.isnan()) and got.isnan().any()
    assert_close(got.nan_to_num(), expected.nan_to_num())
    cell = rnnkit.RNNCell(3, 5, nonlinearity="relu")
    x_t = torch.full((2, 3), float("nan"))
    with torch.no_grad():
        assert FusedStepper(cell, batch_size=2).step(x_t).isnan().all() and cell(x_t).isnan().all()


@requires_fused
def test_infinities_become_nan_where_torch_nn_s_do():
    """float32 sigmoid(-inf) was ~6e-39 instead of 0: a GRU with an infinite state gave finite
    outputs where torch.nn gives NaN, and an LSTM's weight gradients +-inf where torch.nn's are
    NaN, hiding a diverged run. Oracle: torch.nn's NaN and infinity patterns."""
    torch.manual_seed(0)
    gru, gru_oracle = rnnkit.GRU(5, 17, backend="fused"), torch.nn.GRU(5, 17)
    gru_oracle.load_state_dict(gru.state_dict())
    x, h0 = torch.randn(3, 2, 5), torch.zeros(1, 2, 17)
    h0[0, 0, 1] = float("inf")
    with torch.no_grad():
        got, expected = gru(x, h0)[0], gru_oracle(x, h0)[0]
    assert expected.isnan().any() and torch.equal(got.isnan(), expected.isnan())
    lstm, lstm_oracle = rnnkit.LSTM(5, 17, backend="fused"), torch.nn.LSTM(5, 17)
    lstm_oracle.load_state_dict(lstm.state_dict())
    x = torch.randn(3, 2, 5)
    x[1, 0, 2] = -float("inf")
    patterns = []
    for layer in (lstm, lstm_oracle):
        grad = torch.autograd.grad(layer(x)[0].sum(), layer.weight_ih_l0)[0]
        patterns.append((grad.isnan(), grad.isinf()))
    assert patterns[1][0].any()
    assert all(torch.equal(a, b) for a, b in zip(*patterns))


@requires_fused
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_passes_the_gradient_of_a_nan_output_on_as_torch_does(threads):
    """torch's ReLU backward zeroes the gradient where the output is <= 0, so a NaN output
    passes its gradient on; the fused backward tested y > 0 and zeroed it, hiding where a
    diverging run's NaN came from. Oracle: torch.nn.RNN's gradients, NaN pattern included."""
    torch.manual_seed(2)
    x = torch.randn(6, 3, 4)
    x[2, 1, 0] = float("nan")

    def gradients(layer):
        inputs = x.clone().requires_grad_()
        layer(inputs)[0].sum().backward()
        return [inputs.grad] + [p.grad for p in layer.parameters()]

    layer = rnnkit.RNN(4, 7, nonlinearity="relu", backend="fused")
    oracle = torch.nn.RNN(4, 7, nonlinearity="relu")
    oracle.load_state_dict(layer.state_dict())
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got, expected = gradients(layer), gradients(oracle)
    finally:
        torch.set_num_threads(previous)
    for g, e in zip(got, expected):
        assert torch.equal(g.isnan(), e.isnan())
        assert_close(g.nan_to_num(), e.nan_to_num(), grad=True)
    with torch.no_grad():
        assert oracle(x)[0].isnan().any()  # the case under test: some outputs are NaN


@requires_fused
def test_project_input_takes_one_unbatched_row():
    """(..., I) includes (I,): float32 on the fused kernels raised "at least 2 dims". Oracle:
    the reference backend."""
    cell = rnnkit.GRUCell(4, 3)
    x = torch.randn(4)
    expected = rnnkit.backends.project_input(cell, x, backend="reference")
    assert expected.shape == (9,)
    assert_close(rnnkit.backends.project_input(cell, x, backend="fused"), expected)


@requires_fused
@pytest.mark.parametrize("op", ["linear", "matmul"])
def test_dense_products_have_second_derivatives(op):
    """rnnkit::linear and rnnkit::matmul are products of differentiable products: float64
    gradgradcheck through both (their backward skips the autograd layer only when no graph is
    being recorded)."""
    torch.manual_seed(9)
    a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    if op == "linear":
        function, inputs = torch.ops.rnnkit.linear, (a, weight, bias)
    else:
        function, inputs = torch.ops.rnnkit.matmul, (a, weight.t().detach().requires_grad_())
    assert torch.autograd.gradgradcheck(function, inputs)


@pytest.fixture(params=["packed", "mkl"])
def dense_engine(request):
    """Each dense engine in turn (the host rule picks one; both must be right everywhere)."""
    from rnnkit.backends import fused

    fused.set_dense_engine(request.param)
    yield request.param
    fused.set_dense_engine("auto")


@requires_fused
def test_dense_engine_setting_and_host_rule():
    """set_dense_engine switches and "auto" returns to the host rule, which must match what
    /proc/cpuinfo and torch say: mkl exactly on an Intel CPU with AVX-512 and a torch with MKL."""
    from rnnkit.backends import fused

    try:
        for name in ("packed", "mkl"):
            fused.set_dense_engine(name)
            assert fused.dense_engine() == name
        fused.set_dense_engine("auto")
        assert fused.dense_engine() == fused.host_dense_engine()
        with pytest.raises(ValueError, match="unknown dense engine 'fast'"):
            fused.set_dense_engine("fast")
        with pytest.raises(RuntimeError, match="unknown dense engine"):
            torch.ops.rnnkit.set_dense_engine("fast")
    finally:
        fused.set_dense_engine("auto")
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the host rule is checked against /proc/cpuinfo, which this OS lacks")
    cpuinfo = open("/proc/cpuinfo").read()
    intel = "GenuineIntel" in cpuinfo
    avx512 = any(line.startswith("flags") and " avx512f " in f"{line} "
                 for line in cpuinfo.splitlines())
    expected = "mkl" if intel and avx512 and torch.backends.mkl.is_available() else "packed"
    assert fused.host_dense_engine() == expected


@requires_fused
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows, features, outputs",
                         [(37, 19, 23), (100, 32, 128), (700, 70, 130), (300, 300, 45),
                          (100, 130, 520)],
                         ids=["small-at::mm", "small-full-panels", "large-packed", "packed-deep",
                              "weight-over-rows"])
def test_dense_ops_match_torch_and_pass_opcheck(dtype, rows, features, outputs, dense_engine):
    """rnnkit::linear / rnnkit::matmul against torch, with opcheck, under each dense engine.
    With "packed": small products go to at::mm, larger ones (>= 1M multiply-adds, or >= 64k
    whose result columns fill whole panels: small-full-panels, 410k, and its gradients with 32
    and 128 columns) to the packed GEMM, weight gradients to oneDNN/at::mm. packed-deep: more
    than one depth block (K > 128),
    so the bias starts only the first and the later ones accumulate, and a partial last panel.
    weight-over-rows: a weight with more values than x (an input projection at B = 1), packed
    below 16M multiply-adds, with a partial last panel. With "mkl" all go to at::mm except the
    projection of large-packed (70 inputs, a weight no larger than x)."""
    torch.manual_seed(8)
    x = torch.randn(rows, features, dtype=dtype, requires_grad=True)
    weight = torch.randn(outputs, features, dtype=dtype, requires_grad=True)
    bias = torch.randn(outputs, dtype=dtype, requires_grad=True)
    _assert_linear_matches_torch(x, weight, bias)
    torch.library.opcheck(torch.ops.rnnkit.linear, (x, weight, None))
    torch.library.opcheck(torch.ops.rnnkit.matmul, (x, weight.t()))


def _assert_linear_matches_torch(x, weight, bias):
    """rnnkit::linear against torch's linear: output (shape, not a view), every gradient, and
    opcheck."""
    ours = torch.ops.rnnkit.linear(x, weight, bias)
    expected = torch.nn.functional.linear(x, weight, bias)
    assert ours.shape == expected.shape and ours._base is None
    assert_close(ours, expected)
    grad = torch.randn_like(expected)
    for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), grad),
                    torch.autograd.grad(expected, (x, weight, bias), grad)):
        assert_close(a, b, grad=True)
    torch.library.opcheck(torch.ops.rnnkit.linear, (x, weight, bias))


@requires_fused
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("steps, batch", [(5, 3), (100, 16)], ids=["at::mm", "packed"])
def test_linear_takes_leading_dims(dtype, layout, steps, batch):
    """rnnkit::linear on (T, B, I), as a layer's projection calls it, flattening below autograd:
    the same values and gradients as torch's linear on the same 3-D tensor, also for a
    transposed (batch-first) view whose rows are not contiguous; opcheck on both."""
    torch.manual_seed(10)
    x = torch.randn(steps, batch, 70, dtype=dtype)
    if layout == "transposed":
        x = x.transpose(0, 1)
    x.requires_grad_(True)
    weight = torch.randn(130, 70, dtype=dtype, requires_grad=True)
    bias = torch.randn(130, dtype=dtype, requires_grad=True)
    _assert_linear_matches_torch(x, weight, bias)


@requires_fused
@pytest.mark.parametrize("kind", ["lstm", "lstm_proj", "gru", "rnn_tanh"])
def test_fused_equals_reference_under_each_dense_engine(kind, dense_engine):
    """Large enough (160 rows x 96 units: >= 1M multiply-adds each, even for the Elman cell)
    that the projection, its input gradient and the weight gradients inside each cell's backward
    all take the engine's path, not the small-product fallback."""
    torch.manual_seed(9)
    reference = KINDS[kind](96, 96, backend="reference")
    fused = KINDS[kind](96, 96, backend="fused")
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(20, 8, 96, requires_grad=True)
    values_ref, grads_ref = _loss_and_grads(reference, x, None, None)
    values_fused, grads_fused = _loss_and_grads(fused, x, None, None)
    for a, b in zip(values_fused, values_ref):
        assert_close(a, b)
    for a, b in zip(grads_fused, grads_ref):
        assert_close(a, b, grad=True)


# The float32 activations (csrc/activations.h) against float64 torch, read from the activated
# gates an LSTM forward saves: with W_hh = 0 and a zero state they are sigmoid and tanh of
# gates_x itself (i, f, o: sigmoid; g: tanh). Bounds: a few float32 ulps at 1 (the kernels'
# exp is a degree-5 polynomial; measured 1.4e-7 and 2.7e-7 with AVX-512). NaN propagates,
# +-inf saturate. A script, so that the builds for other targets run it too.
_ACTIVATIONS_CHECK = textwrap.dedent("""
    import torch
    def check_float32_activations():
        values = torch.cat([torch.linspace(-30, 30, 100_000),
                            torch.tensor([float("inf"), -float("inf"), float("nan"), -88.5, 88.5,
                                          -200.0, 0.0, 1e-30])])
        H = 16
        values = torch.cat([values, values[: (-values.numel()) % H]]).view(-1, H)
        gates_x = values.repeat(1, 4).unsqueeze(0).contiguous()
        zeros = torch.zeros(values.size(0), H)
        gates = torch.ops.rnnkit.lstm_forward(gates_x, zeros, zeros, torch.zeros(4 * H, H), None,
                                              None, None, False, True, False)[3][0].double()
        exact = values.double()
        for ours, expected, bound in ((gates[:, :H], exact.sigmoid(), 2.5e-7),
                                      (gates[:, 2 * H:3 * H], exact.tanh(), 4e-7)):
            assert torch.equal(ours.isnan(), expected.isnan())
            error = (ours - expected).nan_to_num().abs().max().item()
            assert error <= bound, (error, bound)
            # exact at -inf: sigmoid(-inf) was 1 / (1 + e^88) ~ 6e-39, not 0, so 0 * inf
            # downstream gave a number where torch gives NaN
            minus_inf = values == -float("inf")
            assert torch.equal(ours[minus_inf], expected[minus_inf]), ours[minus_inf]
            # exactly 1 where the float32 result is 1: the AVX2 reciprocal gave 1 - 6e-8 there,
            # so a saturated gate's derivative s (1 - s) was not 0 and an infinite input gave
            # inf gradients where torch.nn's are NaN
            saturated = expected.float() == 1
            assert bool((ours[saturated] == 1).all()), ours[saturated].min().item()
""")
exec(_ACTIVATIONS_CHECK)


@requires_fused
def test_float32_activations_are_accurate():
    """Native build: see _ACTIVATIONS_CHECK."""
    check_float32_activations()  # noqa: F821 (defined by the exec above)


_PORTABLE_SCRIPT = textwrap.dedent("""
    import torch, rnnkit
    from rnnkit.backends import BACKENDS
    assert BACKENDS["fused"].unavailable() is None, BACKENDS["fused"].unavailable()
    import os
    expected = int(os.environ["EXPECTED_SIMD_WIDTH"])
    assert torch.ops.rnnkit.simd_width() == expected, (torch.ops.rnnkit.simd_width(), expected)
    torch.manual_seed(0)
    for make in (rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN):
        for dtype in (torch.float32, torch.float64):
            ref = make(5, 37, num_layers=2, bidirectional=True, backend="reference", dtype=dtype)
            fused = make(5, 37, num_layers=2, bidirectional=True, backend="fused", dtype=dtype)
            fused.load_state_dict(ref.state_dict())
            # 8 rows with lengths; then one row, whose products are the GEMV (its panel
            # order alternates from step to step: 4 H = 148 columns span several groups)
            for batch, lengths in ((8, torch.tensor([6, 1, 3, 6, 2, 5, 4, 6])), (1, None)):
                x = torch.randn(6, batch, 5, dtype=dtype, requires_grad=True)
                results = []
                for model in (ref, fused):
                    out, _ = model(x, lengths=lengths)
                    grads = torch.autograd.grad((out * out).sum(), [x, *model.parameters()])
                    results.append((out, *grads))
                tol = 1e-4 if dtype == torch.float32 else 1e-10
                for a, b in zip(*results):
                    assert torch.allclose(a, b, atol=tol, rtol=tol), (make.__name__, dtype, batch)
""") + _ACTIVATIONS_CHECK + textwrap.dedent("""
    check_float32_activations()
    print("build ok")
""")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="x86-64-v2/v3 are x86 targets; other CPUs always build portable")
@pytest.mark.parametrize("arch, simd_width", [("x86-64-v3", 256), ("x86-64-v2", 0)],
                         ids=["avx2", "portable"])
def test_kernels_of_each_build_target(tmp_path, arch, simd_width):
    """The kernels other CPUs get (AVX2 + FMA without AVX-512; the portable loops without AVX2),
    built for that target in a subprocess and checked against the reference backend."""
    environment = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path),
                   "RNNKIT_FUSED_ARCH": arch, "EXPECTED_SIMD_WIDTH": str(simd_width)}
    environment.pop("RNNKIT_DISABLE_FUSED", None)
    result = subprocess.run([sys.executable, "-c", _PORTABLE_SCRIPT], env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "build ok" in result.stdout
