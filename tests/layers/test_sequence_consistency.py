"""Consistency of rnnkit's layers over time: step by step, in chunks, per sequence, both directions.

Each test compares a layer with an independent computation of the same function: the sequence fed
one step (or one chunk) at a time with the state carried, two one-directional layers run on the
sequence and on the flipped sequence, each sequence of a padded batch run alone, residual stacks
computed by hand, and torch.nn for dropout.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit import Bidirectional, BidirectionalState, Recurrent, Stacked
from tolerances import assert_close, assert_grad_close

pytestmark = pytest.mark.usefixtures("single_thread")

DTYPE = torch.float64
INPUT, HIDDEN, PROJ = 3, 4, 2
STEPS, BATCH = 6, 3
LENGTHS = [4, STEPS, 1]
CHUNKS = [2, 1, 3]  # uneven, sums to STEPS

PRESETS = {
    "rnn_tanh": lambda **kw: rnnkit.RNN(INPUT, HIDDEN, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: rnnkit.RNN(INPUT, HIDDEN, nonlinearity="relu", **kw),
    "lstm": lambda **kw: rnnkit.LSTM(INPUT, HIDDEN, **kw),
    "lstm_proj": lambda **kw: rnnkit.LSTM(INPUT, HIDDEN, proj_size=PROJ, **kw),
    "gru": lambda **kw: rnnkit.GRU(INPUT, HIDDEN, **kw),
}

CELLS = {
    "rnn_tanh": lambda i, h=HIDDEN: rnnkit.RNNCell(i, h, nonlinearity="tanh", dtype=DTYPE),
    "rnn_relu": lambda i, h=HIDDEN: rnnkit.RNNCell(i, h, nonlinearity="relu", dtype=DTYPE),
    "lstm": lambda i, h=HIDDEN: rnnkit.LSTMCell(i, h, dtype=DTYPE),
    "lstm_proj": lambda i, h=HIDDEN: rnnkit.LSTMCell(i, h, dtype=DTYPE, proj_size=PROJ),
    "gru": lambda i, h=HIDDEN: rnnkit.GRUCell(i, h, dtype=DTYPE),
}


# -- helpers ----------------------------------------------------------------------------------
def randn(*shape):
    return torch.randn(*shape, dtype=DTYPE)


def time_axis(batch_first: bool) -> int:
    return 1 if batch_first else 0


def sequence_input(batch_first: bool, batch=BATCH, steps=STEPS, features=INPUT):
    return randn(batch, steps, features) if batch_first else randn(steps, batch, features)


def torch_hx(kind, num_layers, batch, directions=1):
    """Random torch-style hx for a preset, or its pieces as a list."""
    out = PROJ if kind == "lstm_proj" else HIDDEN
    h = randn(num_layers * directions, batch, out)
    if kind.startswith("lstm"):
        return (h, randn(num_layers * directions, batch, HIDDEN))
    return h


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def assert_states_close(actual, expected, what="state"):
    """Compare nested states (NamedTuples, BidirectionalState, lists, tensors) field by field."""
    if isinstance(expected, torch.Tensor):
        assert_close(actual, expected, DTYPE, what=what)
        return
    assert type(actual) is type(expected) or (
        isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple))), what
    assert len(actual) == len(expected), what
    names = getattr(expected, "_fields", None) or [str(i) for i in range(len(expected))]
    for name, a, e in zip(names, actual, expected):
        assert_states_close(a, e, f"{what}.{name}")


def select_batch(state, index: int, batch_dim: int):
    """The slice ``index:index+1`` along ``batch_dim`` of every tensor in a nested state."""
    if isinstance(state, torch.Tensor):
        return state.narrow(batch_dim, index, 1)
    items = [select_batch(s, index, batch_dim) for s in state]
    if hasattr(state, "_fields"):
        return type(state)(*items)
    return type(state)(items)


# -- (a) step by step equals the whole sequence ----------------------------------------------
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("kind", list(PRESETS))
def test_preset_step_by_step_equals_whole_sequence(kind, num_layers, batch_first, with_hx, backend):
    torch.manual_seed(0)
    module = PRESETS[kind](num_layers=num_layers, batch_first=batch_first, dtype=DTYPE,
                           backend=backend)
    x = sequence_input(batch_first)
    hx0 = torch_hx(kind, num_layers, BATCH) if with_hx else None
    whole_out, whole_state = module(x, hx0)

    axis = time_axis(batch_first)
    hx, outputs = hx0, []
    for t in range(STEPS):
        out, hx = module(x.narrow(axis, t, 1), hx)
        outputs.append(out)
    assert_close(torch.cat(outputs, dim=axis), whole_out, DTYPE, what="stepwise output")
    for a, e in zip(as_tuple(hx), as_tuple(whole_state)):
        assert_close(a, e, DTYPE, what="stepwise final state")


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_loop_equals_recurrent(kind, batch_first, reverse, backend):
    """``cell(x_t, hx)`` looped over time (torch.nn cell contract) == Recurrent(cell) at once."""
    torch.manual_seed(1)
    cell = CELLS[kind](INPUT)
    x = sequence_input(batch_first)
    state0 = cell.state_type(*(randn(BATCH, w) for w in cell.state_sizes().values()))
    layer = Recurrent(cell, batch_first=batch_first, reverse=reverse,
                      backend=backend)
    out, final = layer(x, state0)

    axis = time_axis(batch_first)
    hx = state0.h if len(state0) == 1 else tuple(state0)
    outputs = [None] * STEPS
    for t in (reversed(range(STEPS)) if reverse else range(STEPS)):
        hx = cell(x.select(axis, t), hx)
        outputs[t] = hx if isinstance(hx, torch.Tensor) else hx[0]
    assert out.shape == (*x.shape[:2], cell.output_size)
    assert_close(out, torch.stack(outputs, dim=axis), DTYPE, what="output")
    assert isinstance(final, cell.state_type)
    for a, e in zip(final, as_tuple(hx)):
        assert_close(a, e, DTYPE, what="final state")


# -- (b) chunks with the state carried equal the whole sequence -------------------------------
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind", list(PRESETS))
def test_preset_chunks_equal_whole_sequence(kind, batch_first, backend):
    torch.manual_seed(2)
    module = PRESETS[kind](num_layers=2, batch_first=batch_first, dtype=DTYPE, backend=backend)
    x = sequence_input(batch_first).requires_grad_()
    whole_out, whole_state = module(x)

    axis, start, hx, outputs = time_axis(batch_first), 0, None, []
    for size in CHUNKS:
        out, hx = module(x.narrow(axis, start, size), hx)
        outputs.append(out)
        start += size
    chunked_out = torch.cat(outputs, dim=axis)
    assert_close(chunked_out, whole_out, DTYPE, what="chunked output")
    for a, e in zip(as_tuple(hx), as_tuple(whole_state)):
        assert_close(a, e, DTYPE, what="chunked final state")
    # Gradients flow through the carried state exactly as through the whole sequence.
    weights = randn(*whole_out.shape)
    (grad_whole,) = torch.autograd.grad((whole_out * weights).sum(), x)
    (grad_chunked,) = torch.autograd.grad((chunked_out * weights).sum(), x)
    assert_grad_close(grad_chunked, grad_whole, DTYPE, what="grad of input")


def _mixed_stack(batch_first, backend, residual=False, dropout=0.0):
    """A Stacked of different cell families, widths kept equal above layer 0 for residual."""
    layers = [
        Recurrent(CELLS["lstm"](INPUT), batch_first=batch_first, backend=backend),
        Recurrent(CELLS["gru"](HIDDEN), batch_first=batch_first, backend=backend),
        Bidirectional(CELLS["rnn_tanh"](HIDDEN), CELLS["rnn_tanh"](HIDDEN), merge="sum",
                      batch_first=batch_first, backend=backend),
        Recurrent(CELLS["rnn_relu"](HIDDEN), batch_first=batch_first, backend=backend),
    ]
    return Stacked(layers, residual=residual, dropout=dropout)


def _unidirectional_stack(batch_first, residual, backend):
    layers = [Recurrent(CELLS["lstm_proj"](INPUT), batch_first=batch_first, backend=backend),
              Recurrent(CELLS["gru"](PROJ, PROJ), batch_first=batch_first, backend=backend),
              Recurrent(CELLS["rnn_tanh"](PROJ, PROJ), batch_first=batch_first, backend=backend)]
    return Stacked(layers, residual=residual)


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
def test_stacked_chunks_equal_whole_sequence(batch_first, residual, backend):
    torch.manual_seed(3)
    stack = _unidirectional_stack(batch_first, residual, backend)
    x = sequence_input(batch_first)
    states0 = [layer.cell.state_type(*(randn(BATCH, w) for w in layer.cell.state_sizes().values()))
               for layer in stack.layers]
    whole_out, whole_states = stack(x, states0)
    assert len(whole_states) == 3

    axis, start, states, outputs = time_axis(batch_first), 0, states0, []
    for size in CHUNKS:
        out, states = stack(x.narrow(axis, start, size), states)
        outputs.append(out)
        start += size
    assert_close(torch.cat(outputs, dim=axis), whole_out, DTYPE, what="chunked output")
    assert_states_close(states, whole_states, "chunked states")


# -- (c) Bidirectional against two independent one-directional layers -----------------------
def _merge(out_f, out_b, mode):
    return {"concat": lambda: torch.cat((out_f, out_b), -1), "sum": lambda: out_f + out_b,
            "mean": lambda: (out_f + out_b) / 2, "mul": lambda: out_f * out_b}[mode]()


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "state"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "lstm_proj"])
@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "mul"])
def test_bidirectional_merge_modes(merge, kind, batch_first, with_state, backend):
    torch.manual_seed(4)
    cell_f, cell_b = CELLS[kind](INPUT), CELLS[kind](INPUT)
    bi = Bidirectional(cell_f, cell_b, merge=merge, batch_first=batch_first, backend=backend)
    x = sequence_input(batch_first)
    state = None
    if with_state:
        state = BidirectionalState(*(
            cell.state_type(*(randn(BATCH, w) for w in cell.state_sizes().values()))
            for cell in (cell_f, cell_b)))
    out, final = bi(x, state)

    axis = time_axis(batch_first)
    # Independent: one forward Recurrent on x, one forward Recurrent on x flipped in time.
    fwd = Recurrent(cell_f, batch_first=batch_first, backend=backend)
    bwd_on_flipped = Recurrent(cell_b, batch_first=batch_first, backend=backend)
    out_f, final_f = fwd(x, None if state is None else state.forward)
    flipped_out_b, final_b = bwd_on_flipped(x.flip(axis), None if state is None else state.backward)
    out_b = flipped_out_b.flip(axis)

    width = cell_f.output_size * (2 if merge == "concat" else 1)
    assert out.shape == (*x.shape[:2], width) and bi.output_size == width
    assert_close(out, _merge(out_f, out_b, merge), DTYPE, what=f"merge={merge} output")
    assert isinstance(final, BidirectionalState)
    assert_states_close(final.forward, final_f, "final.forward")
    assert_states_close(final.backward, final_b, "final.backward")


def test_a_merge_mode_set_after_construction_is_checked_when_it_runs():
    """merge = "avg" set on the layer ran as "mul" without a word (probe, 2026-12-08).
    Oracle: a mode the constructor takes, set the same way, gives that mode's output."""
    torch.manual_seed(4)
    bi = Bidirectional(CELLS["gru"](INPUT), CELLS["gru"](INPUT))
    x = sequence_input(True)
    bi.merge = "sum"
    summed, _ = bi(x)
    bi.merge = "concat"
    both, _ = bi(x)
    half = both.size(-1) // 2
    assert_close(summed, both[..., :half] + both[..., half:], DTYPE, what="sum set later")
    bi.merge = "avg"
    with pytest.raises(ValueError, match=r"merge must be one of \('concat', 'sum', 'mean', "
                                         r"'mul'\); got 'avg'"):
        bi(x)


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("merge", ["concat", "mul"])
def test_bidirectional_lengths_equal_each_sequence_alone(merge, kind, batch_first, backend):
    """With lengths, each sequence of the padded batch == that sequence alone (unpadded); the
    backward direction equals a forward Recurrent on the sequence reversed within its length."""
    torch.manual_seed(5)
    cell_f, cell_b = CELLS[kind](INPUT), CELLS[kind](INPUT)
    bi = Bidirectional(cell_f, cell_b, merge=merge, batch_first=batch_first, backend=backend)
    x = sequence_input(batch_first)  # the padding holds random values, which must not matter
    out, final = bi(x, lengths=torch.tensor(LENGTHS))
    axis, batch_axis = time_axis(batch_first), 1 - time_axis(batch_first)
    flipped_bwd = Recurrent(cell_b, batch_first=batch_first, backend=backend)
    width = cell_f.output_size
    for b, length in enumerate(LENGTHS):
        seq = x.narrow(batch_axis, b, 1).narrow(axis, 0, length)
        out_alone, final_alone = bi(seq)
        out_b = out.narrow(batch_axis, b, 1)
        assert_close(out_b.narrow(axis, 0, length), out_alone, DTYPE, what=f"sequence {b} output")
        tail = out_b.narrow(axis, length, STEPS - length)
        assert torch.equal(tail, torch.zeros_like(tail)), f"sequence {b} output past its length"
        assert_states_close(select_batch(final, b, 0), final_alone, f"sequence {b} final")
        if merge == "concat":
            rev_out, rev_final = flipped_bwd(seq.flip(axis))
            assert_close(out_b.narrow(axis, 0, length)[..., width:], rev_out.flip(axis), DTYPE,
                         what=f"sequence {b} backward direction")
            assert_states_close(select_batch(final.backward, b, 0), rev_final,
                                f"sequence {b} backward final")


