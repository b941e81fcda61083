"""Bad input gets a one-line ValueError/TypeError, raised before any computation.

Every case checks four things:

* the exception type;
* ``str(exc)`` is a single, non-empty line;
* the message names the argument and gives what was expected and what came (a specific
  ``match=`` regex);
* the error is raised by rnnkit's own checks (the raising frame is in rnnkit, not deep inside
  torch) and, for forward calls, before any computation: a spy on the input projection, on every
  cell's ``step``, on the ``scan`` the layers call and on every backend's ``run`` records
  nothing.

"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import os
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit import (
    GRU, LSTM, RNN, Bidirectional, BidirectionalState, GRUCell, LSTMCell, Recurrent, RNNCell,
    Stacked,
)
from rnnkit.backends import BACKENDS, backend_names
from rnnkit.cells import RecurrentCell
from rnnkit.layers import MERGE_MODES

I, H, P, B, T = 4, 6, 3, 3, 5  # input size, hidden size, LSTM proj size, batch, time (B != T)
PRESET_TYPES = (RNN, LSTM, GRU)
RNNKIT_DIR = os.path.dirname(os.path.abspath(rnnkit.__file__)) + os.sep
esc = re.escape


# --------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class Subject:
    """A module under test: how to build it (fresh for every test)."""

    id: str
    make: Callable[[], nn.Module]


def params(subjects, **marks):
    return [pytest.param(s, id=s.id, **marks) for s in subjects]


PRESETS = [
    Subject("RNN", lambda: RNN(I, H)),
    Subject("RNN-relu-batch_first", lambda: RNN(I, H, nonlinearity="relu", batch_first=True)),
    Subject("LSTM", lambda: LSTM(I, H)),
    Subject("LSTM-proj-2layer-bidir", lambda: LSTM(I, H, num_layers=2, bidirectional=True,
                                                   proj_size=P)),
    Subject("GRU", lambda: GRU(I, H)),
    Subject("GRU-2layer-bidir-batch_first", lambda: GRU(I, H, num_layers=2, bidirectional=True,
                                                        batch_first=True)),
]

COMPOSABLE = [
    Subject("Recurrent[RNNCell]", lambda: Recurrent(RNNCell(I, H))),
    Subject("Recurrent[LSTMCell]-reverse", lambda: Recurrent(LSTMCell(I, H), reverse=True)),
    Subject("Recurrent[GRUCell]-time_major", lambda: Recurrent(GRUCell(I, H), batch_first=False)),
    Subject("Bidirectional[LSTMCell]", lambda: Bidirectional(LSTMCell(I, H), LSTMCell(I, H))),
    Subject("Bidirectional[GRUCell]-sum-time_major",
            lambda: Bidirectional(GRUCell(I, H), GRUCell(I, H), merge="sum", batch_first=False)),
    Subject("Stacked[Recurrent[GRUCell]x2]",
            lambda: Stacked([Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H))])),
    Subject("Stacked[Bidirectional[LSTMCell],Recurrent[RNNCell]]-residual",
            lambda: Stacked([Bidirectional(LSTMCell(I, H), LSTMCell(I, H)),
                             Recurrent(RNNCell(2 * H, 2 * H))], residual=True)),
]

CELLS = [
    Subject("RNNCell", lambda: RNNCell(I, H)),
    Subject("RNNCell-relu", lambda: RNNCell(I, H, nonlinearity="relu")),
    Subject("LSTMCell", lambda: LSTMCell(I, H)),
    Subject("LSTMCell-proj", lambda: LSTMCell(I, H, proj_size=P)),
    Subject("GRUCell", lambda: GRUCell(I, H)),
]

SEQUENCE_LAYERS = PRESETS + COMPOSABLE
ALL = SEQUENCE_LAYERS + CELLS


def is_preset(module) -> bool:
    return isinstance(module, PRESET_TYPES)


def is_cell(module) -> bool:
    return isinstance(module, RecurrentCell)


def sequence(module, batch=B, steps=T, features=I, dtype=torch.float32, device=None):
    """A valid-looking input for ``module``: (B, T, F) if batch_first else (T, B, F)."""
    shape = (batch, steps, features) if module.batch_first else (steps, batch, features)
    return torch.randn(shape, dtype=dtype, device=device)


def valid_input(module, features=I, dtype=torch.float32, device=None):
    if is_cell(module):
        return torch.randn(B, features, dtype=dtype, device=device)
    return sequence(module, features=features, dtype=dtype, device=device)


def mask_layout(module, mask_bt: torch.Tensor) -> torch.Tensor:
    """A (B, T) mask in the layout ``module`` expects ((T, B) when time-major)."""
    return mask_bt if module.batch_first else mask_bt.t()


def assert_rejects(call, exc_type, pattern, compute=None):
    """``call()`` raises ``exc_type`` matching ``pattern``, in one line, from rnnkit, before
    any computation (when a ``compute`` spy is given)."""
    try:
        with pytest.raises(exc_type, match=pattern) as info:
            call()
    except AssertionError:  # raised, but the message does not match: pytest's own report
        raise
    except Exception as error:  # another exception type, e.g. from deep inside torch
        # pytrace=False: one clear line instead of a (slow to render) traceback through torch
        pytest.fail(f"expected {exc_type.__name__} matching {pattern!r}; got "
                    f"{type(error).__name__}: {error}", pytrace=False)
    message = str(info.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"error message is not one line: {message!r}"
    raised_in = os.path.abspath(str(info.traceback[-1].path))
    assert raised_in.startswith(RNNKIT_DIR), f"raised from {raised_in}, not by rnnkit's checks"
    if compute is not None:
        assert compute.calls == [], f"computation ran before the error: {compute.calls}"
    return info


class ComputeSpy:
    def __init__(self) -> None:
        self.calls: list[str] = []


@pytest.fixture
def compute(monkeypatch) -> ComputeSpy:
    """Records every input projection, cell step, layer-level run and backend run."""
    spy = ComputeSpy()
    recurrent_module = importlib.import_module("rnnkit.layers.recurrent")

    def wrap(label, function):
        def spied(*args, **kwargs):
            spy.calls.append(label)
            return function(*args, **kwargs)
        return spied

    monkeypatch.setattr(recurrent_module, "run_layer", wrap("scan", recurrent_module.run_layer))
    monkeypatch.setattr(RecurrentCell, "project_input",
                        wrap("project_input", RecurrentCell.project_input))
    for cell_type in (RNNCell, LSTMCell, GRUCell):
        monkeypatch.setattr(cell_type, "step", wrap(f"{cell_type.__name__}.step", cell_type.step))
    for name, backend in list(BACKENDS.items()):  # fused backends call neither of the above
        without_grad = backend.run_without_grad
        monkeypatch.setitem(BACKENDS, name, dataclasses.replace(
            backend, run=wrap(f"backend:{name}", backend.run),
            project=wrap("project_input", backend.project),
            run_without_grad=without_grad and wrap(f"backend:{name}", without_grad)))
    return spy


# --------------------------------------------------------------------------------------------
# states: a valid state for each module, and where each of its tensors sits


def state_spec(module, batch=B):
    """(valid state, [(name used in messages, path into the state, expected shape)])."""
    if is_preset(module):
        rows = module.num_layers * (2 if module.bidirectional else 1)
        out = module.proj_size or module.hidden_size
        if isinstance(module, LSTM):
            h, c = torch.zeros(rows, batch, out), torch.zeros(rows, batch, module.hidden_size)
            return (h, c), [("hx[0] (h_0)", (0,), tuple(h.shape)),
                            ("hx[1] (c_0)", (1,), tuple(c.shape))]
        h = torch.zeros(rows, batch, out)
        return h, [("hx", (), tuple(h.shape))]
    if is_cell(module):
        widths = module.state_sizes()
        tensors = [torch.zeros(batch, w) for w in widths.values()]
        if len(tensors) == 1:
            return tensors[0], [("hx", (), (batch, module.hidden_size))]
        return tuple(tensors), [(f"hx[{i}] ({field})", (i,), tuple(t.shape))
                                for i, (field, t) in enumerate(zip(widths, tensors))]
    return _layer_state_spec(module, batch, "states" if isinstance(module, Stacked) else "state")


def _layer_state_spec(layer, batch, name):
    if isinstance(layer, Recurrent):
        cell = layer.cell
        tensors = [torch.zeros(batch, w) for w in cell.state_sizes().values()]
        return cell.state_type(*tensors), [
            (f"{name}.{field}", (i,), tuple(t.shape))
            for i, (field, t) in enumerate(zip(cell.state_type._fields, tensors))
        ]
    if isinstance(layer, Bidirectional):
        forward, forward_fields = _layer_state_spec(layer.forward_layer, batch, f"{name}.forward")
        backward, backward_fields = _layer_state_spec(layer.backward_layer, batch,
                                                      f"{name}.backward")
        return BidirectionalState(forward, backward), (
            [(n, (0,) + p, s) for n, p, s in forward_fields]
            + [(n, (1,) + p, s) for n, p, s in backward_fields]
        )
    assert isinstance(layer, Stacked)
    states, fields = [], []
    for index, sub in enumerate(layer.layers):
        state, sub_fields = _layer_state_spec(sub, batch, f"{name}[{index}]")
        states.append(state)
        fields += [(n, (index,) + p, s) for n, p, s in sub_fields]
    return states, fields


def replace(state, path, value):
    """``state`` with the tensor at ``path`` replaced by ``value``."""
    if not path:
        return value
    items = list(state)
    items[path[0]] = replace(items[path[0]], path[1:], value)
    if hasattr(state, "_fields"):
        return type(state)(*items)
    return tuple(items) if isinstance(state, tuple) else items


def _shape_message(name, expected, bad):
    return rf"^{esc(name)} must have shape {esc(str(expected))}; got {esc(str(tuple(bad.shape)))}$"


# (id, bad value from the expected shape, exception type, regex from (name, expected shape, bad))
STATE_MUTATIONS = [
    ("wrong-width", lambda s: torch.zeros(*s[:-1], s[-1] + 1), ValueError,
     _shape_message),
    ("wrong-leading-dim", lambda s: torch.zeros(s[0] + 1, *s[1:]), ValueError, _shape_message),
    ("wrong-rank", lambda s: torch.zeros(*s[1:]), ValueError, _shape_message),
    ("wrong-dtype", lambda s: torch.zeros(s, dtype=torch.float64), TypeError,
     lambda n, s, bad: rf"^{esc(n)} dtype torch\.float64 does not match input dtype "
                       rf"torch\.float32"),
    ("int-dtype", lambda s: torch.zeros(s, dtype=torch.int64), TypeError,
     lambda n, s, bad: rf"^{esc(n)} dtype torch\.int64 does not match input dtype torch\.float32"),
    # No GPU here: a meta tensor has a shape and dtype but lives on another device.
    ("wrong-device", lambda s: torch.empty(s, device="meta"), ValueError,
     lambda n, s, bad: rf"^{esc(n)} is on meta but input is on cpu\b"),
    ("not-a-tensor", lambda s: torch.zeros(s).tolist(), TypeError,
     lambda n, s, bad: rf"^{esc(n)} must be a tensor; got list$"),
]

STATE_CASES = []
for _subject in ALL:
    _state, _fields = state_spec(_subject.make())
    for _index, (_name, _path, _shape) in enumerate(_fields):
        for _mutation in STATE_MUTATIONS:
            STATE_CASES.append(pytest.param(_subject, _index, _mutation,
                                            id=f"{_subject.id}-{_name}-{_mutation[0]}"))


# --------------------------------------------------------------------------------------------
# the spy and the state specs themselves work


@pytest.mark.parametrize("subject", params(ALL))
def test_valid_call_is_accepted_and_seen_by_the_spy(subject, compute):
    """Guards the other tests: the valid state passes and a valid call shows up in the spy."""
    module = subject.make()
    state, _ = state_spec(module)
    module(valid_input(module), state)
    assert "project_input" in compute.calls
    if is_cell(module):
        assert any(call.endswith(".step") for call in compute.calls)
    else:
        assert "scan" in compute.calls
        assert any(call.startswith("backend:") for call in compute.calls)


# --------------------------------------------------------------------------------------------
# input


@pytest.mark.parametrize("subject", params(ALL))
@pytest.mark.parametrize("value", [[[0.0] * I] * B, 1.5, None], ids=["list", "float", "None"])
def test_input_not_a_tensor(subject, value, compute):
    module = subject.make()
    assert_rejects(lambda: module(value), TypeError,
                   rf"^input must be a torch\.Tensor; got {type(value).__name__}$", compute)


@pytest.mark.parametrize("subject", params(ALL))
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64],
                         ids=str)
def test_input_not_floating(subject, dtype, compute):
    module = subject.make()
    x = valid_input(module).to(dtype)
    assert_rejects(lambda: module(x), TypeError,
                   rf"^input must be a floating-point tensor; got dtype {esc(str(dtype))}\b",
                   compute)


def _bad_rank_inputs(module):
    """Inputs of a rank the module does not take."""
    if is_cell(module):  # takes 1-D (I) or 2-D (B, I)
        return [torch.randn(()), torch.randn(B, T, I)]
    if is_preset(module):  # takes 2-D (T, I) unbatched or 3-D
        return [torch.randn(I), torch.randn(2, B, T, I)]
    return [torch.randn(T, I), torch.randn(2, B, T, I)]  # composable layers take 3-D only


@pytest.mark.parametrize("subject", params(ALL))
@pytest.mark.parametrize("which", [0, 1], ids=["too-few-dims", "too-many-dims"])
def test_input_wrong_rank(subject, which, compute):
    module = subject.make()
    x = _bad_rank_inputs(module)[which]
    expected = "2-D" if is_cell(module) else "3-D"  # named in the message either way
    assert_rejects(
        lambda: module(x), ValueError,
        rf"^input must be .*{expected}.*; "
        rf"got {x.dim()}-D tensor of shape {esc(str(tuple(x.shape)))}$",
        compute,
    )


@pytest.mark.parametrize("subject", params(ALL))
@pytest.mark.parametrize("features", [I + 1, I - 1, 1])
def test_input_wrong_feature_size(subject, features, compute):
    module = subject.make()
    x = valid_input(module, features=features)
    assert_rejects(lambda: module(x), ValueError,
                   rf"^input\.size\(-1\) must equal input_size={I}; got {features}\b", compute)


@pytest.mark.parametrize("subject", params(PRESETS))
def test_unbatched_preset_input_wrong_feature_size(subject, compute):
    module = subject.make()
    x = torch.randn(T, I + 2)
    assert_rejects(lambda: module(x), ValueError,
                   rf"^input\.size\(-1\) must equal input_size={I}; got {I + 2}\b", compute)


@pytest.mark.parametrize("subject", params(ALL))
@pytest.mark.parametrize("input_dtype, parameter_dtype",
                         [(torch.float64, torch.float32), (torch.float32, torch.float64),
                          (torch.float16, torch.float32), (torch.bfloat16, torch.float64)],
                         ids=["f64-input-f32-params", "f32-input-f64-params",
                              "f16-input-f32-params", "bf16-input-f64-params"])
def test_input_dtype_differs_from_parameters(subject, input_dtype, parameter_dtype, compute):
    module = subject.make().to(parameter_dtype)
    x = valid_input(module, dtype=input_dtype)
    assert_rejects(
        lambda: module(x), TypeError,
        rf"^input dtype {esc(str(input_dtype))} does not match the parameters' dtype "
        rf"{esc(str(parameter_dtype))}\b",
        compute,
    )


@pytest.mark.parametrize("subject", params(SEQUENCE_LAYERS))
def test_input_without_time_steps(subject, compute):
    # An empty batch is fine (as in torch.nn; tests/layers/test_torch_parity.py), no steps is not.
    module = subject.make()
    x = sequence(module, steps=0)
    assert_rejects(lambda: module(x), ValueError,
                   rf"^input must have at least one time step; got shape "
                   rf"{esc(str(tuple(x.shape)))}$", compute)




@pytest.mark.parametrize("subject", params(ALL))
def test_input_on_another_device_than_parameters(subject, compute):
    module = subject.make()  # parameters on cpu
    x = valid_input(module, device="meta")
    assert_rejects(lambda: module(x), ValueError,
                   r"^input\b(?=.*\bmeta\b)(?=.*\bcpu\b)(?=.*\bparameters?\b)", compute)


# --------------------------------------------------------------------------------------------
# hx / state


@pytest.mark.parametrize("subject, field_index, mutation", STATE_CASES)
def test_state_tensor_wrong(subject, field_index, mutation, compute):
    """Each tensor of hx/state: wrong shape, dtype or device, or not a tensor."""
    module = subject.make()
    x = valid_input(module)
    state, fields = state_spec(module)
    name, path, shape = fields[field_index]
    _, make_bad, exc_type, pattern = mutation
    bad = make_bad(shape)
    bad_state = replace(state, path, bad)
    info = assert_rejects(lambda: module(x, bad_state), exc_type, pattern(name, shape, bad),
                          compute)
    if mutation[0] == "wrong-device":
        assert "meta" in str(info.value) and "cpu" in str(info.value)


@pytest.mark.parametrize("subject", params(PRESETS))
def test_preset_hx_dtype_differs_from_double_input(subject, compute):
    module = subject.make().double()
    x = sequence(module, dtype=torch.float64)
    state, fields = state_spec(module)  # float32 tensors: the first one is named
    name, _, _ = fields[0]
    bad_state = state
    assert_rejects(lambda: module(x, bad_state), TypeError,
                   rf"^{esc(name)} dtype torch\.float32 does not match input dtype torch\.float64",
                   compute)


@pytest.mark.parametrize("subject", params(PRESETS))
def test_preset_unbatched_input_with_batched_hx(subject, compute):
    module = subject.make()
    x = torch.randn(T, I)
    state, fields = state_spec(module)  # batched: (L*D, B, width)
    name, _, shape = fields[0]
    expected = (shape[0], shape[2])
    assert_rejects(lambda: module(x, state), ValueError,
                   rf"^{esc(name)} must have shape {esc(str(expected))}; got {esc(str(shape))}$",
                   compute)


@pytest.mark.parametrize("subject", params(CELLS))
def test_cell_unbatched_input_with_batched_hx(subject, compute):
    module = subject.make()
    x = torch.randn(I)
    state, fields = state_spec(module, batch=1)
    name, _, shape = fields[0]
    assert_rejects(lambda: module(x, state), ValueError,
                   rf"^{esc(name)} must have shape {esc(str(shape[1:]))}; got {esc(str(shape))}$",
                   compute)




def _state_structure_cases():
    h, c = torch.zeros(1, 2, H), torch.zeros(1, 2, H)  # B=2 here, so "3" only counts tensors
    cell_h, cell_c = torch.zeros(2, H), torch.zeros(2, H)
    return [
        pytest.param(lambda: LSTM(I, H), (2, T, I), h, TypeError,
                     r"^hx must be a tuple \(h_0, c_0\) of 2 tensors; got Tensor$",
                     id="LSTM-hx-tensor"),
        pytest.param(lambda: LSTM(I, H), (T, 2, I), [h, c, c], TypeError, r"^hx\b.*\b3\b",
                     id="LSTM-hx-3-tuple"),
        pytest.param(lambda: LSTM(I, H), (T, 2, I), (h,), TypeError, r"^hx\b.*\b1\b",
                     id="LSTM-hx-1-tuple"),
        pytest.param(lambda: GRU(I, H), (T, 2, I), (h, c), TypeError,
                     r"^hx must be a tensor; got tuple$", id="GRU-hx-tuple"),
        pytest.param(lambda: RNN(I, H), (T, 2, I), None, None, None, id="RNN-hx-None-ok"),
        pytest.param(lambda: LSTMCell(I, H), (2, I), cell_h, TypeError,
                     r"^hx must be a tuple \('h', 'c'\) of 2 tensors; got Tensor$",
                     id="LSTMCell-hx-tensor"),
        pytest.param(lambda: LSTMCell(I, H), (2, I), (cell_h, cell_c, cell_c), TypeError,
                     r"^hx\b.*\b3\b", id="LSTMCell-hx-3-tuple"),
        pytest.param(lambda: GRUCell(I, H), (2, I), (cell_h,), TypeError,
                     r"^hx must be a tensor; got tuple$", id="GRUCell-hx-tuple"),
        pytest.param(lambda: Recurrent(LSTMCell(I, H)), (2, T, I), cell_h, TypeError,
                     r"^state must be a LSTMState\('h', 'c'\) of 2 tensors; got Tensor$",
                     id="Recurrent[LSTMCell]-state-tensor"),
        pytest.param(lambda: Recurrent(LSTMCell(I, H)), (2, T, I), (cell_h, cell_c, cell_c),
                     TypeError, r"^state\b.*\b3\b", id="Recurrent[LSTMCell]-state-3-tuple",
                     ),
        pytest.param(lambda: Recurrent(GRUCell(I, H)), (2, T, I), cell_h, TypeError,
                     r"^state must be a GRUState\('h',\) of 1 tensors; got Tensor$",
                     id="Recurrent[GRUCell]-state-tensor"),
        pytest.param(lambda: Bidirectional(GRUCell(I, H), GRUCell(I, H)), (2, T, I), cell_h,
                     TypeError, r"^state must be a BidirectionalState\(forward, backward\) "
                                r"of 2 states; got Tensor$", id="Bidirectional-state-tensor"),
        pytest.param(lambda: Bidirectional(GRUCell(I, H), GRUCell(I, H)), (2, T, I),
                     ((cell_h,), (cell_h,), (cell_h,)), TypeError, r"^state\b.*\b3\b",
                     id="Bidirectional-state-3-tuple"),
        pytest.param(lambda: Stacked([Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H))]),
                     (2, T, I), [(cell_h,)], ValueError,
                     r"^states must be a list with one state per layer \(2\); got list of "
                     r"length 1$", id="Stacked-states-too-few"),
        pytest.param(lambda: Stacked([Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H))]),
                     (2, T, I), cell_h, ValueError,
                     r"^states must be a list with one state per layer; got Tensor$",
                     id="Stacked-states-tensor"),
    ]


@pytest.mark.parametrize("make, input_shape, state, exc_type, pattern",
                         _state_structure_cases())
def test_state_container_wrong(make, input_shape, state, exc_type, pattern, compute):
    module = make()
    x = torch.randn(input_shape)
    if exc_type is None:  # control: the same call with a valid (None) state runs
        module(x, state)
        return
    assert_rejects(lambda: module(x, state), exc_type, pattern, compute)


# --------------------------------------------------------------------------------------------
# lengths


def _mask(rows):
    return torch.tensor(rows, dtype=torch.bool)


_PREFIX_MASK = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]

# (id, lengths from the module, exception type, regex from the module, marks)
LENGTHS_CASES = [
    ("too-long-list", lambda m: [5, 6, 2], ValueError,
     lambda m: rf"^lengths must be <= the sequence length T={T}; got 6 at index 1$"),
    ("too-long-tensor", lambda m: torch.tensor([2, 5, 9]), ValueError,
     lambda m: rf"^lengths must be <= the sequence length T={T}; got 9 at index 2$"),
    ("too-long-int32", lambda m: torch.tensor([T + 1, 1, 1], dtype=torch.int32), ValueError,
     lambda m: rf"^lengths must be <= the sequence length T={T}; got {T + 1} at index 0$"),
    # Past int64: the number as given, not wrapped negative or an OverflowError from torch.
    ("too-long-uint64-past-int64", lambda m: np.array([1, 2**63 + 5, 1], dtype=np.uint64),
     ValueError,
     lambda m: rf"^lengths must be <= the sequence length T={T}; got {2**63 + 5} at index 1$"),
    ("too-long-list-past-uint64", lambda m: [2**64, 1, 1], ValueError,
     lambda m: rf"^lengths must be <= the sequence length T={T}; got {2**64} at index 0$"),
    ("negative-list-past-int64", lambda m: [1, 1, -2**70], ValueError,
     lambda m: rf"^lengths must be >= 1\b.*; got {-2**70} at index 2\b"),
    # Before: torch's "Cannot copy out of meta tensor" and "Could not run 'aten::min' with
    # arguments from the 'SparseCPU' backend", neither naming lengths.
    ("meta-device", lambda m: torch.tensor([5, 4, 3], device="meta"), ValueError,
     lambda m: r"^lengths is on the meta device, which holds no values to run on; pass "
               r"lengths as a CPU tensor, an array or a list$"),
    ("sparse", lambda m: torch.tensor([5, 4, 3]).to_sparse(), TypeError,
     lambda m: r"^lengths must be a dense tensor; got layout torch\.sparse_coo: pass "
               r"lengths\.to_dense\(\)$"),
    ("zero", lambda m: [3, 0, 2], ValueError,
     lambda m: r"^lengths must be >= 1\b.*; got 0 at index 1\b"),
    ("negative", lambda m: torch.tensor([-2, 3, 1]), ValueError,
     lambda m: r"^lengths must be >= 1\b.*; got -2 at index 0\b"),
    # the count is named before a value: the stray entry is the mistake
    ("batch-too-large-with-a-long-entry", lambda m: [1, 2, 3, 99], ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); got shape \(4,\)$"),
    ("2-D-uint64-array", lambda m: np.array([[1, 2, 3], [4, 5, 99]], dtype=np.uint64), ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); got shape \(2, 3\)$"),
    ("batch-too-small", lambda m: [5, 5], ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); got shape \(2,\)$"),
    ("batch-too-large", lambda m: torch.tensor([1, 2, 3, 4]), ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); got shape \(4,\)$"),
    ("empty-list", lambda m: [], ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); got shape \(0,\)$"),
    ("2-D-int-tensor", lambda m: torch.tensor([[5], [4], [3]]), ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); "
               rf"got shape \({B}, 1\)$"),
    ("0-D-int-tensor", lambda m: torch.tensor(5), ValueError,
     lambda m: rf"^lengths must have one entry per sequence, shape \({B},\); got shape \(\)$"),
    ("float32-tensor", lambda m: torch.tensor([5.0, 4.0, 3.0]), TypeError,
     lambda m: r"^lengths must be an integer tensor\b.*; got dtype torch\.float32$"),
    ("float64-tensor", lambda m: torch.tensor([5, 4, 3], dtype=torch.float64), TypeError,
     lambda m: r"^lengths must be an integer tensor\b.*; got dtype torch\.float64$"),
    ("int-scalar", lambda m: 5, TypeError,
     lambda m: r"^lengths must be a 1-D integer tensor or array, a list of ints or a boolean "
               r"mask; got int$"),
    ("list-of-bools", lambda m: [True, True, False], TypeError,
     lambda m: r"^lengths must be a 1-D integer tensor or array, a list of ints or a boolean "
               r"mask; got list with bool True at index 0$"),
    ("mask-not-prefix", lambda m: mask_layout(m, _mask([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0],
                                                         [1, 1, 0, 0, 0]])), ValueError,
     lambda m: r"^a boolean lengths mask must be True on a prefix of each sequence\b.*; "
               r"sequence 1 is not$"),
    ("mask-left-padded", lambda m: mask_layout(m, _mask([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1],
                                                          [0, 0, 1, 1, 1]])), ValueError,
     lambda m: r"^a boolean lengths mask must be True on a prefix of each sequence\b.*; "
               r"sequence 2 is not$"),
    ("mask-empty-row", lambda m: mask_layout(m, _mask([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0],
                                                        [0, 0, 0, 0, 0]])), ValueError,
     lambda m: r"^a boolean lengths mask must have at least one True per sequence; "
               r"sequence 2 has none$"),
    ("mask-too-short", lambda m: mask_layout(m, _mask([row[:-1] for row in _PREFIX_MASK])),
     ValueError,
     lambda m: rf"^a boolean lengths mask must have the input's shape "
               rf"{esc(_mask_expected(m))}; got {esc(str(_mask_got(m, (B, T - 1))))}$"),
    ("mask-transposed", lambda m: mask_layout(m, _mask(_PREFIX_MASK)).t(), ValueError,
     lambda m: rf"^a boolean lengths mask must have the input's shape "
               rf"{esc(_mask_expected(m))}; got {esc(str(_mask_got(m, (T, B))))}$"),
    ("mask-1-D", lambda m: torch.ones(B, dtype=torch.bool), ValueError,
     lambda m: rf"^a boolean lengths mask must have the input's shape "
               rf"{esc(_mask_expected(m))}; got \({B},\)$"),
    ("list-with-float", lambda m: [5, 2.5, 1], TypeError,
     lambda m: r"^lengths\b(?=.*(\bfloat\b|2\.5))"),
]


def _mask_expected(module) -> str:
    return "(B, T) = (3, 5)" if module.batch_first else "(T, B) = (5, 3)"


def _mask_got(module, shape_bt):
    """The shape a (B, T)-built mask has after :func:`mask_layout`."""
    return shape_bt if module.batch_first else shape_bt[::-1]


def _lengths_params():
    out = []
    for case in LENGTHS_CASES:
        case_id, make_lengths, exc_type, pattern, *marks = case
        for subject in SEQUENCE_LAYERS:
            out.append(pytest.param(subject, make_lengths, exc_type, pattern,
                                    id=f"{subject.id}-{case_id}", marks=marks))
    return out


@pytest.mark.parametrize("subject, make_lengths, exc_type, pattern", _lengths_params())
def test_lengths_wrong(subject, make_lengths, exc_type, pattern, compute):
    module = subject.make()
    x = sequence(module)
    lengths = make_lengths(module)
    assert_rejects(lambda: module(x, lengths=lengths), exc_type, pattern(module), compute)


@pytest.mark.parametrize("subject", params(SEQUENCE_LAYERS))
@pytest.mark.parametrize("form", ["list", "int64", "int32", "mask"])
def test_lengths_valid_forms_accepted(subject, form, compute):
    """Control for the cases above: the same module takes well-formed lengths."""
    module = subject.make()
    lengths = {"list": [5, 3, 1], "int64": torch.tensor([5, 3, 1]),
               "int32": torch.tensor([5, 3, 1], dtype=torch.int32),
               "mask": mask_layout(module, _mask(_PREFIX_MASK))}[form]
    module(sequence(module), lengths=lengths)
    assert compute.calls


@pytest.mark.parametrize("subject", params(PRESETS))
def test_preset_lengths_with_packed_sequence(subject, compute):
    module = subject.make()
    lengths = [5, 3, 2]
    packed = pack_padded_sequence(sequence(module), lengths, batch_first=module.batch_first)
    assert_rejects(lambda: module(packed, lengths=lengths), ValueError,
                   r"^lengths= cannot be combined with a PackedSequence input\b", compute)
    module(packed)  # control: the packed input alone is fine


@pytest.mark.parametrize("subject", params(COMPOSABLE))
@pytest.mark.parametrize("with_lengths", [True, False], ids=["with-lengths", "without-lengths"])
def test_composable_layer_rejects_packed_sequence(subject, with_lengths, compute):
    """Composable layers take padded tensors (+ lengths), never a PackedSequence."""
    module = subject.make()
    lengths = [5, 3, 2]
    packed = pack_padded_sequence(sequence(module), lengths, batch_first=module.batch_first)
    kwargs = {"lengths": lengths} if with_lengths else {}
    assert_rejects(lambda: module(packed, **kwargs), TypeError,
                   r"^(input|lengths)\b.*\bPackedSequence\b", compute)


@pytest.mark.parametrize("subject", params(PRESETS))
def test_preset_lengths_with_unbatched_input(subject, compute):
    module = subject.make()
    assert_rejects(lambda: module(torch.randn(T, I), lengths=[T]), ValueError,
                   rf"^lengths= needs a batched 3-D input; got a 2-D unbatched input of shape "
                   rf"\({T}, {I}\): add a batch dimension$", compute)


# --------------------------------------------------------------------------------------------
# backend names


_BACKENDS = esc(str(backend_names()))


BACKEND_TAKERS = [
    pytest.param(lambda name: RNN(I, H, backend=name), id="RNN"),
    pytest.param(lambda name: LSTM(I, H, backend=name), id="LSTM"),
    pytest.param(lambda name: GRU(I, H, num_layers=2, bidirectional=True, backend=name),
                 id="GRU-2layer-bidir"),
    pytest.param(lambda name: Recurrent(GRUCell(I, H), backend=name), id="Recurrent"),
    pytest.param(lambda name: Bidirectional(GRUCell(I, H), GRUCell(I, H), backend=name),
                 id="Bidirectional[cells]"),
    pytest.param(lambda name: Bidirectional(Recurrent(GRUCell(I, H)),
                                            Recurrent(GRUCell(I, H), reverse=True), backend=name),
                 id="Bidirectional[Recurrent layers]"),
    pytest.param(lambda name: rnnkit.select_backend(GRUCell(I, H), torch.zeros(T, B, 3 * H),
                                                    name),
                 id="select_backend"),
]


@pytest.mark.parametrize("name", ["nope", "Reference", "AUTO", ""], ids=repr)
@pytest.mark.parametrize("make", BACKEND_TAKERS)
def test_unknown_backend_name(make, name):
    assert_rejects(lambda: make(name), ValueError,
                   rf"^backend must be 'auto' or one of {_BACKENDS}; got {esc(repr(name))}$")


@pytest.mark.parametrize("name", ["nope", "Reference"])
def test_unknown_backend_name_in_scan(name, compute):
    cell = GRUCell(I, H)
    gates_x = torch.zeros(T, B, 3 * H)
    assert_rejects(lambda: rnnkit.scan(cell, gates_x, cell.initial_state(B), backend=name),
                   ValueError,
                   rf"^backend must be 'auto' or one of {_BACKENDS}; got {esc(repr(name))}$",
                   compute)


def _lstm_scan_args():
    cell = LSTMCell(I, H)
    return cell, torch.zeros(T, B, 4 * H), cell.initial_state(B)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("change, exc_type, pattern", [
    pytest.param(lambda c, g, s: (c, g[:0], s), ValueError,
                 rf"^gates_x must have at least one time step; got shape \(0, {B}, {4 * H}\)$",
                 id="no-steps"),
    pytest.param(lambda c, g, s: (c, g[..., :2 * H], s), ValueError,
                 rf"^gates_x must have G = 4 x {H} = {4 * H} features for this LSTMCell "
                 rf"\(cell.project_input\(x\)\); got {2 * H}$", id="gate-width"),
    pytest.param(lambda c, g, s: (c, g, c.initial_state(B + 1)), ValueError,
                 rf"^state0.h must have shape \({B}, {H}\); got", id="state-batch"),
    pytest.param(lambda c, g, s: (c, g, s.h), TypeError,
                 r"^state0 must be a LSTMState\('h', 'c'\) of 2 tensors; got", id="bare-h"),
    pytest.param(lambda c, g, s: (GRUCell(I, H), torch.zeros(T, B, 3 * H), s), TypeError,
                 r"^state0 must be a GRUState\('h',\) of 1 tensors; got a LSTMState of 2",
                 id="other-cell's-state"),
    pytest.param(lambda c, g, s: (c, g, s._replace(c=s.c.double())), TypeError,
                 r"^state0.c dtype torch.float64 does not match", id="state-dtype"),
])
def test_scan_checks_gates_and_state(change, exc_type, pattern, backend, compute):
    """scan is public: it checked only the rank of gates_x, and the rest failed inside torch
    (or, with no steps, returned an empty result on one backend and raised on the other)."""
    cell, gates_x, state0 = change(*_lstm_scan_args())
    assert_rejects(lambda: rnnkit.scan(cell, gates_x, state0, backend=backend), exc_type,
                   pattern, compute)


def test_scan_takes_none_or_a_plain_tuple_as_its_state():
    cell, gates_x, state0 = _lstm_scan_args()
    gates_x = torch.randn_like(gates_x)
    expected, expected_state = rnnkit.scan(cell, gates_x, state0)
    for given in (None, (state0.h, state0.c)):
        output, state = rnnkit.scan(cell, gates_x, given)
        assert torch.equal(output, expected) and torch.equal(state.c, expected_state.c)


# --------------------------------------------------------------------------------------------
# constructors




def _size_cases():
    cases = []
    makers = {
        "RNN": lambda i, h: RNN(i, h), "LSTM": lambda i, h: LSTM(i, h),
        "GRU": lambda i, h: GRU(i, h), "RNNCell": lambda i, h: RNNCell(i, h),
        "LSTMCell": lambda i, h: LSTMCell(i, h), "GRUCell": lambda i, h: GRUCell(i, h),
    }
    for kind, maker in makers.items():
        for value in (0, -3, 2.0, "4", True):
            cases.append(pytest.param(maker, "input_size", value,
                                      id=f"{kind}-input_size={value!r}"))
            cases.append(pytest.param(maker, "hidden_size", value,
                                      id=f"{kind}-hidden_size={value!r}"))
    return cases


@pytest.mark.parametrize("make, argument, value", _size_cases())
def test_size_not_a_positive_int(make, argument, value):
    sizes = {"input_size": I, "hidden_size": H, argument: value}
    # The message must be about the argument passed, not some other one (e.g. proj_size).
    assert_rejects(lambda: make(sizes["input_size"], sizes["hidden_size"]), ValueError,
                   rf"^(?!.*proj_size){argument} must be a positive int; got {esc(repr(value))}$")


@pytest.mark.parametrize("preset", [RNN, LSTM, GRU], ids=lambda p: p.__name__)
@pytest.mark.parametrize("num_layers", [0, -1, 1.5, True, "2"], ids=repr)
def test_num_layers_not_a_positive_int(preset, num_layers):
    assert_rejects(lambda: preset(I, H, num_layers=num_layers), ValueError,
                   rf"^num_layers must be a positive int; got {esc(repr(num_layers))}$")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_sizes_of_any_integer_type_build_the_same_module(kind):
    """``np.int64`` sizes (from an array's shape) were refused, where torch.nn's cells take
    them (and its layers for num_layers and proj_size). Oracle: the same module built from
    plain ints under the same seed: equal weights and outputs, and sizes stored as int."""
    import numpy as np

    make = getattr(rnnkit, kind)
    extra = {"num_layers": 2} if not kind.endswith("Cell") else {}
    if kind.startswith("LSTM"):
        extra["proj_size"] = 2
    torch.manual_seed(0)
    plain = make(I, H, **extra)
    torch.manual_seed(0)
    numpy_sized = make(np.int64(I), np.int32(H), **{k: np.int64(v) for k, v in extra.items()})
    for name in ("input_size", "hidden_size", *extra):
        assert type(getattr(numpy_sized, name)) is int, name
    for key, value in plain.state_dict().items():
        assert torch.equal(numpy_sized.state_dict()[key], value), key
    x = torch.randn(3, 2, I) if not kind.endswith("Cell") else torch.randn(2, I)
    torch.testing.assert_close(numpy_sized(x), plain(x), rtol=0, atol=0)


@pytest.mark.parametrize("make, flag", [
    *[(preset, flag) for preset in (RNN, LSTM, GRU) for flag in ("bias", "batch_first")],
    (lambda i, h, **kw: Recurrent(GRUCell(i, h), **kw), "batch_first"),
    (lambda i, h, **kw: Recurrent(GRUCell(i, h), **kw), "reverse"),
], ids=lambda value: value if isinstance(value, str) else getattr(value, "__name__", ""))
@pytest.mark.parametrize("value", [0, 1, "False", None], ids=repr)
def test_on_off_options_of_layers_must_be_bools(make, flag, value):
    """torch.nn's layers raise a TypeError for bias=0 and batch_first=1; "False" would read as
    true."""
    assert_rejects(lambda: make(I, H, **{flag: value}), TypeError,
                   rf"^{flag} must be True or False; got {esc(repr(value))} "
                   rf"\({type(value).__name__}\)$")
    make(I, H, **{flag: False})  # the bool itself is fine


def test_options_torch_nn_takes_as_any_value_convert_from_torch():
    """torch.nn's cells take bias=1 and its layers bidirectional=1; from_torch passes such
    attributes on, so rnnkit takes them as well. Oracle: torch.nn's own outputs (a layer's with
    bidirectional=True: torch's own forward refuses the int)."""
    from rnnkit.interop import from_torch

    torch.manual_seed(0)
    x = torch.randn(5, 2, I)
    for module in (torch.nn.GRU(I, H, bidirectional=1), torch.nn.LSTM(I, H, bidirectional=1)):
        converted = from_torch(module)
        module.bidirectional = True
        torch.testing.assert_close(converted(x)[0], module(x)[0])
    cell = torch.nn.GRUCell(I, H, bias=1)
    torch.testing.assert_close(from_torch(cell)(x[0]), cell(x[0]))


@pytest.mark.parametrize("make, flag", [
    (lambda **kw: LSTM(I, H, **kw), "bidirectional"), (lambda **kw: GRU(I, H, **kw),
                                                       "bidirectional"),
    (lambda **kw: GRUCell(I, H, **kw), "bias"), (lambda **kw: LSTMCell(I, H, **kw),
                                                 "bias"),
], ids=["lstm-bidirectional", "gru-bidirectional", "gru-cell-bias", "lstm-cell-bias"])
@pytest.mark.parametrize("value", ["no", "False", None, 2], ids=repr)
def test_switches_torch_nn_leaves_unchecked_refuse_what_is_not_on_or_off(make, flag, value):
    """bidirectional="no" built a bidirectional model and bias="no" kept the biases, as in
    torch.nn (probe, 2026-12-08); 0 and 1 still pass, as torch.nn code passes them (the test
    above). Oracle: the same option as a bool builds."""
    assert_rejects(lambda: make(**{flag: value}), TypeError,
                   rf"^{flag} must be True or False; got {esc(repr(value))} "
                   rf"\({type(value).__name__}\)$")
    assert make(**{flag: False}) is not None


def test_dropout_and_batch_first_set_after_construction_are_checked():
    """dropout = -0.5 turned dropout off and "x" failed in float(); batch_first = "False" was
    taken as true (probe, 2026-12-08). Oracle: the constructor's own messages, and a valid
    change that takes effect."""
    model = LSTM(I, H, num_layers=2, dropout=0.2)
    for value in (-0.5, "x", 1.5):
        assert_rejects(lambda: setattr(model, "dropout", value), ValueError,
                       rf"^dropout must be a number in \[0, 1\]; got {esc(repr(value))}$")
    assert model.dropout == model.stack.dropout == 0.2
    model.dropout = 0.0
    assert model.stack.dropout == 0.0
    assert_rejects(lambda: setattr(model, "batch_first", "False"), TypeError,
                   r"^batch_first must be True or False; got 'False' \(str\)$")
    assert model.batch_first is False
    model.batch_first = True
    assert model(torch.randn(2, 5, I))[0].shape == (2, 5, H)


@pytest.mark.parametrize("preset", [RNN, LSTM, GRU], ids=lambda p: p.__name__)
@pytest.mark.parametrize("dropout", [-0.1, 1.5, 2, math.nan, math.inf, "0.5", None, True],
                         ids=repr)
def test_preset_dropout_outside_unit_interval(preset, dropout):
    assert_rejects(lambda: preset(I, H, num_layers=2, dropout=dropout), ValueError,
                   rf"^dropout must be a number in \[0, 1\]; got {esc(repr(dropout))}$")


@pytest.mark.parametrize("dropout", [-0.1, 1.5, 2, math.nan, -math.inf, "0.5", None], ids=repr)
def test_stacked_dropout_outside_unit_interval(dropout):
    layers = [Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H))]
    assert_rejects(lambda: Stacked(layers, dropout=dropout), ValueError,
                   rf"^dropout must be a (number|probability) in \[0, 1\]; "
                   rf"got {esc(repr(dropout))}$")


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: LSTM(I, H, proj_size=p), id="LSTM"),
    pytest.param(lambda p: LSTM(I, H, num_layers=2, bidirectional=True, proj_size=p),
                 id="LSTM-2layer-bidir"),
    pytest.param(lambda p: LSTMCell(I, H, proj_size=p), id="LSTMCell"),
])
@pytest.mark.parametrize("proj_size", [H, H + 1, 10 * H])
def test_proj_size_not_smaller_than_hidden_size(make, proj_size):
    assert_rejects(lambda: make(proj_size), ValueError,
                   rf"^proj_size must be smaller than hidden_size={H}; got {proj_size}$")


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: LSTM(I, H, proj_size=p), id="LSTM"),
    pytest.param(lambda p: LSTMCell(I, H, proj_size=p), id="LSTMCell"),
])
@pytest.mark.parametrize("proj_size", [-1, 1.5, "2"], ids=repr)
def test_proj_size_not_a_non_negative_int(make, proj_size):
    assert_rejects(lambda: make(proj_size), ValueError,
                   rf"^proj_size must be a non-negative int; got {esc(repr(proj_size))}$")


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: RNN(I, H, nonlinearity=n), id="RNN"),
    pytest.param(lambda n: RNN(I, H, num_layers=2, bidirectional=True, nonlinearity=n),
                 id="RNN-2layer-bidir"),
    pytest.param(lambda n: RNNCell(I, H, nonlinearity=n), id="RNNCell"),
])
@pytest.mark.parametrize("nonlinearity", ["gelu", "Tanh", "sigmoid", "", None], ids=repr)
def test_unknown_nonlinearity(make, nonlinearity):
    assert_rejects(lambda: make(nonlinearity), ValueError,
                   rf"^nonlinearity must be one of \('tanh', 'relu'\); "
                   rf"got {esc(repr(nonlinearity))}$")


