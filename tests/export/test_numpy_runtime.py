"""rnnkit.export.export_numpy: the NumPy-only runtime against the source PyTorch modules.

Oracle: the source modules themselves (rnnkit presets, torch.nn layers, Stacked / Recurrent,
rnnkit cells stepped by hand, embedding + layer + head, a model with streaming_parts()) on the
same inputs, from the zero state and from a random state, comparing outputs and final states.
Inside the runtime: step-by-step equals forward bit for bit, chunks with the carried state equal
the whole run, unbatched equals batched. A subprocess runs exported folders with torch blocked.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.export import export_numpy
from rnnkit.export.check import TOLERANCE
from rnnkit.export.numpy_bundle import FILES, RUNTIME_FILENAME
from rnnkit.tasks.lm.model import CharLanguageModel, ModelConfig
from tolerances import TOLERANCES, assert_close

pytestmark = [pytest.mark.usefixtures("single_thread"),
              # torch.nn.LSTM(proj_size>0) notes that oneDNN lacks projections: not our concern
              pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")]

ATOL = TOLERANCES[torch.float32]["atol"]
B, T, I, H, P, OUT, V = 3, 7, 5, 6, 3, 4, 11

PRESETS = {
    "lstm": lambda lib, **kw: lib.LSTM(I, H, **kw),
    "gru": lambda lib, **kw: lib.GRU(I, H, **kw),
    "rnn_tanh": lambda lib, **kw: lib.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda lib, **kw: lib.RNN(I, H, nonlinearity="relu", **kw),
}


# -- oracles: each returns run(x, state) -> (outputs (B, T, O) tensor, final state per layer) ---
def _map_entry(function, entry):
    """``function`` applied to each array of a runtime state entry ((h, c) or h)."""
    return tuple(map(function, entry)) if isinstance(entry, tuple) else function(entry)


def _tensors(entry):
    """A runtime state entry as torch tensors of the same structure."""
    return _map_entry(torch.from_numpy, entry)


def _torch_style(call, *, lstm: bool, layers: int, batch_first: bool = True):
    """For torch.nn's convention: call(x, hx) -> (y, h_n) with states stacked as (L, B, *)."""
    def run(x, state):
        hx = None
        if state is not None:
            fields = [torch.from_numpy(np.stack(f)) for f in (zip(*state) if lstm else [state])]
            hx = tuple(fields) if lstm else fields[0]
        x = torch.from_numpy(x)
        y, h_n = call(x if batch_first else x.transpose(0, 1), hx)
        final = [tuple(f[k] for f in h_n) if lstm else h_n[k] for k in range(layers)]
        return (y if batch_first else y.transpose(0, 1)), final
    return run


def _rnnkit_layer(module, cells):
    """For rnnkit.Stacked (states: a list of NamedTuples) or one rnnkit.Recurrent."""
    stacked = isinstance(module, rnnkit.Stacked)

    def run(x, state):
        states = None
        if state is not None:
            states = [cell.state_type(*(_tensors(s) if isinstance(s, tuple) else (_tensors(s),)))
                      for cell, s in zip(cells, state)]
            states = states if stacked else states[0]
        x = torch.from_numpy(x)
        y, finals = module(x if module.batch_first else x.transpose(0, 1), states)
        finals = finals if stacked else [finals]
        final = [tuple(f) if len(f) > 1 else f[0] for f in finals]
        return (y if module.batch_first else y.transpose(0, 1)), final
    return run


def _stepped_cell(cell):
    """For an rnnkit cell: call it once per step with torch's hx form."""
    def run(x, state):
        hx = None if state is None else _tensors(state[0])
        outputs = []
        for t in range(x.shape[1]):
            hx = cell(torch.from_numpy(x[:, t]), hx)
            outputs.append(hx[0] if isinstance(hx, tuple) else hx)
        return torch.stack(outputs, dim=1), [hx]
    return run


# -- cases: name -> () -> (model, export_numpy keyword arguments, oracle) --------------------------
def _preset_case(cell, source, layers, bias, head):
    lib = rnnkit if source == "rnnkit" else nn
    batch_first = layers == 1  # cover both layouts
    kwargs = dict(num_layers=layers, bias=bias, batch_first=batch_first)
    if layers > 1:
        kwargs["dropout"] = 0.25  # ignored at inference, must not block export
    rnn = PRESETS[cell](lib, **kwargs).eval()
    linear = nn.Linear(H, OUT, bias=bias) if head else None

    def call(x, hx):
        y, h_n = rnn(x, hx)
        return (y if linear is None else linear(y)), h_n
    return rnn, {"head": linear}, _torch_style(call, lstm=cell == "lstm", layers=layers,
                                               batch_first=batch_first)