@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(PRESETS))
def test_preset_lengths_equal_each_sequence_alone(kind, bidirectional, batch_first, with_hx, backend):
    torch.manual_seed(6)
    module = PRESETS[kind](num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
                           dtype=DTYPE, backend=backend)
    x = sequence_input(batch_first)
    hx = torch_hx(kind, 2, BATCH, 2 if bidirectional else 1) if with_hx else None
    out, state = module(x, hx, lengths=torch.tensor(LENGTHS))
    axis, batch_axis = time_axis(batch_first), 1 - time_axis(batch_first)
    for b, length in enumerate(LENGTHS):
        seq = x.narrow(batch_axis, b, 1).narrow(axis, 0, length)
        hx_b = None if hx is None else select_batch(hx, b, 1)
        out_alone, state_alone = module(seq, hx_b)
        out_b = out.narrow(batch_axis, b, 1)
        assert_close(out_b.narrow(axis, 0, length), out_alone, DTYPE, what=f"sequence {b} output")
        tail = out_b.narrow(axis, length, STEPS - length)
        assert torch.equal(tail, torch.zeros_like(tail))
        for a, e in zip(as_tuple(select_batch(state, b, 1)), as_tuple(state_alone)):
            assert_close(a, e, DTYPE, what=f"sequence {b} final state")