@pytest.mark.parametrize("make", [
    pytest.param(lambda m: Bidirectional(GRUCell(I, H), GRUCell(I, H), merge=m), id="cells"),
    pytest.param(lambda m: Bidirectional(Recurrent(LSTMCell(I, H)),
                                         Recurrent(LSTMCell(I, H), reverse=True), merge=m),
                 id="Recurrent-layers"),
])
@pytest.mark.parametrize("merge", ["max", "cat", "Concat", "", None], ids=repr)
def test_unknown_merge_mode(make, merge):
    assert_rejects(lambda: make(merge), ValueError,
                   rf"^merge must be one of {esc(str(MERGE_MODES))}; got {esc(repr(merge))}$")


@pytest.mark.parametrize("merge", ["sum", "mean", "mul"])
def test_merge_needs_equal_output_sizes(merge):
    assert_rejects(
        lambda: Bidirectional(LSTMCell(I, H), LSTMCell(I, H, proj_size=P), merge=merge),
        ValueError, rf"^merge='{merge}' needs equal output sizes; got {H} and {P}\b",
    )
    Bidirectional(LSTMCell(I, H), LSTMCell(I, H, proj_size=P), merge="concat")  # control


def test_bidirectional_directions_take_different_input_sizes():
    assert_rejects(lambda: Bidirectional(GRUCell(I, H), GRUCell(I + 1, H)), ValueError,
                   rf"^both directions must take the same input_size; got {I} and {I + 1}$")


