"""rnnkit presets and cells against torch.nn: same weights -> same outputs, states and gradients.

Each test builds the torch.nn module, builds the rnnkit module with identical arguments, copies
the weights with ``rnnkit_module.load_state_dict(torch_module.state_dict())``, runs both on the
same inputs and compares outputs, final states and the gradients of a loss that touches every
output and final state with random weights: gradients of the input, of hx (h_0 and c_0) and of
every parameter, matched by torch's parameter names.
"""

from __future__ import annotations

import warnings
import zlib

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.interop import from_torch, to_torch
from tolerances import assert_close, assert_grad_close

pytestmark = pytest.mark.usefixtures("single_thread")

INPUT, HIDDEN, PROJ = 3, 5, 2
STEPS, BATCH = 5, 3
#: Valid lengths for the variable-length modes: unsorted, one equal to STEPS, one of length 1.
LENGTHS = [3, STEPS, 1]
DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["f32", "f64"]

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


# -- building modules -------------------------------------------------------------------------
def layer_kwargs(kind: str, proj: int, **common) -> tuple[type, type, dict]:
    """(torch class, rnnkit class, constructor kwargs) for one kind."""
    kwargs = dict(common)
    if kind.startswith("rnn"):
        kwargs["nonlinearity"] = kind.split("_")[1]
        return nn.RNN, rnnkit.RNN, kwargs
    if kind == "lstm":
        kwargs["proj_size"] = proj
        return nn.LSTM, rnnkit.LSTM, kwargs
    assert proj == 0
    return nn.GRU, rnnkit.GRU, kwargs


def make_layer_pair(kind, *, num_layers=1, bidirectional=False, batch_first=False, bias=True,
                    proj=0, dtype=torch.float64, dropout=0.0, backend="auto"):
    torch_cls, rnnkit_cls, kwargs = layer_kwargs(
        kind, proj, input_size=INPUT, hidden_size=HIDDEN, num_layers=num_layers, bias=bias,
        batch_first=batch_first, bidirectional=bidirectional, dropout=dropout, dtype=dtype,
    )
    torch_module = torch_cls(**kwargs)
    rnnkit_module = rnnkit_cls(**kwargs, backend=backend)
    # A different init in rnnkit must not matter: the weights are copied over.
    assert list(rnnkit_module.state_dict()) == list(torch_module.state_dict())
    rnnkit_module.load_state_dict(torch_module.state_dict())
    return torch_module, rnnkit_module


def make_cell_pair(kind, *, bias=True, dtype=torch.float64):
    if kind.startswith("rnn"):
        nonlinearity = kind.split("_")[1]
        pair = (nn.RNNCell(INPUT, HIDDEN, bias, nonlinearity, dtype=dtype),
                rnnkit.RNNCell(INPUT, HIDDEN, bias, nonlinearity, dtype=dtype))
    elif kind == "lstm":
        pair = (nn.LSTMCell(INPUT, HIDDEN, bias, dtype=dtype),
                rnnkit.LSTMCell(INPUT, HIDDEN, bias, dtype=dtype))
    else:
        pair = (nn.GRUCell(INPUT, HIDDEN, bias, dtype=dtype),
                rnnkit.GRUCell(INPUT, HIDDEN, bias, dtype=dtype))
    torch_cell, rnnkit_cell = pair
    assert list(rnnkit_cell.state_dict()) == list(torch_cell.state_dict())
    rnnkit_cell.load_state_dict(torch_cell.state_dict())
    return torch_cell, rnnkit_cell


def seed_for(*params) -> int:
    """A deterministic seed per parameter combination (independent of test order and of
    PYTHONHASHSEED, hence crc32 rather than hash())."""
    return zlib.crc32(repr(params).encode()) % (2 ** 31)


# -- comparing -------------------------------------------------------------------------------
def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def weighted_loss(tensors, weights):
    """sum_i <tensor_i, weight_i>: touches every element with a distinct random weight."""
    return sum((t * w).sum() for t, w in zip(tensors, weights))


def random_like(tensors, generator):
    return [torch.randn(t.shape, dtype=t.dtype, generator=generator) for t in tensors]


def assert_param_grads_match(rnnkit_module, torch_module, dtype, prefix=""):
    rnnkit_params = dict(rnnkit_module.named_parameters())
    assert len(rnnkit_params) == len(dict(torch_module.named_parameters()))
    for name, torch_param in torch_module.named_parameters():
        rnnkit_param = getattr(rnnkit_module, name)  # rnnkit exposes torch's flat names
        assert isinstance(rnnkit_param, nn.Parameter)
        assert any(rnnkit_param is p for p in rnnkit_params.values()), name
        assert rnnkit_param.shape == torch_param.shape, name
        assert torch_param.grad is not None, name
        assert_grad_close(rnnkit_param.grad, torch_param.grad, dtype,
                          what=f"{prefix}grad of {name}")


# -- the full layer grid -----------------------------------------------------------------------
LAYER_CONFIGS = [(kind, 0) for kind in KINDS] + [("lstm", PROJ)]
MODES = ["padded", "lengths", "packed"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=["L1", "L2", "L3"])
@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_layer_matches_torch(kind, proj, num_layers, bidirectional, batch_first, bias, with_hx,
                             dtype, backend):
    """The full grid. Each case runs the three input modes on the same pair of modules (one
    pytest item per case rather than per mode keeps the grid's overhead down); failure messages
    name the mode:

    * ``padded``: a plain (T, B, I) / (B, T, I) tensor, both sides;
    * ``lengths``: rnnkit gets the padded tensor and ``lengths=``, torch the PackedSequence
      (pack_padded_sequence, enforce_sorted=False), compared after pad_packed_sequence;
    * ``packed``: both get the PackedSequence and return one.
    """
    torch.manual_seed(seed_for(kind, proj, num_layers, bidirectional, batch_first, bias))
    torch_module, rnnkit_module = make_layer_pair(
        kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
        bias=bias, proj=proj, dtype=dtype, backend=backend,
    )
    for mode in MODES:
        torch_module.zero_grad(set_to_none=True)
        rnnkit_module.zero_grad(set_to_none=True)
        gen = torch.Generator().manual_seed(seed_for(kind, proj, with_hx, mode, batch_first))
        _check_layer_mode(mode, torch_module, rnnkit_module, kind=kind, proj=proj,
                          num_layers=num_layers, bidirectional=bidirectional,
                          batch_first=batch_first, with_hx=with_hx, dtype=dtype, gen=gen)


def _check_layer_mode(mode, torch_module, rnnkit_module, *, kind, proj, num_layers, bidirectional,
                      batch_first, with_hx, dtype, gen):
    directions = 2 if bidirectional else 1
    out_size = proj or HIDDEN
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    # The padding holds random values too: they must not influence anything.
    x = torch.randn(shape, dtype=dtype, generator=gen)
    lengths = torch.tensor(LENGTHS)

    hx0 = None
    if with_hx:
        hx0 = [torch.randn(num_layers * directions, BATCH, out_size, dtype=dtype, generator=gen)]
        if kind == "lstm":
            hx0.append(torch.randn(num_layers * directions, BATCH, HIDDEN, dtype=dtype,
                                   generator=gen))

    def leaves():
        x_leaf = x.clone().requires_grad_()
        hx_leaves = None if hx0 is None else [h.clone().requires_grad_() for h in hx0]
        return x_leaf, hx_leaves

    def hx_arg(hx_leaves):
        if hx_leaves is None:
            return None
        return hx_leaves[0] if len(hx_leaves) == 1 else tuple(hx_leaves)

    def what(text):
        return f"[{mode}] {text}"

    x_t, hx_t = leaves()
    x_r, hx_r = leaves()
    if mode == "padded":
        out_t, state_t = torch_module(x_t, hx_arg(hx_t))
        out_r, state_r = rnnkit_module(x_r, hx_arg(hx_r))
        outputs_t, outputs_r = out_t, out_r
    elif mode == "lengths":
        packed_t = pack_padded_sequence(x_t, lengths, batch_first=batch_first, enforce_sorted=False)
        out_packed_t, state_t = torch_module(packed_t, hx_arg(hx_t))
        out_t, out_lengths = pad_packed_sequence(out_packed_t, batch_first=batch_first,
                                                 total_length=STEPS)
        assert out_lengths.tolist() == LENGTHS
        out_r, state_r = rnnkit_module(x_r, hx_arg(hx_r), lengths=lengths)
        outputs_t, outputs_r = out_t, out_r
        # Past each sequence's end rnnkit's outputs are exactly zero.
        for b, length in enumerate(LENGTHS):
            tail = out_r[b, length:] if batch_first else out_r[length:, b]
            assert torch.equal(tail, torch.zeros_like(tail)), what(f"sequence {b} output past {length}")
    else:  # packed in, packed out
        packed_t = pack_padded_sequence(x_t, lengths, batch_first=batch_first, enforce_sorted=False)
        packed_r = pack_padded_sequence(x_r, lengths, batch_first=batch_first, enforce_sorted=False)
        out_t, state_t = torch_module(packed_t, hx_arg(hx_t))
        out_r, state_r = rnnkit_module(packed_r, hx_arg(hx_r))
        assert isinstance(out_r, PackedSequence), what("output type")
        assert torch.equal(out_r.batch_sizes, out_t.batch_sizes), what("batch_sizes")
        assert torch.equal(out_r.sorted_indices, out_t.sorted_indices), what("sorted_indices")
        assert torch.equal(out_r.unsorted_indices, out_t.unsorted_indices), what("unsorted_indices")
        outputs_t, outputs_r = out_t.data, out_r.data

    assert outputs_r.shape == outputs_t.shape, what("output shape")
    assert outputs_r.dtype == dtype, what("output dtype")
    assert_close(outputs_r, outputs_t, dtype, what=what("output"))
    states_t, states_r = as_tuple(state_t), as_tuple(state_r)
    assert len(states_r) == len(states_t) == (2 if kind == "lstm" else 1), what("state arity")
    for name, s_r, s_t in zip(("h_n", "c_n"), states_r, states_t):
        assert s_r.shape == s_t.shape, what(f"{name} shape")
        assert_close(s_r, s_t, dtype, what=what(name))

    # Inference (no autograd graph) may take another code path in a backend: same results.
    with torch.no_grad():
        if mode == "padded":
            out_ng, state_ng = rnnkit_module(x, hx_arg(hx0))
        elif mode == "lengths":
            out_ng, state_ng = rnnkit_module(x, hx_arg(hx0), lengths=lengths)
        else:
            out_ng, state_ng = rnnkit_module(
                pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False),
                hx_arg(hx0))
            out_ng = out_ng.data
    assert_close(out_ng, outputs_t, dtype, what=what("output under no_grad"))
    for s_ng, s_t in zip(as_tuple(state_ng), states_t):
        assert_close(s_ng, s_t, dtype, what=what("final state under no_grad"))

    weights = random_like([outputs_t, *states_t], gen)
    weighted_loss([outputs_t, *states_t], weights).backward()
    weighted_loss([outputs_r, *states_r], weights).backward()

    assert_grad_close(x_r.grad, x_t.grad, dtype, what=what("grad of input"))
    if mode != "padded":
        for b, length in enumerate(LENGTHS):
            tail = x_r.grad[b, length:] if batch_first else x_r.grad[length:, b]
            assert torch.equal(tail, torch.zeros_like(tail)), what(f"grad of padding, sequence {b}")
    if with_hx:
        for name, g_r, g_t in zip(("h_0", "c_0"), hx_r, hx_t):
            assert_grad_close(g_r.grad, g_t.grad, dtype, what=what(f"grad of {name}"))
    assert_param_grads_match(rnnkit_module, torch_module, dtype, prefix=f"[{mode}] ")