# -- (d) residual stacks and dropout -----------------------------------------------------------
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
def test_stacked_residual_equals_manual(batch_first, with_lengths, backend):
    torch.manual_seed(7)
    # input width == hidden width, so a wrongly added skip on layer 0 would be caught too.
    layers = [Recurrent(CELLS["lstm"](HIDDEN), batch_first=batch_first, backend=backend),
              Recurrent(CELLS["gru"](HIDDEN), batch_first=batch_first, backend=backend),
              Bidirectional(CELLS["rnn_tanh"](HIDDEN), CELLS["rnn_tanh"](HIDDEN), merge="sum",
                            batch_first=batch_first, backend=backend),
              Recurrent(CELLS["rnn_relu"](HIDDEN), batch_first=batch_first, backend=backend)]
    stack = Stacked(layers, residual=True)
    x = sequence_input(batch_first, features=HIDDEN)
    lengths = torch.tensor(LENGTHS) if with_lengths else None
    out, finals = stack(x, lengths=lengths)

    h, expected_finals = x, []
    for index, layer in enumerate(layers):
        layer_out, layer_final = layer(h, lengths=lengths)
        h = layer_out + h if index > 0 else layer_out
        expected_finals.append(layer_final)
    assert_close(out, h, DTYPE, what="residual output")
    assert_states_close(finals, expected_finals, "residual finals")
    # And not the plain stack: the skips really are there.
    plain_out, _ = Stacked(layers)(x, lengths=lengths)
    assert not torch.allclose(plain_out, out)
    if with_lengths:
        axis, batch_axis = time_axis(batch_first), 1 - time_axis(batch_first)
        for b, length in enumerate(LENGTHS):
            tail = out.narrow(batch_axis, b, 1).narrow(axis, length, STEPS - length)
            assert torch.equal(tail, torch.zeros_like(tail)), f"sequence {b} past its length"