@pytest.mark.parametrize("layers, index, takes, gets", [
    pytest.param(lambda: [Recurrent(RNNCell(I, H)), Recurrent(RNNCell(H + 1, H))], 1, H + 1, H,
                 id="Recurrent->Recurrent"),
    pytest.param(lambda: [Bidirectional(GRUCell(I, H), GRUCell(I, H)),
                          Recurrent(GRUCell(H, H))], 1, H, 2 * H,
                 id="Bidirectional(concat)->Recurrent"),
    pytest.param(lambda: [Bidirectional(GRUCell(I, H), GRUCell(I, H), merge="sum"),
                          Recurrent(GRUCell(2 * H, H))], 1, 2 * H, H,
                 id="Bidirectional(sum)->Recurrent"),
    pytest.param(lambda: [Recurrent(LSTMCell(I, H, proj_size=P)), Recurrent(LSTMCell(H, H))],
                 1, H, P, id="LSTM-proj->Recurrent"),
    pytest.param(lambda: [Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H)),
                          Recurrent(GRUCell(I, H))], 2, I, H, id="third-layer"),
    pytest.param(lambda: [Recurrent(GRUCell(I, H)), Recurrent(RNNCell(H, H))], 1, H, H,
                 id="control-chains"),
])
def test_stacked_layers_do_not_chain(layers, index, takes, gets):
    if takes == gets:  # control: layers that chain are accepted
        Stacked(layers())
        return
    assert_rejects(lambda: Stacked(layers()), ValueError,
                   rf"^layer {index} takes input_size={takes} but layer {index - 1} "
                   rf"outputs {gets}$")