def padded_pair(tag, kind, proj, batch_first, backend):
    """(torch module, rnnkit module, float64 input of BATCH sequences of up to STEPS): a
    two-layer bidirectional pair with equal weights, for the variable-length tests."""
    torch.manual_seed(seed_for(tag, kind, proj, batch_first))
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, bidirectional=True,
                                                  batch_first=batch_first, proj=proj,
                                                  dtype=torch.float64, backend=backend)
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    return torch_module, rnnkit_module, torch.randn(shape, dtype=torch.float64)


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_lengths_as_mask_and_list_match_torch(kind, proj, batch_first, backend):
    """``lengths=`` as a boolean mask (input's first two dims), a list of ints or a NumPy array
    (or list of NumPy ints) == torch packed."""
    dtype = torch.float64
    torch_module, rnnkit_module, x = padded_pair("mask", kind, proj, batch_first, backend)
    lengths = torch.tensor(LENGTHS)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out_packed, state_t = torch_module(packed)
    out_t, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=STEPS)
    mask = torch.arange(STEPS).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    if not batch_first:
        mask = mask.t()
    for given in (mask, list(LENGTHS), lengths.to(torch.int32), lengths.numpy(),
                  list(lengths.numpy())):
        out_r, state_r = rnnkit_module(x, lengths=given)
        assert_close(out_r, out_t, dtype, what=f"output with lengths={type(given).__name__}")
        for s_r, s_t in zip(as_tuple(state_r), as_tuple(state_t)):
            assert_close(s_r, s_t, dtype, what="final state")


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_empty_batch_matches_torch(kind, proj, batch_first, backend):
    """A batch of no sequences gives torch.nn's empty outputs, states and gradients, also with
    (empty) lengths and an (empty) hx."""
    dtype = torch.float64
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, bidirectional=True,
                                                  batch_first=batch_first, proj=proj, dtype=dtype,
                                                  backend=backend)
    shape = (0, STEPS, INPUT) if batch_first else (STEPS, 0, INPUT)
    x_t = torch.randn(shape, dtype=dtype, requires_grad=True)
    x_r = x_t.detach().clone().requires_grad_()
    out_t, state_t = torch_module(x_t)
    hx = tuple(torch.zeros_like(s) for s in as_tuple(state_t))
    for lengths in (None, torch.zeros(0, dtype=torch.int64)):
        for given_hx in (None, hx if kind == "lstm" else hx[0]):
            out_r, state_r = rnnkit_module(x_r, given_hx, lengths=lengths)
            assert out_r.shape == out_t.shape and out_r.dtype == out_t.dtype
            for s_r, s_t in zip(as_tuple(state_r), as_tuple(state_t)):
                assert s_r.shape == s_t.shape and s_r.dtype == s_t.dtype
    (out_t.sum() + sum(s.sum() for s in as_tuple(state_t))).backward()
    (out_r.sum() + sum(s.sum() for s in as_tuple(state_r))).backward()
    assert x_r.grad.shape == x_t.grad.shape
    assert_param_grads_match(rnnkit_module, torch_module, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_packed_sorted_input_matches_torch(dtype, backend):
    """A PackedSequence made with enforce_sorted=True (no sorted_indices) also round-trips."""
    torch.manual_seed(11)
    torch_module, rnnkit_module = make_layer_pair("lstm", num_layers=2, bidirectional=True,
                                                  proj=PROJ, dtype=dtype, backend=backend)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=dtype)
    lengths = sorted(LENGTHS, reverse=True)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=True)
    out_t, (h_t, c_t) = torch_module(packed)
    out_r, (h_r, c_r) = rnnkit_module(packed)
    assert isinstance(out_r, PackedSequence)
    assert out_r.sorted_indices is None and out_r.unsorted_indices is None
    assert torch.equal(out_r.batch_sizes, out_t.batch_sizes)
    assert_close(out_r.data, out_t.data, dtype, what="output")
    assert_close(h_r, h_t, dtype, what="h_n")
    assert_close(c_r, c_t, dtype, what="c_n")


# -- unbatched layer input ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_unbatched_layer_matches_torch(kind, proj, bidirectional, batch_first, with_hx, dtype,
                                      backend):
    torch.manual_seed(seed_for("unbatched", kind, proj, bidirectional, batch_first, with_hx))
    num_layers = 2
    torch_module, rnnkit_module = make_layer_pair(
        kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
        proj=proj, dtype=dtype, backend=backend,
    )
    rows = num_layers * (2 if bidirectional else 1)
    x = torch.randn(STEPS, INPUT, dtype=dtype)
    hx0 = None
    if with_hx:
        hx0 = [torch.randn(rows, proj or HIDDEN, dtype=dtype)]
        if kind == "lstm":
            hx0.append(torch.randn(rows, HIDDEN, dtype=dtype))
    results = []
    for module in (torch_module, rnnkit_module):
        x_leaf = x.clone().requires_grad_()
        hx_leaves = None if hx0 is None else [h.clone().requires_grad_() for h in hx0]
        hx = None if hx_leaves is None else (
            hx_leaves[0] if len(hx_leaves) == 1 else tuple(hx_leaves))
        out, state = module(x_leaf, hx)
        results.append((x_leaf, hx_leaves, out, as_tuple(state)))
    (x_t, hx_t, out_t, st_t), (x_r, hx_r, out_r, st_r) = results
    assert out_r.shape == out_t.shape == (STEPS, (2 if bidirectional else 1) * (proj or HIDDEN))
    assert_close(out_r, out_t, dtype, what="output")
    for s_r, s_t in zip(st_r, st_t):
        assert s_r.shape == s_t.shape
        assert_close(s_r, s_t, dtype, what="final state")
    gen = torch.Generator().manual_seed(5)
    weights = random_like([out_t, *st_t], gen)
    weighted_loss([out_t, *st_t], weights).backward()
    weighted_loss([out_r, *st_r], weights).backward()
    assert_grad_close(x_r.grad, x_t.grad, dtype, what="grad of input")
    if with_hx:
        for h_r, h_t in zip(hx_r, hx_t):
            assert_grad_close(h_r.grad, h_t.grad, dtype, what="grad of hx")
    assert_param_grads_match(rnnkit_module, torch_module, dtype)


# -- cells -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_matches_torch(kind, bias, batched, with_hx, dtype):
    torch.manual_seed(seed_for("cell", kind, bias, batched, with_hx))
    torch_cell, rnnkit_cell = make_cell_pair(kind, bias=bias, dtype=dtype)
    lead = (BATCH,) if batched else ()
    x = torch.randn(*lead, INPUT, dtype=dtype)
    hx0 = None
    if with_hx:
        hx0 = [torch.randn(*lead, HIDDEN, dtype=dtype)
               for _ in range(2 if kind == "lstm" else 1)]
    results = []
    for cell in (torch_cell, rnnkit_cell):
        x_leaf = x.clone().requires_grad_()
        hx_leaves = None if hx0 is None else [h.clone().requires_grad_() for h in hx0]
        hx = None if hx_leaves is None else (
            hx_leaves[0] if len(hx_leaves) == 1 else tuple(hx_leaves))
        out = as_tuple(cell(x_leaf, hx))
        results.append((x_leaf, hx_leaves, out))
    (x_t, hx_t, out_t), (x_r, hx_r, out_r) = results
    assert len(out_r) == len(out_t)
    for o_r, o_t in zip(out_r, out_t):
        assert o_r.shape == o_t.shape == (*lead, HIDDEN)
        assert_close(o_r, o_t, dtype, what="cell output")
    weights = random_like(out_t, torch.Generator().manual_seed(3))
    weighted_loss(out_t, weights).backward()
    weighted_loss(out_r, weights).backward()
    assert_grad_close(x_r.grad, x_t.grad, dtype, what="grad of input")
    if with_hx:
        for h_r, h_t in zip(hx_r, hx_t):
            assert_grad_close(h_r.grad, h_t.grad, dtype, what="grad of hx")
    r_params = dict(rnnkit_cell.named_parameters())
    t_params = dict(torch_cell.named_parameters())
    assert list(r_params) == list(t_params)
    for name, p_t in t_params.items():
        assert_grad_close(r_params[name].grad, p_t.grad, dtype, what=f"grad of {name}")