TORCH_PRESETS = {"lstm": (nn.LSTM, rnnkit.LSTM), "gru": (nn.GRU, rnnkit.GRU),
                 "rnn_tanh": (nn.RNN, rnnkit.RNN)}


def _dropout_pair(kind, dropout, bidirectional, backend, num_layers=3):
    torch_cls, rnnkit_cls = TORCH_PRESETS[kind]
    kwargs = dict(num_layers=num_layers, dropout=dropout, bidirectional=bidirectional, dtype=DTYPE)
    torch_module = torch_cls(INPUT, HIDDEN, **kwargs)
    rnnkit_module = rnnkit_cls(INPUT, HIDDEN, **kwargs, backend=backend)
    rnnkit_module.load_state_dict(torch_module.state_dict())
    return torch_module, rnnkit_module


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(TORCH_PRESETS))
def test_dropout_has_no_effect_in_eval(kind, bidirectional, backend):
    torch.manual_seed(8)
    torch_module, rnnkit_module = _dropout_pair(kind, 0.5, bidirectional, backend)
    _, no_dropout = _dropout_pair(kind, 0.0, bidirectional, backend)
    no_dropout.load_state_dict(torch_module.state_dict())
    torch_module.eval(), rnnkit_module.eval()
    x = randn(STEPS, BATCH, INPUT)
    out, state = rnnkit_module(x)
    out_ref, state_ref = no_dropout.train()(x)  # dropout=0: train mode is deterministic
    out_torch, state_torch = torch_module(x)
    assert_close(out, out_ref, DTYPE, what="eval vs dropout=0")
    assert_close(out, out_torch, DTYPE, what="eval vs torch.nn eval")
    for a, e in zip(as_tuple(state), as_tuple(state_torch)):
        assert_close(a, e, DTYPE, what="eval final state")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(TORCH_PRESETS))