@pytest.mark.parametrize("layers, index, width_in, width_out", [
    pytest.param(lambda: [Recurrent(RNNCell(I, H)), Recurrent(RNNCell(H, H + 2))],
                 1, H, H + 2, id="Recurrent-widens"),
    pytest.param(lambda: [Recurrent(GRUCell(I, H)), Bidirectional(GRUCell(H, H), GRUCell(H, H))],
                 1, H, 2 * H, id="Bidirectional-concat-doubles"),
    pytest.param(lambda: [Recurrent(LSTMCell(I, H)), Recurrent(LSTMCell(H, H, proj_size=P))],
                 1, H, P, id="LSTM-proj-narrows"),
    pytest.param(lambda: [Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H)),
                          Recurrent(GRUCell(H, I))], 2, H, I, id="third-layer"),
])
def test_stacked_residual_with_mismatched_widths(layers, index, width_in, width_out):
    assert_rejects(lambda: Stacked(layers(), residual=True), ValueError,
                   rf"^residual=True needs layer {index} to keep its width; "
                   rf"it maps {width_in} -> {width_out}$")
    Stacked(layers(), residual=False)  # control: without residual the same stack is fine


@pytest.mark.parametrize("make, index, got", [
    pytest.param(lambda: [GRUCell(I, H)], 0, "GRUCell \\(wrap a cell in rnnkit.Recurrent\\)",
                 id="cell"),
    pytest.param(lambda: [Recurrent(GRUCell(I, H)), nn.Linear(H, H)], 1, "Linear", id="Linear"),
    # a drop-in preset chains by its sizes but has no layer interface (it failed in forward)
    pytest.param(lambda: [Recurrent(GRUCell(I, H)), RNN(H, H, batch_first=True)], 1, "RNN",
                 id="preset"),
])
def test_stacked_takes_only_layers(make, index, got):
    """It used to accept anything and fail later with an AttributeError about its internals."""
    assert_rejects(lambda: Stacked(make()), TypeError,
                   rf"^layers\[{index}\] must be a Recurrent or Bidirectional layer; got {got}$")