# -- interop ----------------------------------------------------------------------------------
INTEROP_LAYERS = [
    ("rnn_tanh", 0, 2, True), ("rnn_relu", 0, 2, False), ("lstm", 0, 2, True),
    ("lstm", PROJ, 3, True), ("gru", 0, 2, True), ("gru", 0, 1, False),
]


def _torch_layer(kind, proj, num_layers, bidirectional, bias=True, batch_first=False):
    torch_cls, _, kwargs = layer_kwargs(
        kind, proj, input_size=INPUT, hidden_size=HIDDEN, num_layers=num_layers, bias=bias,
        batch_first=batch_first, bidirectional=bidirectional, dtype=torch.float64,
    )
    return torch_cls(**kwargs)


def _rnnkit_layer(kind, proj, num_layers, bidirectional, bias=True, batch_first=False):
    _, rnnkit_cls, kwargs = layer_kwargs(
        kind, proj, input_size=INPUT, hidden_size=HIDDEN, num_layers=num_layers, bias=bias,
        batch_first=batch_first, bidirectional=bidirectional, dtype=torch.float64,
    )
    return rnnkit_cls(**kwargs)


def _assert_same_run(module_a, module_b, x, what):
    out_a, state_a = module_a(x)
    out_b, state_b = module_b(x)
    assert_close(out_b, out_a, torch.float64, what=f"{what} output")
    for s_a, s_b in zip(as_tuple(state_a), as_tuple(state_b)):
        assert_close(s_b, s_a, torch.float64, what=f"{what} final state")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind,proj,num_layers,bidirectional", INTEROP_LAYERS)
def test_from_torch_layer(kind, proj, num_layers, bidirectional, bias):
    torch.manual_seed(seed_for("from_torch", kind, proj, num_layers, bidirectional, bias))
    torch_module = _torch_layer(kind, proj, num_layers, bidirectional, bias, batch_first=True)
    converted = from_torch(torch_module)
    expected_cls = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[kind.split("_")[0]]
    assert isinstance(converted, expected_cls)
    assert converted.batch_first and converted.bidirectional == bidirectional
    assert list(converted.state_dict()) == list(torch_module.state_dict())
    # The weights are copied, not shared.
    for name, p in torch_module.named_parameters():
        assert getattr(converted, name).data_ptr() != p.data_ptr()
    x = torch.randn(BATCH, STEPS, INPUT, dtype=torch.float64)
    _assert_same_run(torch_module, converted, x, "from_torch")
    lengths = torch.tensor(LENGTHS)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_t, _ = torch_module(packed)
    out_r, _ = converted(packed)
    assert_close(out_r.data, out_t.data, torch.float64, what="from_torch packed output")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind,proj,num_layers,bidirectional", INTEROP_LAYERS)
def test_to_torch_layer(kind, proj, num_layers, bidirectional, bias):
    torch.manual_seed(seed_for("to_torch", kind, proj, num_layers, bidirectional, bias))
    rnnkit_module = _rnnkit_layer(kind, proj, num_layers, bidirectional, bias)
    converted = to_torch(rnnkit_module)
    expected_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind.split("_")[0]]
    assert type(converted) is expected_cls
    if kind.startswith("rnn"):
        assert converted.nonlinearity == kind.split("_")[1]
    assert list(converted.state_dict()) == list(rnnkit_module.state_dict())
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    _assert_same_run(rnnkit_module, converted, x, "to_torch")


@pytest.mark.parametrize("options", [
    {}, {"num_layers": 2, "batch_first": True, "proj": 3}, {"bias": False},
    {"dropout": 0.25, "bidirectional": True, "num_layers": 2},
], ids=["defaults", "proj-layers-batch_first", "nobias", "dropout-bidirectional"])
@pytest.mark.parametrize("kind", KINDS)
def test_layer_repr_is_torch_nn_s_one_line(kind, options):
    """A preset printed its inner tree (stack, layers, cells; 30 lines for a two-layer
    bidirectional GRU) after a header in another order than torch.nn's. Oracle: torch.nn's
    repr, plus rnnkit's own backend setting when it is not the default."""
    if options.get("proj") and kind != "lstm":
        pytest.skip("proj_size is an LSTM option (torch.nn refuses it elsewhere)")
    torch_module, rnnkit_module = make_layer_pair(kind, **options)
    assert repr(rnnkit_module) == repr(torch_module)
    other_backend = make_layer_pair(kind, **options, backend="reference")[1]
    assert repr(other_backend) == repr(torch_module)[:-1] + ", backend='reference')"
    model = torch.nn.Sequential(rnnkit_module)
    assert repr(model) == repr(torch.nn.Sequential(torch_module))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_repr_matches_torch(kind, bias):
    """RNNCell printed nonlinearity='relu' where torch.nn prints nonlinearity=relu."""
    torch_cell, rnnkit_cell = make_cell_pair(kind, bias=bias)
    assert repr(rnnkit_cell) == repr(torch_cell)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_from_and_to_torch_cell(kind, bias):
    torch.manual_seed(seed_for("cell_interop", kind, bias))
    torch_cell, _ = make_cell_pair(kind, bias=bias)
    converted = from_torch(torch_cell)
    expected_cls = {"rnn": rnnkit.RNNCell, "lstm": rnnkit.LSTMCell, "gru": rnnkit.GRUCell}
    assert type(converted) is expected_cls[kind.split("_")[0]]
    x = torch.randn(BATCH, INPUT, dtype=torch.float64)
    hx = torch.randn(BATCH, HIDDEN, dtype=torch.float64)
    hx = (hx, torch.randn(BATCH, HIDDEN, dtype=torch.float64)) if kind == "lstm" else hx
    for o_t, o_r in zip(as_tuple(torch_cell(x, hx)), as_tuple(converted(x, hx))):
        assert_close(o_r, o_t, torch.float64, what="from_torch cell")
    for o_t, o_r in zip(as_tuple(torch_cell(x[0])), as_tuple(converted(x[0]))):
        assert_close(o_r, o_t, torch.float64, what="from_torch cell unbatched")
    for name, p in torch_cell.named_parameters():  # copied, not shared
        assert converted.get_parameter(name).data_ptr() != p.data_ptr()

    # to_torch on an independently initialised rnnkit cell.
    _, rnnkit_cell = make_cell_pair(kind, bias=bias)
    with torch.no_grad():
        for p in rnnkit_cell.parameters():
            p.uniform_(-0.7, 0.7)
    back = to_torch(rnnkit_cell)
    expected_torch = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
    assert type(back) is expected_torch[kind.split("_")[0]]
    for o_r, o_t in zip(as_tuple(rnnkit_cell(x, hx)), as_tuple(back(x, hx))):
        assert_close(o_t, o_r, torch.float64, what="to_torch cell")
    for o_r, o_t in zip(as_tuple(rnnkit_cell(x[0])), as_tuple(back(x[0]))):
        assert_close(o_t, o_r, torch.float64, what="to_torch cell unbatched")


def test_round_trip_preserves_training_flag_and_dropout():
    torch.manual_seed(0)
    torch_module = nn.GRU(INPUT, HIDDEN, num_layers=2, dropout=0.25, dtype=torch.float64).eval()
    converted = from_torch(torch_module)
    assert not converted.training and converted.dropout == 0.25
    back = to_torch(converted)
    assert not back.training and back.dropout == 0.25
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    _assert_same_run(torch_module, back, x, "round trip")


def test_to_torch_rejects_projected_lstm_cell():
    """torch.nn.LSTMCell has no projection: converting one with proj_size > 0 must refuse."""
    with pytest.raises(ValueError, match="proj_size"):
        to_torch(rnnkit.LSTMCell(INPUT, HIDDEN, proj_size=PROJ))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
def test_seeded_training_dropout_draws_torchs_masks(kind, bidirectional, batch_first):
    """The presets draw torch.nn's dropout masks: same seed, same output and gradients. A
    bidirectional batch-first layer's output is batch-major in memory, and the masks were
    drawn in that order rather than torch.nn's time-major one."""
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=3, dropout=0.5,
                                                  bidirectional=bidirectional,
                                                  batch_first=batch_first)
    torch_module.train(), rnnkit_module.train()
    x = torch.randn(BATCH, STEPS, INPUT, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1).contiguous()
    results = []
    for module in (torch_module, rnnkit_module):
        torch.manual_seed(11)
        output = module(x)[0]
        results.append((output, *torch.autograd.grad(output.square().sum(),
                                                     list(module.parameters()))))
    for name, ours, theirs in zip(["output"] + [n for n, _ in torch_module.named_parameters()],
                                  results[1], results[0]):
        assert_close(ours, theirs, torch.float64, what=name)


@pytest.mark.parametrize("convert", [from_torch, to_torch])
@pytest.mark.parametrize("module", [torch.nn.Identity(), torch.nn.Linear(2, 2)],
                         ids=["no-parameters", "linear"])
def test_conversion_refuses_other_modules_by_name(convert, module):
    """A module without parameters raised a bare StopIteration before the type check."""
    with pytest.raises(TypeError, match=f"got {type(module).__name__}$"):
        convert(module)