def _projection_case(lib, layers, bias):
    rnn = lib.LSTM(I, H, num_layers=layers, bias=bias, proj_size=P, batch_first=layers == 2)
    return rnn.eval(), {}, _torch_style(rnn, lstm=True, layers=layers, batch_first=layers == 2)


def _stacked_case(batch_first, projection):
    first = rnnkit.LSTMCell(I, H, proj_size=P) if projection else rnnkit.LSTMCell(I, H)
    width = first.output_size
    cells = [first, rnnkit.GRUCell(width, width), rnnkit.RNNCell(width, width, nonlinearity="relu")]
    stack = rnnkit.Stacked([rnnkit.Recurrent(c, batch_first=batch_first) for c in cells],
                           residual=True, dropout=0.5).eval()
    return stack, {}, _rnnkit_layer(stack, cells)


def _recurrent_case():
    cell = rnnkit.GRUCell(I, H, bias=False)
    layer = rnnkit.Recurrent(cell, batch_first=False)
    return layer, {}, _rnnkit_layer(layer, [cell])


def _cell_case(cell):
    return cell, {}, _stepped_cell(cell)


def _embedding_gru_mlp_case():
    embedding, gru = nn.Embedding(V, I), nn.GRU(I, H, batch_first=True)
    head = nn.Sequential(nn.Linear(H, 8), nn.ReLU(), nn.Linear(8, OUT))

    def call(ids, hx):
        y, h_n = gru(embedding(ids), hx)
        return head(y), h_n
    return gru, {"embedding": embedding, "head": head}, _torch_style(call, lstm=False, layers=1)


def _activation_head_case():
    rnn = nn.LSTM(I, H, num_layers=2)
    head = nn.Sequential(nn.Linear(H, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, OUT, bias=False),
                         nn.Sigmoid(), nn.Identity()).eval()

    def call(x, hx):
        y, h_n = rnn(x, hx)
        return head(y), h_n
    return rnn, {"head": head}, _torch_style(call, lstm=True, layers=2, batch_first=False)


def _char_lm_case(cell, implementation):
    config = ModelConfig(cell=cell, embedding_dim=I, hidden_size=H, layers=2,
                         implementation=implementation)
    model = CharLanguageModel(V, config).eval()
    return model, {}, _torch_style(model, lstm=cell == "lstm", layers=2)


CASES = {
    "rnnkit-lstm-proj-1layer": lambda: _projection_case(rnnkit, 1, True),
    "rnnkit-lstm-proj-2layers-nobias": lambda: _projection_case(rnnkit, 2, False),
    "torch-lstm-proj-1layer-nobias": lambda: _projection_case(nn, 1, False),
    "torch-lstm-proj-2layers": lambda: _projection_case(nn, 2, True),
    "stacked-residual": lambda: _stacked_case(True, False),
    "stacked-residual-timemajor-proj": lambda: _stacked_case(False, True),
    "recurrent-gru-nobias": _recurrent_case,
    "cell-lstm-proj": lambda: _cell_case(rnnkit.LSTMCell(I, H, proj_size=P)),
    "cell-gru": lambda: _cell_case(rnnkit.GRUCell(I, H)),
    "cell-rnn-relu-nobias": lambda: _cell_case(rnnkit.RNNCell(I, H, bias=False,
                                                              nonlinearity="relu")),
    "embedding-gru-mlp-head": _embedding_gru_mlp_case,
    "lstm-activation-head": _activation_head_case,
    "char-lm-rnnkit-lstm": lambda: _char_lm_case("lstm", "rnnkit"),
    "char-lm-torch-gru": lambda: _char_lm_case("gru", "torch"),
}


def _build(name, make):
    torch.manual_seed(zlib.crc32(name.encode()))
    return make()


# -- the checks ---------------------------------------------------------------------------------
def _load_runtime(folder):
    """load() of the runtime copy inside ``folder`` (not the package's module)."""
    spec = importlib.util.spec_from_file_location(
        f"rt_{zlib.crc32(str(folder).encode())}", folder / RUNTIME_FILENAME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder)


def _close(actual, expected, what):
    assert isinstance(actual, np.ndarray) and actual.dtype == np.float32, what
    assert_close(torch.from_numpy(actual), expected.detach(), what=what)


def _close_state(actual, expected, what):
    assert len(actual) == len(expected), what
    for layer, (a, e) in enumerate(zip(actual, expected)):
        a, e = (a, e) if isinstance(e, tuple) else ((a,), (e,))
        assert isinstance(a, tuple) and len(a) == len(e), what
        for k, (a_k, e_k) in enumerate(zip(a, e)):
            _close(a_k, e_k, f"{what}, layer {layer} field {k}")