@pytest.mark.parametrize("option, value, own", [("batch_first", False, True),
                                                ("backend", "reference", "'auto'")])
def test_bidirectional_refuses_options_its_given_layers_contradict(option, value, own):
    """batch_first/backend configure the layers made from cells; with given Recurrent layers
    they were silently ignored, and batch_first=False read time-major input as batch-major."""
    def make(**options):
        return Bidirectional(Recurrent(GRUCell(I, H)), Recurrent(GRUCell(I, H), reverse=True),
                             **options)

    assert_rejects(lambda: make(**{option: value}), ValueError,
                   rf"^forward_layer has {option}={esc(str(own))} but {option}="
                   rf"{esc(repr(value))} was passed; a given Recurrent layer keeps its own")
    make()  # control: no option, or one the layers agree with
    make(batch_first=True, backend="auto")


def test_stacked_without_layers():
    assert_rejects(lambda: Stacked([]), ValueError, r"\blayers\b(?=.*\bgot\b.*(\b0\b|\[\]))")


@pytest.mark.parametrize("make, pattern", [
    pytest.param(lambda: Recurrent(nn.Linear(I, H)),
                 r"^cell must be an rnnkit cell \(RecurrentCell\); got Linear$", id="Linear"),
    pytest.param(lambda: Recurrent(nn.GRUCell(I, H)),
                 r"^cell must be an rnnkit cell \(RecurrentCell\); got GRUCell$",
                 id="torch.nn.GRUCell"),
    pytest.param(lambda: Bidirectional(nn.GRU(I, H), GRUCell(I, H)),
                 r"^forward_layer must be an rnnkit cell or Recurrent layer; got GRU$",
                 id="Bidirectional-forward-torch.nn.GRU"),
    pytest.param(lambda: Bidirectional(GRUCell(I, H), GRU(I, H)),
                 r"^backward_layer must be an rnnkit cell or Recurrent layer; got GRU$",
                 id="Bidirectional-backward-rnnkit.GRU"),
])
def test_layer_arguments_of_the_wrong_type(make, pattern):
    assert_rejects(make, TypeError, pattern)