@pytest.mark.parametrize("direction", ["from_torch", "to_torch"])
def test_conversion_keeps_frozen_parameters_frozen(direction):
    """requires_grad=False came out True, so a frozen layer trained after conversion."""
    torch_module, rnnkit_module = make_layer_pair("lstm", num_layers=2, bidirectional=True)
    source = torch_module if direction == "from_torch" else rnnkit_module
    for name in ("weight_ih_l0", "bias_hh_l1_reverse"):
        getattr(source, name).requires_grad_(False)
    converted = (from_torch if direction == "from_torch" else to_torch)(source)
    frozen = {n for n, p in converted.state_dict(keep_vars=True).items() if not p.requires_grad}
    assert frozen == {"weight_ih_l0", "bias_hh_l1_reverse"}


@pytest.mark.parametrize("direction", ["from_torch", "to_torch"])
def test_conversion_refuses_a_parametrized_module(direction):
    """Its weights are computed; the converted module would hold the wrong ones."""
    from torch.nn.utils import parametrizations

    torch_module, rnnkit_module = make_layer_pair("gru")
    if direction == "from_torch":
        parametrizations.weight_norm(torch_module, "weight_hh_l0")
        source = torch_module
    else:
        parametrizations.weight_norm(*rnnkit_module.torch_parameter_owner("weight_hh_l0"))
        source = rnnkit_module
    with pytest.raises(TypeError, match="cannot convert a module with parametrizations") as info:
        (from_torch if direction == "from_torch" else to_torch)(source)
    assert "\n" not in str(info.value)


class _ReluLSTM(torch.nn.LSTM):
    def forward(self, input, hx=None):
        output, state = super().forward(input, hx)
        return output.relu(), state


class _ReluRnnkitLSTM(rnnkit.LSTM):
    def forward(self, input, hx=None, **options):
        output, state = super().forward(input, hx, **options)
        return output.relu(), state


class _NamedLSTM(torch.nn.LSTM):
    """A subclass that only adds a method: it computes what nn.LSTM does."""

    def describe(self) -> str:
        return "named"


def _hooked(module):
    module.register_forward_hook(lambda m, inputs, output: (output[0] * 0, output[1]))
    return module


def _pruned(module):
    import torch.nn.utils.prune as prune

    owner = (module, "weight_hh_l0") if isinstance(module, torch.nn.LSTM) else \
        module.torch_parameter_owner("weight_hh_l0")
    prune.l1_unstructured(*owner, amount=0.5)
    return module


def _tied(module):
    if isinstance(module, torch.nn.LSTM):
        module.weight_ih_l1 = module.weight_ih_l0
    else:
        module.stack.layers[1].cell.weight_ih = module.stack.layers[0].cell.weight_ih
    return module


def _with_a_buffer(module):
    module.register_buffer("running_mean", torch.zeros(3))
    return module


@pytest.mark.parametrize("make, message", [
    (lambda: _hooked(torch.nn.LSTM(4, 4, 2)), "cannot carry hooks over"),
    (lambda: _hooked(rnnkit.LSTM(4, 4, 2)), "cannot carry hooks over"),
    (lambda: _ReluLSTM(4, 4, 2), "a subclass of LSTM with its own forward"),
    (lambda: _ReluRnnkitLSTM(4, 4, 2), "a subclass of LSTM with its own forward"),
    (lambda: _pruned(torch.nn.LSTM(4, 4, 2)), "cannot convert a pruned module"),
    (lambda: _pruned(rnnkit.LSTM(4, 4, 2)), "cannot convert a pruned module"),
    (lambda: _tied(torch.nn.LSTM(4, 4, 2)), "weights weight_ih_l0 and weight_ih_l1 are one"),
    (lambda: _tied(rnnkit.LSTM(4, 4, 2)), "are one tensor \\(tied\\)"),
    (lambda: _with_a_buffer(torch.nn.LSTM(4, 4, 2)), "no place for \\(running_mean\\)"),
], ids=["hook", "hook-rnnkit", "subclass", "subclass-rnnkit", "pruned", "pruned-rnnkit",
        "tied", "tied-rnnkit", "buffer"])
def test_conversion_refuses_what_the_converted_module_would_not_compute(make, message):
    """Hooks, an overridden forward, pruning and tied weights were dropped without a word (the
    converted LSTM gave other outputs), or failed with torch's multi-line load_state_dict
    error (found by fuzzing, 2026-12-06): each is now one line naming what would be lost."""
    source = make()
    convert = from_torch if isinstance(source, torch.nn.LSTM) else to_torch
    with pytest.raises(TypeError, match=message) as info:
        convert(source)
    assert "\n" not in str(info.value)


def test_a_subclass_that_keeps_forward_converts_as_its_class():
    torch.manual_seed(0)
    source = _NamedLSTM(4, 5, 2)
    converted = from_torch(source)
    x = torch.randn(3, 2, 4)
    assert_close(converted(x)[0], source(x)[0], torch.float32)


@pytest.mark.parametrize("norm", ["weight_norm", "spectral_norm"])
def test_conversion_refuses_the_older_hook_based_norms(norm):
    """torch.nn.utils.weight_norm / spectral_norm (forward pre-hooks, weight_g/weight_v keys)
    failed inside load_state_dict with a multi-line error."""
    import warnings

    torch_module, _ = make_layer_pair("lstm")
    torch_cell = torch.nn.LSTMCell(3, 4)
    with warnings.catch_warnings():  # torch deprecates weight_norm in favour of parametrizations
        warnings.simplefilter("ignore")
        for module, name in ((torch_module, "weight_hh_l0"), (torch_cell, "weight_hh")):
            getattr(torch.nn.utils, norm)(module, name)
    for module in (torch_module, torch_cell):
        with pytest.raises(TypeError, match=f"cannot convert a module with .*{norm}") as info:
            from_torch(module)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_all_weights_and_parameter_names_match_torch(kind, proj):
    torch.manual_seed(seed_for("all_weights", kind, proj))
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, bidirectional=True,
                                                  proj=proj)
    torch_groups, rnnkit_groups = torch_module.all_weights, rnnkit_module.all_weights
    assert len(rnnkit_groups) == len(torch_groups) == 4  # (layer, direction) pairs
    for group_r, group_t in zip(rnnkit_groups, torch_groups):
        assert len(group_r) == len(group_t)
        for p_r, p_t in zip(group_r, group_t):
            assert torch.equal(p_r, p_t)
    for name, p_t in torch_module.named_parameters():
        assert torch.equal(getattr(rnnkit_module, name), p_t), name
    # Parameters come in torch's order, so optimizer state lines up too.
    assert [p.shape for p in rnnkit_module.parameters()] == [p.shape for p in torch_module.parameters()]


@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_reset_parameters_draws_torchs_weights(kind, proj):
    """The presets had no reset_parameters (AttributeError). Oracle: torch.nn's, same seed."""
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, bidirectional=True,
                                                  proj=proj)
    for module in (torch_module, rnnkit_module):
        torch.manual_seed(seed_for("reset", kind, proj))
        module.reset_parameters()
    ours, theirs = rnnkit_module.state_dict(), torch_module.state_dict()
    assert [k for k in theirs if not torch.equal(ours[k], theirs[k])] == []


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_all_weights_of_a_parametrized_module_match_torch(kind):
    """all_weights looked a parametrized weight up as a parameter and raised AttributeError
    (masked as "no attribute 'all_weights'"). Oracle: torch.nn's computed weights."""
    from torch.nn.utils import parametrizations

    torch_module, rnnkit_module = make_layer_pair(kind)
    parametrizations.orthogonal(torch_module, "weight_hh_l0")
    parametrizations.orthogonal(*rnnkit_module.torch_parameter_owner("weight_hh_l0"))
    rnnkit_module.load_state_dict(torch_module.state_dict())
    for group_r, group_t in zip(rnnkit_module.all_weights, torch_module.all_weights, strict=True):
        for p_r, p_t in zip(group_r, group_t, strict=True):
            torch.testing.assert_close(p_r, p_t)
    for p_r, p_t in zip(rnnkit_module.parameters(), torch_module.parameters()):
        assert torch.equal(p_r, p_t)