def test_dropout_in_training(kind, bidirectional, backend):
    torch.manual_seed(9)
    torch_module, rnnkit_module = _dropout_pair(kind, 0.5, bidirectional, backend)
    x = randn(STEPS, BATCH, INPUT)
    eval_out, _ = rnnkit_module.eval()(x)
    rnnkit_module.train()
    torch.manual_seed(123)
    out_1, state_1 = rnnkit_module(x)
    torch.manual_seed(123)
    out_2, _ = rnnkit_module(x)
    torch.manual_seed(124)
    out_3, _ = rnnkit_module(x)
    assert torch.equal(out_1, out_2), "same seed, same dropout masks"
    assert not torch.allclose(out_1, eval_out), "dropout is active in training"
    assert not torch.allclose(out_1, out_3), "another seed, other masks"
    # On CPU, torch.nn draws its inter-layer dropout masks with the same op in the same order,
    # so with the same seed it computes exactly the same thing.
    torch.manual_seed(123)
    out_torch, state_torch = torch_module.train()(x)
    assert_close(out_1, out_torch, DTYPE, what="train-mode output vs torch.nn")
    for a, e in zip(as_tuple(state_1), as_tuple(state_torch)):
        assert_close(a, e, DTYPE, what="train-mode final state vs torch.nn")