@pytest.mark.parametrize("dropout", [np.float32(0.25), np.float16(0.25)],
                         ids=["np.float32", "np.float16"])
def test_stacked_takes_dropout_of_any_real_number_type(dropout):
    """Stacked (and so every preset) refused np.float32(0.25) as "not a probability in
    [0, 1]". Oracle: torch.nn.LSTM, which takes it."""
    assert torch.nn.LSTM(I, H, num_layers=2, dropout=float(dropout)).dropout == 0.25
    assert rnnkit.LSTM(I, H, num_layers=2, dropout=dropout).dropout == 0.25
    layers = [Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H))]
    assert Stacked(layers, dropout=dropout).dropout == 0.25


@pytest.mark.parametrize("flag", ["residual", "torch_masks"])
def test_stacked_flags_must_be_booleans(flag):
    """residual="no" turned residual connections on (and the repr said residual=True)."""
    layers = [Recurrent(GRUCell(H, H)), Recurrent(GRUCell(H, H))]
    assert_rejects(lambda: Stacked(layers, **{flag: "no"}), TypeError,
                   rf"^{flag} must be True or False; got 'no' \(str\)$")


@pytest.mark.parametrize("exporter", ["numpy", "c", "onnx"])
def test_an_exports_check_switch_refuses_text_before_anything_is_written(tmp_path, exporter):
    """check="no" ran the check (probe, 2026-12-08). Oracle: nothing written; check=False
    exports."""
    from rnnkit import export

    if exporter == "onnx" and importlib.util.find_spec("onnx") is None:
        pytest.skip("ONNX export needs the export extra: pip install -e '.[export]'")
    function = getattr(export, f"export_{exporter}")
    assert_rejects(lambda: function(torch.nn.GRU(I, H), tmp_path / "out", check="no"),
                   TypeError, r"^check must be True or False; got 'no' \(str\)$")
    assert not (tmp_path / "out").exists()
    function(torch.nn.GRU(I, H), tmp_path / "out", check=False)