@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_parameters_assigned_under_torch_names_reach_the_computation(kind, proj, backend):
    """``module.weight_hh_l0 = Parameter(...)`` and torch.func.functional_call with torch's
    parameter names act as on torch.nn (they were a KeyError and a silent no-op)."""
    torch.manual_seed(seed_for("assign", kind, proj))
    dtype = torch.float64
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, bidirectional=True,
                                                  proj=proj, dtype=dtype, backend=backend)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=dtype)
    replacement = torch.randn_like(torch_module.weight_hh_l1_reverse)
    for module in (torch_module, rnnkit_module):
        module.weight_hh_l1_reverse = nn.Parameter(replacement.clone())
    assert_close(rnnkit_module(x)[0], torch_module(x)[0], dtype, what="output after assignment")
    assert torch.equal(rnnkit_module.state_dict()["weight_hh_l1_reverse"], replacement)

    params = {name: torch.randn_like(p, requires_grad=True)
              for name, p in torch_module.named_parameters()}
    out_t = torch.func.functional_call(torch_module, params, (x,))[0]
    out_r = torch.func.functional_call(rnnkit_module, params, (x,))[0]
    assert_close(out_r, out_t, dtype, what="functional_call output")
    grads_t = torch.autograd.grad(out_t.sum(), list(params.values()))
    grads_r = torch.autograd.grad(out_r.sum(), list(params.values()))
    for name, g_r, g_t in zip(params, grads_r, grads_t):
        assert_grad_close(g_r, g_t, dtype, what=f"functional_call grad of {name}")
    # afterwards the module computes with its own parameters again
    assert all(isinstance(p, nn.Parameter) for p in rnnkit_module.parameters())
    assert_close(rnnkit_module(x)[0], torch_module(x)[0], dtype, what="output after the call")


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_names_keys_as_torch_does(kind):
    """Missing keys and size mismatches are reported under torch's names, word for word."""
    torch_module, rnnkit_module = make_layer_pair(kind, bidirectional=True)
    state = torch_module.state_dict()
    del state["weight_ih_l0_reverse"]
    outcomes = [module.load_state_dict(dict(state), strict=False)
                for module in (torch_module, rnnkit_module)]
    assert outcomes[0] == outcomes[1]
    state["weight_ih_l0_reverse"] = torch.zeros(2, 2)
    state["bogus"] = torch.zeros(1)
    messages = []
    for module in (torch_module, rnnkit_module):
        with pytest.raises(RuntimeError) as raised:
            module.load_state_dict(state)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_parametrization_mismatch_is_reported_under_torchs_names(kind):
    """A parametrized state_dict loaded into a plain module, and a plain one into a
    parametrized module: the unexpected and missing keys named the cell's internals
    (stack.layers.0.cell.parametrizations...). Oracle: torch.nn's keys for the same loads."""
    from torch.nn.utils import parametrizations

    plain_torch, plain_ours = make_layer_pair(kind, num_layers=2)
    para_torch, para_ours = make_layer_pair(kind, num_layers=2)
    parametrizations.orthogonal(para_torch, "weight_hh_l1")
    parametrizations.orthogonal(*para_ours.torch_parameter_owner("weight_hh_l1"))
    for source, theirs, ours in ((para_torch, plain_torch, plain_ours),
                                 (plain_torch, para_torch, para_ours)):
        expected = theirs.load_state_dict(source.state_dict(), strict=False)
        got = ours.load_state_dict(source.state_dict(), strict=False)
        assert expected.missing_keys and expected.unexpected_keys  # the mismatch is real
        assert (sorted(got.missing_keys), sorted(got.unexpected_keys)) == (
            sorted(expected.missing_keys), sorted(expected.unexpected_keys))


