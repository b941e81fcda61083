"""rnnkit.export.export_numpy: the NumPy-only runtime against the eager PyTorch model.

Oracle: the eager module (rnnkit preset or torch.nn) followed by the optional Linear head, on
the same random float32 inputs; plus step-vs-forward, unbatched-vs-batched and chunked-vs-whole
equality inside the runtime, and a subprocess that runs the exported folder with torch blocked.
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

pytestmark = pytest.mark.usefixtures("single_thread")

ATOL = 1e-5  # float32 forward values, tests/tolerances.py
B, T, I, H, OUT = 3, 7, 5, 6, 4

CELLS = {
    "lstm": lambda lib, **kw: lib.LSTM(I, H, **kw),
    "gru": lambda lib, **kw: lib.GRU(I, H, **kw),
    "rnn_tanh": lambda lib, **kw: lib.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda lib, **kw: lib.RNN(I, H, nonlinearity="relu", **kw),
}


def _load_runtime(folder):
    spec = importlib.util.spec_from_file_location(
        f"rt_{zlib.crc32(str(folder).encode())}", folder / "rnnkit_numpy_runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder)


def _close(actual, expected, what):
    diff = float(np.max(np.abs(np.asarray(actual) - np.asarray(expected))))
    assert diff <= ATOL, f"{what}: max abs diff {diff:.3g} > {ATOL}"


def _build(cell, source, layers, bias, head):
    torch.manual_seed(zlib.crc32(f"{cell}-{source}-{layers}-{bias}-{head}".encode()))
    lib = rnnkit if source == "rnnkit" else nn
    batch_first = layers == 1  # cover both layouts
    kwargs = dict(num_layers=layers, bias=bias, batch_first=batch_first)
    if layers > 1:
        kwargs["dropout"] = 0.25  # ignored at inference, must not block export
    rnn = CELLS[cell](lib, **kwargs).eval()
    linear = nn.Linear(H, OUT, bias=bias) if head else None
    return rnn, linear


def _eager(rnn, linear, x, state):
    """Run the torch model on batch-major x and a runtime-style state; runtime-style results."""
    lstm = isinstance(rnn, (nn.LSTM, rnnkit.LSTM))
    hx = None
    if state is not None:
        if lstm:
            hx = tuple(torch.from_numpy(np.stack([s[k] for s in state])) for k in range(2))
        else:
            hx = torch.from_numpy(np.stack(state))
    inp = torch.from_numpy(x) if rnn.batch_first else torch.from_numpy(x).transpose(0, 1)
    with torch.no_grad():
        out, h_n = rnn(inp, hx)
        if not rnn.batch_first:
            out = out.transpose(0, 1)
        if linear is not None:
            out = linear(out)
    if lstm:
        final = [(h_n[0][k].numpy(), h_n[1][k].numpy()) for k in range(rnn.num_layers)]
    else:
        final = [h_n[k].numpy() for k in range(rnn.num_layers)]
    return out.numpy(), final


def _close_state(actual, expected, what):
    assert len(actual) == len(expected), what
    for layer, (a, e) in enumerate(zip(actual, expected)):
        a, e = (a, e) if isinstance(e, tuple) else ((a,), (e,))
        assert len(a) == len(e), what
        for k, (a_k, e_k) in enumerate(zip(a, e)):
            assert a_k.shape == e_k.shape and a_k.dtype == np.float32, what
            _close(a_k, e_k, f"{what}, layer {layer} field {k}")


@pytest.mark.parametrize("head", [False, True], ids=["nohead", "head"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("source", ["rnnkit", "torch"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_exported_matches_eager(tmp_path, cell, source, layers, bias, head):
    rnn, linear = _build(cell, source, layers, bias, head)
    folder = export_numpy(rnn, tmp_path / "bundle", head=linear)
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.json", "rnnkit_numpy_runtime.py", "weights.npz"]
    model = _load_runtime(folder)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)

    # Exported vs eager, from the zero state and from a random state.
    outputs, final = model.forward(x)
    expected, expected_final = _eager(rnn, linear, x, None)
    assert outputs.dtype == np.float32 and outputs.shape == (B, T, OUT if head else H)
    _close(outputs, expected, "outputs")
    _close_state(final, expected_final, "final state")
    start = [tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
             if cell == "lstm" else rng.standard_normal((B, H)).astype(np.float32)
             for _ in range(layers)]
    outputs, final = model.forward(x, start)
    expected, expected_final = _eager(rnn, linear, x, start)
    _close(outputs, expected, "outputs from a given state")
    _close_state(final, expected_final, "final state from a given state")

    # step-by-step equals forward.
    state = model.initial_state(B)
    whole, whole_final = model.forward(x)
    for t in range(T):
        y_t, state = model.step(x[:, t], state)
        np.testing.assert_array_equal(y_t, whole[:, t])
    _close_state(state, whole_final, "stepped final state")

    # Unbatched input: (T, I) -> (T, out); (I,) -> (out,).
    single, _ = model.forward(x[1])
    _close(single, whole[1], "unbatched forward")
    y0, _ = model.step(x[1, 0])
    assert y0.shape == whole[1, 0].shape
    _close(y0, whole[1, 0], "unbatched step")

    # State round trip: chunk 1 then chunk 2 with the carried state equals the whole.
    first, carried = model.forward(x[:, :3])
    second, chunk_final = model.forward(x[:, 3:], carried)
    _close(np.concatenate([first, second], axis=1), whole, "chunked outputs")
    _close_state(chunk_final, whole_final, "chunked final state")


@pytest.mark.parametrize("cell", list(CELLS))
def test_runtime_runs_without_torch(tmp_path, cell):
    rnn, linear = _build(cell, "rnnkit", 2, True, True)
    folder = export_numpy(rnn, tmp_path / "bundle", head=linear)
    x = np.random.default_rng(1).standard_normal((B, T, I)).astype(np.float32)
    expected, _ = _eager(rnn, linear, x, None)
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
                                                      folder + "/rnnkit_numpy_runtime.py")
        rt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(rt)
        out, state = rt.load(folder).forward(np.load({str(tmp_path / "x.npy")!r}))
        diff = float(np.abs(out - np.load({str(tmp_path / "expected.npy")!r})).max())
        assert sys.modules["torch"] is None
        print(diff)
        sys.exit(0 if diff <= {ATOL} else 1)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("make, match", [
    (lambda: rnnkit.LSTM(I, H, bidirectional=True), "bidirectional"),
    (lambda: nn.GRU(I, H, bidirectional=True), "bidirectional"),
    (lambda: rnnkit.LSTM(I, H, proj_size=3), "proj_size"),
    (lambda: nn.LSTM(I, H, proj_size=3), "proj_size"),
    (lambda: nn.Linear(I, H), "supports"),
    (lambda: rnnkit.LSTMCell(I, H), "supports"),
], ids=["rnnkit-bidir", "torch-bidir", "rnnkit-proj", "torch-proj", "linear", "cell"])
def test_unsupported_model_is_one_line_error(tmp_path, make, match):
    with pytest.raises(ValueError, match=match) as error:
        export_numpy(make(), tmp_path / "bundle")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("head, match", [
    (lambda: nn.Sequential(nn.Linear(H, OUT)), "torch.nn.Linear"),
    (lambda: nn.Linear(H + 1, OUT), "in_features"),
])
def test_bad_head_is_one_line_error(tmp_path, head, match):
    with pytest.raises(ValueError, match=match) as error:
        export_numpy(nn.GRU(I, H), tmp_path / "bundle", head=head())
    assert "\n" not in str(error.value)
    assert not (tmp_path / "bundle").exists()