def test_an_initial_state_takes_a_whole_batch_size_and_a_floating_dtype():
    """initial_state(2.5 / "2" / True) said "zeros() takes 1 positional argument", -1 gave
    torch's own error and dtype=torch.int64 was taken (probe, 2026-12-08). Oracle: the zero
    state of a whole batch size."""
    cell = LSTMCell(I, H)
    assert cell.initial_state(2).h.shape == (2, H) and cell.initial_state(0).c.shape == (0, H)
    for batch in (2.5, "2", True, -1):
        with pytest.raises(ValueError, match=r"^batch_size must be a non-negative int; got "):
            cell.initial_state(batch)
    with pytest.raises(TypeError, match=r"^dtype must be a floating torch.dtype"):
        cell.initial_state(2, dtype=torch.int64)


@pytest.mark.parametrize("call, error, message", [
    (lambda: Stacked(Recurrent(GRUCell(I, H))), TypeError,
     r"^layers must be a list of layers; got one Recurrent \(pass \[layer\]\)$"),
    (lambda: RecurrentCell(I, H), TypeError, r"^RecurrentCell must set state_type and gate_count"),
], ids=["stacked-one-layer", "abstract-cell"])
def test_a_misused_building_block_is_named_with_the_fix(call, error, message):
    """"'Recurrent' object is not iterable" and "'RecurrentCell' object has no attribute
    'gate_count'" (probe, 2026-12-08). Oracle: the forms the messages give build."""
    assert_rejects(call, error, message)
    assert Stacked([Recurrent(GRUCell(I, H))]).output_size == H