@pytest.mark.parametrize("kind", list(TORCH_PRESETS))
def test_dropout_one_zeroes_inputs_of_upper_layers(kind, backend):
    """dropout=1.0 in training: every layer above the first sees zeros, so the output is the top
    layer run on a zero input (computed with a separate one-layer torch.nn module)."""
    torch.manual_seed(10)
    num_layers = 3
    torch_module, rnnkit_module = _dropout_pair(kind, 1.0, False, backend, num_layers)
    x = randn(STEPS, BATCH, INPUT)
    out, state = rnnkit_module.train()(x)

    torch_cls, _ = TORCH_PRESETS[kind]
    top = torch_cls(HIDDEN, HIDDEN, dtype=DTYPE)
    bottom = torch_cls(INPUT, HIDDEN, dtype=DTYPE)
    params = torch_module.state_dict()
    with torch.no_grad():
        for name, p in top.named_parameters():
            p.copy_(params[name.replace("_l0", f"_l{num_layers - 1}")])
        for name, p in bottom.named_parameters():
            p.copy_(params[name])
    top_out, top_state = top(torch.zeros(STEPS, BATCH, HIDDEN, dtype=DTYPE))
    _, bottom_state = bottom(x)
    assert_close(out, top_out, DTYPE, what="output with dropout=1")
    for a, top_s, bottom_s in zip(as_tuple(state), as_tuple(top_state), as_tuple(bottom_state)):
        assert_close(a[-1:], top_s, DTYPE, what="top layer's final state")
        assert_close(a[:1], bottom_s, DTYPE, what="bottom layer's final state (no dropout below)")


def test_stacked_dropout_eval_and_train(backend):
    torch.manual_seed(11)
    stack = _mixed_stack(True, backend, dropout=0.4)
    x = sequence_input(True)
    stack.eval()
    eval_out, eval_finals = stack(x)
    # Eval: equal to a manual pass through the layers with no dropout at all.
    h, manual_finals = x, []
    for layer in stack.layers:
        h, final = layer(h)
        manual_finals.append(final)
    assert_close(eval_out, h, DTYPE, what="eval output")
    assert_states_close(eval_finals, manual_finals, "eval finals")
    # Train: the same seed gives the same masks; dropout is active; the first layer never sees
    # dropout (its final state equals the eval one).
    stack.train()
    torch.manual_seed(5)
    out_1, finals_1 = stack(x)
    torch.manual_seed(5)
    out_2, _ = stack(x)
    assert torch.equal(out_1, out_2)
    assert not torch.allclose(out_1, eval_out)
    assert_states_close(finals_1[0], eval_finals[0], "layer 0 final (no dropout on the input)")
    # Train: dropout=1 -> layers above the first see only zeros.
    stack.dropout = 1.0
    out_ones, _ = stack(x)
    top_out, _ = stack.layers[-1](torch.zeros(BATCH, STEPS, HIDDEN, dtype=DTYPE))
    assert_close(out_ones, top_out, DTYPE, what="dropout=1 output")