@pytest.mark.parametrize("backend", ["reference", "fused"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_final_states_can_be_detached_in_place_like_torch(kind, backend):
    """Truncated-BPTT code often calls ``h.detach_()`` on the returned state; torch.nn's h_n is
    its own tensor, so that works there and must work here (an h_n that is a view of the
    kernel's output would raise "Can't detach views in-place")."""
    if backend == "fused" and rnnkit.backends.BACKENDS["fused"].unavailable():
        pytest.skip("the fused kernels do not build on this machine")
    torch_layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind](INPUT, HIDDEN)
    layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[kind](
        INPUT, HIDDEN, backend=backend)
    x = torch.randn(STEPS, BATCH, INPUT, requires_grad=True)
    for module in (torch_layer, layer):
        _, hidden = module(x)
        for state in hidden if isinstance(hidden, tuple) else (hidden,):
            state.detach_()
            assert not state.requires_grad


def _relu_in_place(out):
    nn.functional.relu(out, inplace=True)


def _zero_a_unit_and_scale(out):
    out[..., 0] = 0.0
    out.mul_(2.0)


@pytest.mark.parametrize("edit", [_relu_in_place, _zero_a_unit_and_scale], ids=["relu_", "setitem"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_output_edited_in_place_still_backpropagates_like_torch(kind, dtype, edit, backend):
    """``F.relu(out, inplace=True)`` or ``out[..., 0] = 0`` on the returned output: torch.nn's
    GRU and RNN (and its float64 LSTM) backpropagate through the edit; so must rnnkit, to the
    same gradients. (torch's float32 LSTM on CPU refuses it; rnnkit is compared with its
    float64 result then.)"""
    torch_module, rnnkit_module = make_layer_pair(kind, dtype=dtype, backend=backend)
    oracle_module = torch_module
    if kind == "lstm" and dtype == torch.float32:
        oracle_module = torch_module.double()
    x = torch.randn(STEPS, BATCH, INPUT, dtype=dtype)
    grads = []
    for module in (oracle_module, rnnkit_module):
        inputs = x.to(next(module.parameters()).dtype).requires_grad_()
        out, _ = module(inputs)
        edit(out)
        (out * torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
        grads.append(inputs.grad)
    assert_close(grads[1], grads[0].to(dtype), dtype, what="input gradient after in-place edits")


@pytest.mark.parametrize("kind", KINDS)
def test_settings_changed_after_construction_take_effect_like_torch(kind, backend):
    """torch.nn reads batch_first and dropout at every call; code that changes them later (a
    model switched to batch_first, dropout off for fine-tuning) must get torch's result."""
    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, dropout=0.5,
                                                  backend=backend)
    torch_module.batch_first = rnnkit_module.batch_first = True
    torch_module.dropout = rnnkit_module.dropout = 0.0  # both in training mode
    x = torch.randn(BATCH, STEPS, INPUT, dtype=torch.float64)
    expected, rnnkit_out = torch_module(x), rnnkit_module(x)
    assert_close(rnnkit_out[0], expected[0], torch.float64, what="output after the changes")
    for a, e in zip(as_tuple(rnnkit_out[1]), as_tuple(expected[1])):
        assert a.shape == e.shape
        assert_close(a, e, torch.float64, what="final state after the changes")
    rnnkit_module.dropout = 0.5  # and back on: two calls now differ, as torch's do
    assert not torch.equal(rnnkit_module(x)[0], rnnkit_module(x)[0])
    rnnkit_module.backend = "reference"
    assert {m.backend for m in rnnkit_module.modules() if isinstance(m, rnnkit.Recurrent)} == {
        "reference"}
    with pytest.raises(ValueError, match="backend"):
        rnnkit_module.backend = "gpu"


@pytest.mark.parametrize("kind", KINDS)
def test_jit_trace_checks_and_a_module_traced_without_grad_trains(kind, backend):
    """Oracle: the eager module's output and input gradient."""
    _, layer = make_layer_pair(kind, num_layers=2, dtype=torch.float32, backend=backend)
    x = torch.randn(STEPS, BATCH, INPUT)
    with warnings.catch_warnings():
        # TracerWarnings for the Python-side shape checks; torch 2.13 deprecates jit.trace
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(layer, (x,))  # its check reruns the graph under no_grad
        with torch.no_grad():
            traced_without_grad = torch.jit.trace(layer, (x,))
    eager_x, traced_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager_out = layer(eager_x)[0]
    eager_out.sum().backward()
    traced_out = traced_without_grad(traced_x)[0]
    traced_out.sum().backward()
    assert_close(traced_out, eager_out, torch.float32, what="traced output")
    assert_close(traced_x.grad, eager_x.grad, torch.float32, what="traced input gradient")
    assert_close(traced(x)[0], eager_out, torch.float32, what="traced (with grad) output")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_trace_of_the_reference_loop_says_it_fixes_t(kind, backend):
    """torch.jit.trace unrolls the reference backend's loop: the trace replays T steps and cut
    a longer sequence short without a word (torch.nn's trace takes any T). It now warns while
    tracing; the fused op traces as one call and takes any T. Oracle: the eager module at the
    other length."""
    _, layer = make_layer_pair(kind, dtype=torch.float32, backend=backend)
    x, longer = torch.randn(5, BATCH, INPUT), torch.randn(7, BATCH, INPUT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(layer, (x,), check_trace=False)
    fixed = [w for w in caught if "runs exactly T=5 steps" in str(w.message)]
    uses_loop = backend == "reference"
    assert bool(fixed) is uses_loop
    assert all(issubclass(w.category, torch.jit.TracerWarning) for w in fixed)
    with torch.no_grad():
        eager = layer(longer)[0]
        replayed = traced(longer)[0]
    if uses_loop:
        assert replayed.shape[0] == 5  # what the warning says
    else:
        assert_close(replayed, eager, torch.float32, what="traced output at T=7")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_parametrization_on_the_torch_named_owner_matches_torch(kind):
    """Orthogonal recurrent weights as torch users write them, via torch_parameter_owner.
    Oracle: torch.nn with the same parametrization and, loaded from its state_dict, the same
    weights; the state_dict is torch's, parametrizations included (saving raised a KeyError)."""
    from torch.nn.utils import parametrizations

    torch_module, rnnkit_module = make_layer_pair(kind, num_layers=2, bidirectional=True)
    torch.manual_seed(4)
    for name in ("weight_hh_l0", "weight_hh_l1_reverse"):
        parametrizations.orthogonal(torch_module, name)
        parametrizations.orthogonal(*rnnkit_module.torch_parameter_owner(name))
    theirs = torch_module.state_dict()
    assert "parametrizations.weight_hh_l0.original" in theirs
    rnnkit_module.load_state_dict(theirs)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    assert_close(rnnkit_module(x)[0], torch_module(x)[0], torch.float64, what="output")
    ours = rnnkit_module.state_dict()
    assert list(ours) == list(theirs)
    assert [key for key in theirs if not torch.equal(ours[key], theirs[key])] == []
    with pytest.raises(KeyError, match="no parameter 'weight_hh_l9'.*weight_ih_l0"):
        rnnkit_module.torch_parameter_owner("weight_hh_l9")


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_non_finite_padding_is_never_read(kind, proj, batch_first, backend):
    """NaN and Inf past each length (what a padded batch may hold) change nothing: outputs,
    states and every gradient equal torch.nn's on the packed sequence, which never reads them.
    The input projection used to run over the padding, and 0 * NaN poisoned the gradients."""
    dtype = torch.float64
    torch_module, rnnkit_module, x = padded_pair("nan-padding", kind, proj, batch_first, backend)
    for b, length in enumerate(LENGTHS):
        padding = x[b, length:] if batch_first else x[length:, b]
        padding.fill_(float("nan"))
        padding[..., :1] = float("inf")
    x_t = x.clone().requires_grad_()
    x_r = x.clone().requires_grad_()
    lengths = torch.tensor(LENGTHS)
    packed = pack_padded_sequence(x_t, lengths, batch_first=batch_first, enforce_sorted=False)
    out_packed, state_t = torch_module(packed)
    out_t, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=STEPS)
    out_r, state_r = rnnkit_module(x_r, lengths=lengths)
    assert_close(out_r, out_t, dtype, what="output")
    for s_r, s_t in zip(as_tuple(state_r), as_tuple(state_t)):
        assert_close(s_r, s_t, dtype, what="final state")
    (out_t.sum() + sum(s.sum() for s in as_tuple(state_t))).backward()
    (out_r.sum() + sum(s.sum() for s in as_tuple(state_r))).backward()
    assert_grad_close(x_r.grad, x_t.grad, dtype, what="grad of input")
    assert_param_grads_match(rnnkit_module, torch_module, dtype)


@pytest.mark.parametrize("backend", ["reference", "fused"])
@pytest.mark.parametrize("utility", ["prune", "weight_norm"])
def test_hook_based_weight_utilities_recompute_the_weight_every_call(utility, backend):
    """torch.nn.utils.prune and the older weight_norm recompute the weight in a forward
    pre-hook; the layer never called the cell's forward, so it ran on the weight computed at
    registration (stale after the first optimizer step; weight_norm's second backward
    failed). Oracle: torch.nn.LSTM with the same utility, trained side by side with SGD."""
    if backend == "fused" and rnnkit.backends.BACKENDS["fused"].unavailable():
        pytest.skip(f"fused kernels unavailable: {rnnkit.backends.BACKENDS['fused'].unavailable()}")
    import torch.nn.utils.prune as prune

    torch.manual_seed(0)
    oracle = torch.nn.LSTM(3, 4)
    ours = rnnkit.LSTM(3, 4, backend=backend)
    ours.load_state_dict(oracle.state_dict())
    owner = ours.torch_parameter_owner("weight_hh_l0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # weight_norm's deprecation
        if utility == "prune":
            prune.l1_unstructured(oracle, "weight_hh_l0", amount=0.5)
            prune.l1_unstructured(*owner, amount=0.5)
        else:
            torch.nn.utils.weight_norm(oracle, "weight_hh_l0")
            torch.nn.utils.weight_norm(*owner)
    x = torch.randn(5, 2, 3)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (oracle, ours)]
    for _ in range(3):
        outputs = []
        for module, optimizer in zip((oracle, ours), optimizers):
            output = module(x)[0]
            optimizer.zero_grad()
            output.pow(2).sum().backward()
            optimizer.step()
            outputs.append(output.detach())
        assert_close(outputs[1], outputs[0], dtype=torch.float32)


@pytest.mark.parametrize("utility", ["prune", "weight_norm", "spectral_norm"])
def test_a_hook_based_utility_leaves_torch_state_dict_keys(utility):
    """A weight pruned (or old-style weight_norm'd) through its owner saved its state as
    ``stack.layers.0.cell.weight_hh_orig`` / ``_mask``, which torch.nn.LSTM refused to load
    and vice versa. Oracle: torch.nn.LSTM given the same utility on the same weights: the same
    keys in the same order, loading both ways, and equal outputs after the round trip."""
    import torch.nn.utils.prune as prune

    torch.manual_seed(0)
    oracle = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours.load_state_dict(oracle.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the older utilities are deprecated
        for name in ("weight_hh_l0", "weight_ih_l1_reverse"):
            for module, owner in ((oracle, (oracle, name)),
                                  (ours, ours.torch_parameter_owner(name))):
                if utility == "prune":
                    prune.l1_unstructured(*owner, amount=0.5)
                else:
                    getattr(torch.nn.utils, utility)(*owner)
    assert list(ours.state_dict()) == list(oracle.state_dict())
    x = torch.randn(5, 2, 3)
    ours.eval(), oracle.eval()  # spectral_norm's power iteration runs in training mode only
    copy = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for name in ("weight_hh_l0", "weight_ih_l1_reverse"):
            owner = copy.torch_parameter_owner(name)
            if utility == "prune":
                prune.identity(*owner)
            else:
                getattr(torch.nn.utils, utility)(*owner)
    oracle.load_state_dict(ours.state_dict())  # rnnkit -> torch.nn -> rnnkit
    copy.load_state_dict(oracle.state_dict())
    copy.eval()
    assert_close(copy(x)[0], oracle(x)[0], dtype=torch.float32)
    assert_close(ours(x)[0], oracle(x)[0], dtype=torch.float32)


@pytest.mark.parametrize("kind,proj", LAYER_CONFIGS,
                         ids=[f"{k}{'_proj' if p else ''}" for k, p in LAYER_CONFIGS])
def test_named_torch_parameters_are_torch_named_parameters(kind, proj):
    """Oracle: torch.nn's named_parameters() on the same layer given the same utilities (a
    parametrization and a prune, each on another weight): the same names in the same order,
    holding equal values, and the very Parameters that parameters() yields (its order
    differs once a utility has moved a weight: each cell's come together)."""
    import torch.nn.utils.prune as prune
    from torch.nn.utils import parametrizations

    torch.manual_seed(seed_for("named_torch_parameters", kind, proj))
    oracle, ours = make_layer_pair(kind, num_layers=2, bidirectional=True, proj=proj)
    for module, owner in ((oracle, (oracle, "weight_hh_l1")),
                          (ours, ours.torch_parameter_owner("weight_hh_l1"))):
        parametrizations.orthogonal(*owner)
    ours.load_state_dict(oracle.state_dict())
    for module, owner in ((oracle, (oracle, "weight_ih_l0_reverse")),
                          (ours, ours.torch_parameter_owner("weight_ih_l0_reverse"))):
        prune.l1_unstructured(*owner, amount=0.3)
    expected = list(oracle.named_parameters())
    named = list(ours.named_torch_parameters(prefix="rnn."))
    assert [name for name, _ in named] == ["rnn." + name for name, _ in expected]
    for (_, ours_value), (name, oracle_value) in zip(named, expected):
        assert torch.equal(ours_value, oracle_value), name
    assert sorted(id(p) for _, p in named) == sorted(id(p) for p in ours.parameters())
    assert list(ours.state_dict()) == list(oracle.state_dict())


def test_pruning_a_torch_name_on_the_preset_is_refused_and_changes_nothing():
    """prune on the preset itself registered ``weight_hh_l0_orig`` (the cell's weight, a second
    time) and then failed with a bare KeyError, leaving an extra state_dict key. Oracle: the
    preset's state_dict keys before the call, which are torch.nn.LSTM's."""
    import torch.nn.utils.prune as prune

    ours = rnnkit.LSTM(3, 4, num_layers=2)
    keys_before = list(ours.state_dict())
    assert keys_before == list(torch.nn.LSTM(3, 4, num_layers=2).state_dict())
    with pytest.raises(ValueError, match=r"prune its owner: prune\.l1_unstructured\(\*model\."
                                         r"torch_parameter_owner\('weight_hh_l1'\)"):
        prune.l1_unstructured(ours, "weight_hh_l1", amount=0.5)
    assert list(ours.state_dict()) == keys_before
    assert not ours._forward_pre_hooks
    # other names still register as on any module
    ours.register_parameter("scale_orig", torch.nn.Parameter(torch.ones(1)))
    assert "scale_orig" in dict(ours.named_parameters())


def test_a_cell_pre_hook_that_changes_the_arguments_is_refused():
    """A layer cannot pass new arguments on to a cell it runs without calling its forward.
    Oracle: the hook's own return value is what the error names."""
    layer = rnnkit.GRU(3, 4, backend="reference")
    cell = layer.stack.layers[0].cell
    cell.register_forward_pre_hook(lambda module, args: (args[0] * 2, args[1]))
    with pytest.raises(ValueError, match="returned new arguments, which a layer cannot pass on"):
        layer(torch.randn(5, 2, 3))
    calls = []
    cell._forward_pre_hooks.clear()
    cell.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape))
    layer(torch.randn(5, 2, 3))
    assert calls == [torch.Size([5, 2, 3])]  # once per call, with the whole sequence


@pytest.mark.parametrize("mistake", ["dtype", "input_size", "hx_shape", "cell_input_size",
                                     "cell_hx_shape", "hx_dtype", "packed_dtype", "int_input",
                                     "no_steps", "float_size", "cell_dtype", "cell_hx_dtype",
                                     "cell_int_input"])
def test_a_mistake_raises_an_error_torch_nn_s_except_clause_catches(mistake):
    """rnnkit raised TypeError where torch.nn raises ValueError (input dtype) and ValueError
    where it raises RuntimeError (input_size, hx's shape): code written against torch.nn's
    exception missed rnnkit's. Oracle: the class torch.nn raises for the same mistake."""
    torch.manual_seed(0)
    x = torch.randn(5, 2, 3)
    torch_layer, ours = torch.nn.LSTM(3, 4), rnnkit.LSTM(3, 4)
    torch_cell, our_cell = torch.nn.GRUCell(3, 4), rnnkit.GRUCell(3, 4)
    calls = {
        "dtype": lambda m: m(x.double()),
        "input_size": lambda m: m(torch.randn(5, 2, 4)),
        "hx_shape": lambda m: m(x, (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4))),
        "cell_input_size": lambda m: m(torch.randn(2, 4)),
        "cell_hx_shape": lambda m: m(torch.randn(2, 3), torch.zeros(3, 4)),
        # added after a review (2026-12-06): these raised DtypeMismatchError (a TypeError and
        # ValueError, not torch's RuntimeError), TypeError or ValueError
        "hx_dtype": lambda m: m(x, (torch.zeros(1, 2, 4).double(), torch.zeros(1, 2, 4))),
        "packed_dtype": lambda m: m(torch.nn.utils.rnn.pack_padded_sequence(
            x.double(), torch.tensor([5, 3]))),
        "int_input": lambda m: m(torch.ones(5, 2, 3, dtype=torch.int64)),
        "no_steps": lambda m: m(torch.randn(0, 2, 3)),
        "float_size": lambda m: type(m)(3, 4.0),
        "cell_dtype": lambda m: m(torch.randn(2, 3).double()),
        "cell_hx_dtype": lambda m: m(torch.randn(2, 3), torch.zeros(2, 4).double()),
        "cell_int_input": lambda m: m(torch.ones(2, 3, dtype=torch.int64)),
    }
    pair = (torch_cell, our_cell) if mistake.startswith("cell") else (torch_layer, ours)
    with pytest.raises(Exception) as torch_error:
        calls[mistake](pair[0])
    with pytest.raises(torch_error.type) as ours_error:
        calls[mistake](pair[1])
    assert "\n" not in str(ours_error.value)


@pytest.mark.parametrize("backend", ["auto", "fused", "reference"])
@pytest.mark.parametrize("build, name, shown", [
    (lambda b: rnnkit.LSTM(3, 4, num_layers=2, backend=b), "weight_hh_l1", "weight_hh_l1"),
    (lambda b: rnnkit.GRU(3, 4, bidirectional=True, backend=b), "weight_ih_l0_reverse",
     "weight_ih_l0_reverse"),
    (lambda b: rnnkit.layers.Recurrent(rnnkit.cells.RNNCell(3, 4), backend=b), "cell.bias_hh",
     "cell.bias_hh"),
], ids=["lstm-preset", "gru-bidirectional", "elman-layer"])
def test_a_parameter_assigned_in_another_dtype_is_named(build, name, shown, backend):
    """A float64 Parameter assigned by hand into a float32 module failed in the kernels with
    "expected scalar type Float but found Double", naming no parameter. Oracle: torch.nn
    raises a RuntimeError for the same mistake (so does rnnkit's error class), and the fix
    the message gives (module.to(torch.float32)) restores the untouched module's output."""
    if backend == "fused" and rnnkit.backends.BACKENDS["fused"].unavailable():
        pytest.skip(f"fused kernels unavailable: {rnnkit.backends.BACKENDS['fused'].unavailable()}")
    torch.manual_seed(0)
    x = torch.randn(5, 2, 3)
    module = build(backend)
    expected, _ = module(x)
    owner, _, leaf = name.rpartition(".")
    target = module.get_submodule(owner) if owner else module
    setattr(target, leaf, nn.Parameter(getattr(target, leaf).detach().double()))
    torch_lstm = nn.LSTM(3, 4)
    torch_lstm.weight_hh_l0 = nn.Parameter(torch_lstm.weight_hh_l0.detach().double())
    with pytest.raises(RuntimeError):
        torch_lstm(x)
    with pytest.raises(RuntimeError, match=f"parameter {shown} is torch.float64 while the "
                                           f"other parameters are torch.float32") as error:
        module(x)
    assert "\n" not in str(error.value)
    assert torch.equal(module.to(torch.float32)(x)[0], expected)


@pytest.mark.parametrize("options", [
    {}, {"num_layers": 2, "bidirectional": True}, {"proj": 2, "num_layers": 2}, {"bias": False},
], ids=["defaults", "bidirectional-2", "proj-2", "nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_flat_weights_use_torch_s_names_and_torch_export_takes_a_bare_preset(kind, options):
    """_flat_weights(_names) and _all_weights were missing (code written for torch.nn.RNNBase
    reads them); named_parameters() keeps the nested names, which torch.export needs to agree
    with the submodules' own (an override with torch's names broke exporting a bare preset).
    Oracle: torch.nn's lists, and torch.nn's output after an init recipe by those names."""
    if options.get("proj") and kind != "lstm":
        pytest.skip("proj_size is an LSTM option (torch.nn refuses it elsewhere)")
    torch_module, ours = make_layer_pair(kind, dtype=torch.float32, **options)
    assert ours._flat_weights_names == torch_module._flat_weights_names
    assert ours._all_weights == torch_module._all_weights
    assert all(torch.equal(a, b) for a, b in zip(ours._flat_weights, torch_module._flat_weights))

    def recipe(module):
        torch.manual_seed(3)
        for name in module._flat_weights_names:
            parameter = getattr(module, name)
            if name.startswith("weight_hh"):
                torch.nn.init.orthogonal_(parameter)
            elif name.startswith("bias_ih") and kind == "lstm":
                with torch.no_grad():
                    parameter[module.hidden_size:2 * module.hidden_size].fill_(1.0)

    recipe(torch_module)
    recipe(ours)
    x = torch.randn(STEPS, BATCH, INPUT)
    assert_close(ours(x)[0], torch_module(x)[0], torch.float32, what="output after the recipe")
    exported = torch.export.export(ours, (x,))
    assert_close(exported.module()(x)[0], ours(x)[0], torch.float32, what="exported output")


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_gru_and_rnn_take_torch_s_positional_arguments_and_refuse_a_projection(kind):
    """torch.nn.GRU and RNN take ``proj_size`` after ``bidirectional`` (refusing a non-zero
    one), so their 9th/10th positional arguments are device and dtype; rnnkit's took device
    there, and ``proj_size=2`` was Python's "unexpected keyword". Oracle: torch.nn's layer
    built from the same positional arguments, and the class of its error."""
    torch_class, our_class = {"gru": (nn.GRU, rnnkit.GRU), "rnn": (nn.RNN, rnnkit.RNN)}[kind]
    head = (3, 4, 2) + (("relu",) if kind == "rnn" else ())
    args = head + (True, True, 0.0, True, 0, "cpu", torch.float64)
    torch_layer, ours = torch_class(*args), our_class(*args)
    ours.load_state_dict(torch_layer.state_dict())
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert ours.weight_hh_l0.dtype == torch.float64 and ours.bidirectional and ours.batch_first
    assert_close(ours(x)[0], torch_layer(x)[0])
    with pytest.raises(ValueError):
        torch_class(3, 4, proj_size=2)
    with pytest.raises(ValueError) as info:
        our_class(3, 4, proj_size=2)
    assert "\n" not in str(info.value) and "LSTM" in str(info.value)
    # a device where torch.nn takes proj_size (rnnkit took it there before): torch.nn fails
    # with a comparison error; the message here says where device goes
    with pytest.raises(TypeError):
        torch_class(*head, True, True, 0.0, True, "cpu")
    with pytest.raises(TypeError, match="pass device='cpu' by keyword"):
        our_class(*head, True, True, 0.0, True, "cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_packed_sequence_is_named_as_such(kind):
    """pack_padded_sequence builds a PackedSequence whose batch_sizes outrun its data from a
    length past T; torch.nn and rnnkit then failed with a reshape message naming neither.
    Oracle: torch.nn refuses the same input too; the same lengths clipped to T run on both and
    agree."""
    torch.manual_seed(0)
    torch_layer, ours = make_layer_pair(kind, dtype=torch.float32)
    x = torch.randn(2, 3, INPUT)
    malformed = pack_padded_sequence(x, torch.tensor([3, 2, 1]))  # T is 2
    with pytest.raises(RuntimeError):
        torch_layer(malformed)
    with pytest.raises(ValueError) as info:
        ours(malformed)
    message = str(info.value)
    assert "\n" not in message and "malformed" in message and "sum to 6, but it has 5" in message
    rising = PackedSequence(torch.randn(5, INPUT), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match="non-increasing"):
        ours(rising)
    # no steps at all: torch.nn fails with an IndexError, rnnkit said "batch_sizes can not be
    # empty" (pad_packed_sequence's words)
    empty = PackedSequence(torch.empty(0, INPUT), torch.empty(0, dtype=torch.int64))
    with pytest.raises(IndexError):
        torch_layer(empty)
    with pytest.raises(ValueError, match=r"holds no time steps \(empty batch_sizes\); pack at "
                                         r"least one step"):
        ours(empty)
    clipped = pack_padded_sequence(x, torch.tensor([2, 2, 1]))
    assert_close(ours(clipped)[0].data, torch_layer(clipped)[0].data)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
def test_repacked_outputs_are_torch_packing_of_the_padded_output(batch_first, enforce_sorted,
                                                                 monkeypatch):
    """The layers pack their padded output with one gather of the valid rows (one copy, not
    two). Oracle: torch's pack_padded_sequence of the same output, values, batch sizes, order
    and the gradient reaching the padded output, over random lengths."""
    from torch.nn.utils.rnn import pack_padded_sequence

    from rnnkit.layers import masking
    from rnnkit.layers.masking import repack, unpack

    monkeypatch.setattr(masking, "_GATHER_FROM", 0)  # the gather at every size, not torch's
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        B, T, F = (int(torch.randint(1, n, (1,), generator=generator)) for n in (8, 10, 5))
        lengths = torch.randint(1, T + 1, (B,), generator=generator)
        lengths[0] = T
        if enforce_sorted:
            lengths = lengths.sort(descending=True).values
        x = torch.randn((B, T, F) if batch_first else (T, B, F), generator=generator)
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
        padded, info = unpack(packed, batch_first)
        output = 3 * padded
        if batch_first and torch.rand((), generator=generator) < 0.5:
            # one direction's batch_first output: a transposed time-major tensor (else a
            # batch-major one, as a bidirectional layer's)
            output = output.transpose(0, 1).contiguous().transpose(0, 1)
        elif torch.rand((), generator=generator) < 0.2:  # neither layout: advanced indexing
            output = torch.stack([output, output], -1).flatten(-2)[..., ::2]  # strided rows
        output.requires_grad_()
        got = repack(output, info, batch_first)
        want = pack_padded_sequence(output, lengths, batch_first=batch_first,
                                    enforce_sorted=enforce_sorted)
        assert torch.equal(got.data, want.data)
        assert torch.equal(got.batch_sizes, want.batch_sizes)
        for mine, theirs in ((got.sorted_indices, want.sorted_indices),
                             (got.unsorted_indices, want.unsorted_indices)):
            assert (mine is None and theirs is None) or torch.equal(mine, theirs)
        weights = torch.randn(want.data.shape, generator=generator)
        grad_got, = torch.autograd.grad(got.data, output, weights)
        grad_want, = torch.autograd.grad(want.data, output, weights)
        assert torch.equal(grad_got, grad_want)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
def test_unpacked_inputs_are_torch_padding_of_the_packed_input(batch_first, enforce_sorted,
                                                               monkeypatch):
    """The layers pad a PackedSequence input with one scatter into zeros. Oracle: torch's
    pad_packed_sequence of the same input: values, lengths and the gradient of the data."""
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    from rnnkit.layers import masking
    from rnnkit.layers.masking import unpack

    monkeypatch.setattr(masking, "_GATHER_FROM", 0)  # the scatter at every size, not torch's
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        B, T, F = (int(torch.randint(1, n, (1,), generator=generator)) for n in (8, 10, 5))
        lengths = torch.randint(1, T + 1, (B,), generator=generator)
        lengths[-1] = T
        if enforce_sorted:
            lengths = lengths.sort(descending=True).values
        x = torch.randn((B, T, F) if batch_first else (T, B, F), generator=generator)
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
        data = packed.data.clone().requires_grad_()
        packed = PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                                packed.unsorted_indices)
        got, info = unpack(packed, batch_first)
        want, want_lengths = pad_packed_sequence(packed, batch_first=batch_first)
        assert torch.equal(got, want)
        assert torch.equal(info.lengths, want_lengths) and info.lengths.dtype == torch.int64
        weights = torch.randn(want.shape, generator=generator)
        grad_got, = torch.autograd.grad(got, data, weights)
        grad_want, = torch.autograd.grad(want, data, weights)
        assert torch.equal(grad_got, grad_want)


@pytest.mark.parametrize("make", [lambda: rnnkit.LSTM(3, 4), lambda: rnnkit.RNN(3, 4),
                                  lambda: rnnkit.GRUCell(3, 4),
                                  lambda: torch.nn.Sequential(rnnkit.GRU(3, 4))],
                         ids=["lstm", "rnn", "cell", "inside-sequential"])
def test_torch_jit_script_says_torchscript_is_not_supported(make):
    """TorchScript failed deep in its frontend ("keyword-only arguments with defaults",
    "Unknown type annotation: 'str' at", "Lambda aren't supported"), never saying it is not
    supported or what to use. Oracle: the README's statement, torch.export in its place."""
    with pytest.raises(TypeError) as info:
        torch.jit.script(make())
    message = str(info.value)
    assert "\n" not in message
    assert "TorchScript" in message and "is not supported" in message
    assert "torch.export" in message


@pytest.mark.parametrize("direction", ["from_torch", "to_torch"])
def test_conversion_refuses_gradient_hooks_on_a_weight(direction):
    """A hook on the weight itself (register_hook) was dropped without a word: the copy's
    gradient was 0.285 where torch's was clamped to 1e-3. Oracle: the refusal the README
    promises for hooks, in one line."""
    module = nn.GRU(3, 4) if direction == "from_torch" else rnnkit.GRU(3, 4)
    convert = from_torch if direction == "from_torch" else to_torch
    weight = module.weight_hh_l0
    weight.register_hook(lambda grad: grad.clamp(-1e-3, 1e-3))
    with pytest.raises(TypeError, match=r"cannot carry the gradient hooks registered on \S*"
                                        r"weight_hh\S* over") as info:
        convert(module)
    assert "\n" not in str(info.value)


def test_conversion_refuses_weights_tied_through_shared_memory():
    """nn.Parameter(other.data) ties two weights through their memory; the copy untied them
    (after one SGD step its weight_hh_l0 was 0.049 from torch.nn's)."""
    module = nn.LSTM(3, 3, num_layers=2)
    module.weight_hh_l1 = nn.Parameter(module.weight_hh_l0.data)
    with pytest.raises(TypeError, match=r"weights weight_hh_l0 and weight_hh_l1 are one tensor"):
        from_torch(module)
    untied = nn.LSTM(3, 3, num_layers=2)  # control: separate memory converts
    x = torch.randn(2, 1, 3)
    assert_close(from_torch(untied)(x)[0], untied(x)[0], torch.float32)


def test_conversion_refuses_weights_of_several_dtypes():
    """A float64 weight among float32 ones was cast to float32 silently (torch.nn refuses to
    run such a module)."""
    module = nn.GRU(3, 4)
    module.weight_hh_l0 = nn.Parameter(module.weight_hh_l0.detach().double())
    with pytest.raises(TypeError, match=r"weights are of several dtypes or devices "
                                        r"\(torch.float32 on cpu, torch.float64 on cpu\)"):
        from_torch(module)


def test_rnn_cell_nonlinearity_set_later_is_checked():
    """cell.nonlinearity = "sigmoid" after construction ran relu on the reference backend and
    tanh on the fused one, without an error (torch.nn's cell raises at forward)."""
    cell = rnnkit.RNNCell(3, 4)
    with pytest.raises(ValueError, match=r"^nonlinearity must be one of \('tanh', 'relu'\); "
                                         r"got 'sigmoid'$"):
        cell.nonlinearity = "sigmoid"
    assert cell.nonlinearity == "tanh"
    cell.nonlinearity = "relu"  # a valid change takes effect on every backend
    torch_cell = nn.RNNCell(3, 4, nonlinearity="relu")
    torch_cell.load_state_dict(cell.state_dict())
    x = torch.randn(5, 3)
    assert_close(cell(x), torch_cell(x), torch.float32)


def test_an_rnn_s_nonlinearity_is_its_cells_and_set_on_all_of_them():
    """The preset kept a nonlinearity attribute of its own: set later, to_torch converted it
    while the cells computed the other one (max difference 1.2), and "gelu" was accepted
    (probe, 2026-12-08). Oracle: torch.nn.RNN with relu, from to_torch, on the same weights."""
    from rnnkit.interop import to_torch

    torch.manual_seed(0)
    ours = rnnkit.RNN(3, 4, num_layers=2)
    ours.nonlinearity = "relu"
    assert ours.mode == "RNN_RELU" and all(c.nonlinearity == "relu" for c in ours._cells())
    converted = to_torch(ours)
    assert converted.nonlinearity == "relu"
    x = torch.randn(5, 2, 3)
    assert_close(ours(x)[0], converted(x)[0], torch.float32)
    with pytest.raises(ValueError, match=r"nonlinearity must be one of \('tanh', 'relu'\)"):
        ours.nonlinearity = "gelu"
    assert ours.nonlinearity == "relu"
    ours.stack.layers[0].cell.nonlinearity = "tanh"  # one cell by hand: torch.nn.RNN has one
    with pytest.raises(ValueError, match=r"use different nonlinearities \(relu, tanh\)"):
        to_torch(ours)


def test_from_torch_refuses_a_backend_for_a_cell_and_an_unknown_one():
    """backend= was neither used nor checked for cells, "bogus" included (probe, 2026-12-08).
    Oracle: a layer takes the same backend and computes torch.nn's output."""
    from rnnkit.interop import from_torch

    for backend in ("bogus", "fused"):
        with pytest.raises(ValueError, match="backend"):
            from_torch(nn.LSTMCell(3, 4), backend=backend)
    torch_layer = nn.LSTM(3, 4)
    layer = from_torch(torch_layer, backend="reference")
    x = torch.randn(5, 2, 3)
    assert_close(layer(x)[0], torch_layer(x)[0], torch.float32)
    with pytest.raises(ValueError, match=r"backend must be 'auto' or one of"):
        from_torch(torch_layer, backend="bogus")


@pytest.mark.parametrize("kind", KINDS)
def test_a_program_exported_under_no_grad_trains_as_torch_nn_s_does(kind):
    """torch.export under no_grad baked the fused ops' training=False into the program, whose
    backward then raised "nothing was saved for backward" (audit, 2026-12-06); torch.nn's
    exported layer trains. Oracle: torch.nn's exported program, gradients of input and weights."""
    torch_module, ours = make_layer_pair(kind, num_layers=2, bidirectional=True,
                                         dtype=torch.float32)
    x = torch.randn(STEPS, BATCH, INPUT)
    grads = []
    for module in (torch_module, ours):
        with torch.no_grad():
            program = torch.export.export(module, (x,)).module()
        given = x.clone().requires_grad_()
        program(given)[0].square().sum().backward()
        # both register their weights in torch.nn's order (state_dict keys are equal)
        grads.append([given.grad] + [weight.grad for weight in program.parameters()])
    assert [g.shape for g in grads[0]] == [g.shape for g in grads[1]]
    for theirs, mine in zip(*grads):
        assert_close(mine, theirs, torch.float32, what="gradient through the exported program")