def test_duck_typed_and_numpy_forms_torch_code_uses_still_pass(tmp_path):
    """Found by a review of the stricter checks (2026-12-08): np.bool_ switches, a Stacked of
    an nn.Sequential, clip_gradients of a ParameterList with a tensor threshold, and a cell
    exported with a dynamic batch. Oracle: torch.nn's and torch's own handling of each."""
    import numpy as np

    from rnnkit.training.clipping import clip_gradients

    assert LSTMCell(I, H, bias=np.bool_(False)).bias_ih is None
    assert torch.nn.LSTMCell(I, H, bias=np.bool_(False)).bias_ih is None
    assert LSTM(I, H, bidirectional=np.True_).bidirectional
    sequential = torch.nn.Sequential(Recurrent(GRUCell(I, H)), Recurrent(GRUCell(H, H)))
    assert Stacked(sequential).output_size == H
    grads = [torch.full((3,), 2.0), torch.full((4,), 1.0)]
    ours = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros_like(g)) for g in grads])
    theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for group in (ours, theirs):
        for parameter, grad in zip(group, grads):
            parameter.grad = grad.clone()
    norm = clip_gradients(ours, torch.tensor(1.0))
    assert norm == pytest.approx(float(torch.nn.utils.clip_grad_norm_(theirs, torch.tensor(1.0))))
    assert all(torch.allclose(a.grad, b.grad) for a, b in zip(ours, theirs))
    cell = GRUCell(I, H)
    exported = torch.export.export(cell, (torch.randn(2, I),),
                                   dynamic_shapes=({0: torch.export.Dim("batch", min=2)},))
    x = torch.randn(5, I)
    torch.testing.assert_close(exported.module()(x), cell(x))