def _inputs(model, rng, shape):
    if model.vocab_size is not None:
        return rng.integers(0, model.vocab_size, shape)
    return rng.standard_normal((*shape, model.input_size)).astype(np.float32)


def _export_and_compare(tmp_path, model, kwargs, oracle):
    report = export_numpy(model, tmp_path / "bundle", **kwargs)
    assert report.format == "numpy" and report.folder == tmp_path / "bundle"
    assert sorted(report.files) == sorted(p.name for p in report.folder.iterdir()) == sorted(FILES)
    assert report.max_abs_diff is not None and 0 <= report.max_abs_diff <= TOLERANCE
    runtime_model = _load_runtime(report.folder)
    rng = np.random.default_rng(0)
    x = _inputs(runtime_model, rng, (B, T))

    # Exported vs the PyTorch modules, from the zero state and from a random state.
    with torch.no_grad():
        outputs, final = runtime_model.forward(x)
        expected, expected_final = oracle(x, None)
        assert outputs.shape == (B, T, runtime_model.output_size) == tuple(expected.shape)
        _close(outputs, expected, "outputs")
        _close_state(final, expected_final, "final state")
        random_like = lambda a: rng.standard_normal(a.shape).astype(np.float32)  # noqa: E731
        start = [_map_entry(random_like, entry) for entry in runtime_model.initial_state(B)]
        start_copy = [_map_entry(np.copy, entry) for entry in start]
        outputs, final = runtime_model.forward(x, start)
        expected, expected_final = oracle(x, start)
        _close(outputs, expected, "outputs from a given state")
        _close_state(final, expected_final, "final state from a given state")
        _close_state(start, [_tensors(e) for e in start_copy], "the given state, unchanged")

    # step-by-step equals forward, bit for bit.
    whole, whole_final = runtime_model.forward(x)
    state = runtime_model.initial_state(B)
    for t in range(T):
        y_t, state = runtime_model.step(x[:, t], state)
        np.testing.assert_array_equal(y_t, whole[:, t])
    _close_state(state, [_tensors(e) for e in whole_final], "stepped final state")

    # Chunks with the carried state equal the whole run.
    first, carried = runtime_model.forward(x[:, :3])
    second, chunk_final = runtime_model.forward(x[:, 3:], carried)
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), whole)
    _close_state(chunk_final, [_tensors(e) for e in whole_final], "chunked final state")

    # Unbatched input: (T, I) or ids (T,) -> (T, O); one step (I,) or a scalar id -> (O,).
    single, _ = runtime_model.forward(x[1])
    _close(single, torch.from_numpy(whole[1]), "unbatched forward")
    y0, _ = runtime_model.step(x[1, 0])
    assert y0.shape == (runtime_model.output_size,)
    _close(y0, torch.from_numpy(whole[1, 0]), "unbatched step")


@pytest.mark.parametrize("head", [False, True], ids=["nohead", "head"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("source", ["rnnkit", "torch"])
@pytest.mark.parametrize("cell", list(PRESETS))
def test_presets_match_torch(tmp_path, cell, source, layers, bias, head):
    name = f"{cell}-{source}-{layers}-{bias}-{head}"
    _export_and_compare(tmp_path, *_build(name, lambda: _preset_case(cell, source, layers, bias,
                                                                      head)))


@pytest.mark.parametrize("name", list(CASES))
def test_graph_models_match_torch(tmp_path, name):
    _export_and_compare(tmp_path, *_build(name, CASES[name]))


@pytest.mark.parametrize("name", ["stacked-residual-timemajor-proj", "embedding-gru-mlp-head",
                                  "char-lm-rnnkit-lstm"])
def test_runtime_runs_without_torch(tmp_path, name):
    model, kwargs, oracle = _build(name, CASES[name])
    folder = export_numpy(model, tmp_path / "bundle", **kwargs).folder
    x = _inputs(_load_runtime(folder), np.random.default_rng(1), (B, T))
    with torch.no_grad():
        expected = oracle(x, None)[0].numpy()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["rnnkit"] = None
        import importlib.util
        import numpy as np
        folder = {str(folder)!r}
        spec = importlib.util.spec_from_file_location("rnnkit_numpy_runtime",
                                                      folder + "/{RUNTIME_FILENAME}")
        rt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(rt)
        model = rt.load(folder)
        x = np.load({str(tmp_path / "x.npy")!r})
        out, state = model.forward(x)
        stepped, state = model.step(x[:, 0])
        diff = float(np.abs(out - np.load({str(tmp_path / "expected.npy")!r})).max())
        assert sys.modules["torch"] is None and np.array_equal(stepped, out[:, 0])
        print(diff)
        sys.exit(0 if diff <= {ATOL} else 1)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