@pytest.mark.parametrize("torch_masks", [False, True], ids=["rnnkit-masks", "torch-masks"])
def test_stacked_dropout_draws_its_masks_as_configured(torch_masks, backend):
    """Oracle: the same layers run by hand, layer 1's input dropped by the named draw
    (rnnkit's ``dropout`` or ``F.dropout``) from the same seed."""
    from rnnkit.layers.dropout import dropout as rnnkit_dropout

    torch.manual_seed(12)
    stack = _mixed_stack(True, backend, dropout=0.4)
    stack.torch_masks = torch_masks
    x = sequence_input(True)
    torch.manual_seed(6)
    out, _ = stack(x)
    draw = nn.functional.dropout if torch_masks else rnnkit_dropout
    torch.manual_seed(6)
    h, _ = stack.layers[0](x)
    for layer in stack.layers[1:]:
        h, _ = layer(draw(h, 0.4, training=True))
    assert_close(out, h, DTYPE, what=f"stacked output, torch_masks={torch_masks}")


def test_presets_draw_torch_masks_and_stacked_defaults_to_rnnkit_masks():
    assert rnnkit.LSTM(3, 4, num_layers=2, dropout=0.5).stack.torch_masks
    assert not Stacked([Recurrent(rnnkit.GRUCell(3, 4))], dropout=0.5).torch_masks


@pytest.mark.parametrize("form", ["tensor", "numpy"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_lengths_edited_between_forward_and_backward_do_not_reach_backward(kind, form, backend):
    """The fused ops saved the caller's own lengths tensor, so editing it before backward
    failed autograd's version check there, where torch.nn and the reference backend hold no
    reference to it (a NumPy array, edited the same way, is checked too; it did not fail
    before). Oracle: the same call with the lengths left alone."""
    import numpy as np  # a dependency of rnnkit
    layer_type = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[kind]
    torch.manual_seed(0)
    layer = layer_type(3, 4, batch_first=True, backend=backend)
    x = torch.randn(3, 5, 3, requires_grad=True)

    def gradient(edit: bool):
        lengths = torch.tensor([5, 2, 3]) if form == "tensor" else np.array([5, 2, 3])
        out, _ = layer(x, lengths=lengths)
        if edit:
            lengths[1] = 5  # the caller reuses its buffer for the next batch
        return torch.autograd.grad(out.square().sum(), x)[0]

    assert_close(gradient(edit=True), gradient(edit=False), what="input gradient")


@pytest.mark.parametrize("form", ["lengths", "mask"])
def test_lengths_on_the_meta_device_and_under_fake_tensors_give_the_shapes(form):
    """int(lengths.min()) and torch.equal raised on meta lengths ("Tensor.item() cannot be
    called on meta tensors") and on fake tensors outside torch.compile. Oracle: the shapes
    of the same call on real tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    def make(device):
        torch.manual_seed(0)
        layer = rnnkit.GRU(3, 4, batch_first=True, device=device)
        lengths = torch.tensor([5, 2], device=device)
        if form == "mask":
            lengths = torch.arange(5, device=device).unsqueeze(0) < lengths.unsqueeze(1)
        return layer, torch.randn(2, 5, 3, device=device), lengths

    layer, x, lengths = make("cpu")
    out, h = layer(x, lengths=lengths)
    meta_out, meta_h = (lambda m, xx, ll: m(xx, lengths=ll))(*make("meta"))
    assert (meta_out.shape, meta_h.shape) == (out.shape, h.shape)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake_out, fake_h = layer(mode.from_tensor(x), lengths=mode.from_tensor(lengths))
    assert (fake_out.shape, fake_h.shape) == (out.shape, h.shape)


@pytest.mark.parametrize("batch_first", [True, False])
def test_valid_steps_marks_exactly_the_steps_before_each_length(batch_first):
    """The mask of Stacked's residual skips. A mutation to t <= length (one step too many)
    survived every layer test, since the outputs it masks are zero past the length already
    (mutation audit, 2026-12-06). Oracle: an explicit loop."""
    from rnnkit.layers.masking import valid_steps

    lengths, steps = torch.tensor([5, 1, 3, 5]), 5
    expected = torch.tensor([[t < int(length) for t in range(steps)] for length in lengths])
    mask = valid_steps(lengths, steps, batch_first)
    assert torch.equal(mask, expected if batch_first else expected.t())
