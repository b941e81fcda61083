"""rnnkit.export.onnx_export: the exported model.onnx in onnxruntime against the PyTorch model.

Oracles: the source torch modules run directly (rnnkit presets, torch.nn, Stacked, cells), from
zero and from random initial states, comparing outputs and final states; and
StreamingGraph.eager_forward. The streaming contract (T=1 calls with states fed back, or any
chunking, equal one whole run) is checked against the same oracle.
"""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from one_line import one_line_message
from rnnkit.export.check import TOLERANCE, ExportMismatchError
from rnnkit.runtime.graph import UnsupportedModelError, streaming_graph

onnx = pytest.importorskip("onnx", reason="ONNX export needs the export extra: "
                                          "pip install 'rnnkit[export]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra: "
                                                "pip install 'rnnkit[export]'")

from rnnkit.export import onnx_graph  # noqa: E402  (imports onnx)
from rnnkit.export.onnx_export import MODEL_FILENAME, OnnxStreamer, export_onnx  # noqa: E402

pytestmark = [pytest.mark.usefixtures("single_thread"),
              # torch.nn.LSTM(proj_size>0) notes that oneDNN lacks projections: not our concern
              pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")]

ATOL = 1e-5  # float32 forward values, tests/tolerances.py
B, T, I, H, P, OUT = 3, 7, 5, 6, 4, 3

PRESETS = {
    "lstm": lambda lib, **kw: lib.LSTM(I, H, **kw),
    "gru": lambda lib, **kw: lib.GRU(I, H, **kw),
    "rnn_tanh": lambda lib, **kw: lib.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda lib, **kw: lib.RNN(I, H, nonlinearity="relu", **kw),
}
ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


def _seed(*parts) -> None:
    torch.manual_seed(zlib.crc32("-".join(map(str, parts)).encode()))


def _close(actual, expected, what: str) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert diff <= ATOL, f"{what}: max abs diff {diff:.3g} > {ATOL}"


def _session(folder):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(folder / MODEL_FILENAME), options,
                                providers=["CPUExecutionProvider"])


def _run(session, x, states: dict) -> dict[str, np.ndarray]:
    """All outputs by name for input x (batch-major) and the given state inputs."""
    feed = {session.get_inputs()[0].name: x, **states}
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def _random_states(session, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {value.name: rng.standard_normal((batch, value.shape[1])).astype(np.float32)
            for value in session.get_inputs()[1:]}


def _zero_states(session, batch: int) -> dict[str, np.ndarray]:
    return {value.name: np.zeros((batch, value.shape[1]), np.float32)
            for value in session.get_inputs()[1:]}


def _preset_oracle(rnn, head, x: np.ndarray, states: dict, layers: int):
    """torch's own forward of a preset / torch.nn layer: y (B, T, O) and {h_k, c_k: (B, .)}."""
    lstm = isinstance(rnn, (nn.LSTM, rnnkit.LSTM))
    h0 = torch.from_numpy(np.stack([states[f"h0_{k}"] for k in range(layers)]))
    hx = (h0, torch.from_numpy(np.stack([states[f"c0_{k}"] for k in range(layers)]))) if lstm \
        else h0
    inputs = torch.from_numpy(x)
    with torch.no_grad():
        y, finals = rnn(inputs if rnn.batch_first else inputs.transpose(0, 1), hx)
        y = y if rnn.batch_first else y.transpose(0, 1)
        y = head(y) if head is not None else y
    finals = finals if lstm else (finals,)
    expected = {f"{field}_{k}": tensor[k].numpy()
                for field, tensor in zip("hc", finals) for k in range(layers)}
    return y.numpy(), expected


def _op_types(folder) -> list[str]:
    return [node.op_type for node in onnx.load(str(folder / MODEL_FILENAME)).graph.node]


def _assert_report(report, folder) -> None:
    assert report.format == "onnx" and report.folder == folder
    assert report.files == (MODEL_FILENAME,)
    assert report.max_abs_diff is not None and 0 <= report.max_abs_diff <= TOLERANCE
    assert sorted(p.name for p in folder.iterdir()) == [MODEL_FILENAME]


# (num_layers, bias, batch_first) combinations: every value of each appears with each cell.
CONFIGS = {"1layer": (1, True, True), "2layers-nobias": (2, False, False),
           "2layers": (2, True, True), "1layer-nobias-timemajor": (1, False, False)}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("source", ["rnnkit", "torch"])
@pytest.mark.parametrize("cell", list(PRESETS))
def test_presets_match_torch(tmp_path, cell, source, config):
    layers, bias, batch_first = CONFIGS[config]
    _seed(cell, source, config)
    rnn = PRESETS[cell](rnnkit if source == "rnnkit" else nn, num_layers=layers, bias=bias,
                        batch_first=batch_first).eval()
    head = nn.Linear(H, OUT) if layers == 2 else None
    folder = tmp_path / "onnx"
    report = export_onnx(rnn, folder, head=head)
    _assert_report(report, folder)
    # Standard ONNX recurrent operators, one per layer, no Scan.
    ops = _op_types(folder)
    assert ops.count(ONNX_OP[cell]) == layers and "Scan" not in ops

    session = _session(folder)
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    for seed, states in [(None, _zero_states(session, B)), (1, _random_states(session, B, 1))]:
        outputs = _run(session, x, states)
        expected_y, expected_finals = _preset_oracle(rnn, head, x, states, layers)
        what = "zero state" if seed is None else "random state"
        _close(outputs["y"], expected_y, f"y from {what}")
        assert set(expected_finals) == set(outputs) - {"y"}
        for name, final in expected_finals.items():
            _close(outputs[name], final, f"{name} from {what}")
    # The graph's eager oracle (what export checks against) agrees on the zero-state run.
    zero = _run(session, x, _zero_states(session, B))
    _close(zero["y"], streaming_graph(rnn, head=head).eager_forward(torch.from_numpy(x)), "eager")


def test_onnx_operator_attributes(tmp_path):
    """GRU resets after the recurrent matmul (linear_before_reset=1); relu Elman uses Relu."""
    export_onnx(rnnkit.GRU(I, H), tmp_path / "gru")
    export_onnx(rnnkit.RNN(I, H, nonlinearity="relu"), tmp_path / "relu")
    gru = next(n for n in onnx.load(str(tmp_path / "gru" / MODEL_FILENAME)).graph.node
               if n.op_type == "GRU")
    relu = next(n for n in onnx.load(str(tmp_path / "relu" / MODEL_FILENAME)).graph.node
                if n.op_type == "RNN")
    attributes = lambda node: {a.name: onnx.helper.get_attribute_value(a)  # noqa: E731
                               for a in node.attribute}
    assert attributes(gru)["linear_before_reset"] == 1
    assert attributes(relu)["activations"] == [b"Relu"]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("source", ["rnnkit", "torch"])
def test_lstm_projection_scan_matches_torch(tmp_path, source, layers, bias):
    _seed("proj", source, layers, bias)
    lib = rnnkit if source == "rnnkit" else nn
    rnn = lib.LSTM(I, H, num_layers=layers, proj_size=P, bias=bias, batch_first=True).eval()
    folder = tmp_path / "onnx"
    _assert_report(export_onnx(rnn, folder), folder)
    ops = _op_types(folder)
    assert ops.count("Scan") == layers and "LSTM" not in ops

    session = _session(folder)
    assert {v.name: v.shape[1] for v in session.get_inputs()[1:]} == {
        **{f"h0_{k}": P for k in range(layers)}, **{f"c0_{k}": H for k in range(layers)}}
    x = np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32)
    states = _random_states(session, B, 3)
    outputs = _run(session, x, states)
    expected_y, expected_finals = _preset_oracle(rnn, None, x, states, layers)
    _close(outputs["y"], expected_y, "y")
    for name, final in expected_finals.items():
        _close(outputs[name], final, name)


def test_stacked_residual_of_cells(tmp_path):
    _seed("stacked")
    cells = [rnnkit.LSTMCell(I, H), rnnkit.GRUCell(H, H), rnnkit.RNNCell(H, H),
             rnnkit.LSTMCell(H, H)]
    stack = rnnkit.Stacked([rnnkit.Recurrent(cell) for cell in cells], residual=True).eval()
    folder = tmp_path / "onnx"
    _assert_report(export_onnx(stack, folder), folder)
    assert _op_types(folder).count("Add") == 3  # residual on every layer after the first

    session = _session(folder)
    x = np.random.default_rng(4).standard_normal((B, T, I)).astype(np.float32)
    states = _random_states(session, B, 5)
    outputs = _run(session, x, states)
    start = [cell.state_type(*(torch.from_numpy(states[f"{field}0_{k}"])
                               for field in cell.state_sizes()))
             for k, cell in enumerate(cells)]
    with torch.no_grad():
        y, finals = stack(torch.from_numpy(x), start)
    _close(outputs["y"], y.numpy(), "y")
    for k, final in enumerate(finals):
        for field, value in final._asdict().items():
            _close(outputs[f"{field}_{k}"], value.numpy(), f"{field}_{k}")


CELLS = {"lstm": rnnkit.LSTMCell, "gru": rnnkit.GRUCell, "rnn": rnnkit.RNNCell}


@pytest.mark.parametrize("kind", list(CELLS))
def test_single_cell_model(tmp_path, kind):
    _seed("cell", kind)
    cell = CELLS[kind](I, H)
    folder = tmp_path / "onnx"
    # The export's own check starts from zero states; here the oracle is the cell stepped by
    # hand from random states.
    assert export_onnx(cell, folder).max_abs_diff <= TOLERANCE
    x = np.random.default_rng(6).standard_normal((B, T, I)).astype(np.float32)
    session = _session(folder)
    states = _random_states(session, B, 7)
    outputs = _run(session, x, states)
    state = tuple(torch.from_numpy(states[f"{field}0_0"]) for field in cell.state_sizes())
    state, expected = state if kind == "lstm" else state[0], []
    with torch.no_grad():
        for t in range(T):
            state = cell(torch.from_numpy(x[:, t]), state)
            expected.append((state[0] if kind == "lstm" else state).numpy())
    _close(outputs["y"], np.stack(expected, axis=1), "y")
    finals = state if kind == "lstm" else (state,)
    for field, final in zip(cell.state_sizes(), finals):
        _close(outputs[f"{field}_0"], final.numpy(), f"{field}_0")


def test_embedding_gru_sequential_head(tmp_path):
    _seed("embedding")
    vocab, width = 11, 5
    embedding = nn.Embedding(vocab, width)
    gru = rnnkit.GRU(width, H, batch_first=True)
    head = nn.Sequential(nn.Linear(H, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, OUT))
    folder = tmp_path / "onnx"
    _assert_report(export_onnx(gru, folder, head=head, embedding=embedding), folder)
    ops = _op_types(folder)
    assert {"Gather", "GRU", "Relu", "MatMul"} <= set(ops)

    session = _session(folder)
    inputs = session.get_inputs()
    assert inputs[0].name == "tokens" and inputs[0].type == "tensor(int64)"
    tokens = np.random.default_rng(7).integers(0, vocab, (B, T), dtype=np.int64)
    states = _random_states(session, B, 8)
    outputs = _run(session, tokens, states)
    with torch.no_grad():
        head.eval()
        y, h_n = gru(embedding(torch.from_numpy(tokens)), torch.from_numpy(states["h0_0"])[None])
        y = head(y)
    _close(outputs["y"], y.numpy(), "y")
    _close(outputs["h_0"], h_n[0].numpy(), "h_0")

    # The streamer takes token ids too; from zero states it reproduces the eager forward.
    streamer = OnnxStreamer(folder)
    stepped = np.concatenate([streamer(tokens[:, t:t + 1]) for t in range(T)], axis=1)
    graph = streaming_graph(gru, head=head, embedding=embedding)
    _close(stepped, graph.eager_forward(torch.from_numpy(tokens)), "streamed tokens")

    # Ids outside [0, V) are clamped (ONNX cannot raise), as in the C export: -3 reads row 0
    # and 99 row V - 1, never a wrapped-around or missing row.
    outside = tokens.copy()
    outside[:, 0], outside[:, 1] = -3, 99
    clamped = np.clip(outside, 0, vocab - 1)
    _close(_run(session, outside, states)["y"], _run(session, clamped, states)["y"], "clamped ids")


STREAMED = {
    "lstm-2layers-head": lambda: (rnnkit.LSTM(I, H, num_layers=2), nn.Linear(H, OUT)),
    "lstm-proj": lambda: (nn.LSTM(I, H, proj_size=P, num_layers=2, batch_first=True), None),
    "gru-timemajor": lambda: (nn.GRU(I, H, num_layers=2), nn.Sequential(nn.Linear(H, OUT),
                                                                          nn.Tanh())),
}


@pytest.mark.parametrize("name", list(STREAMED))
def test_streaming_steps_equal_whole_sequence(tmp_path, name):
    _seed("stream", name)
    rnn, head = STREAMED[name]()
    folder = tmp_path / "onnx"
    export_onnx(rnn, folder, head=head)
    session = _session(folder)
    x = np.random.default_rng(9).standard_normal((B, T, I)).astype(np.float32)
    start = _random_states(session, B, 10)
    whole = _run(session, x, start)
    layers = len(streaming_graph(rnn).layers)
    expected_y, expected_finals = _preset_oracle(rnn.eval(), head, x, start, layers)
    _close(whole["y"], expected_y, "whole run")

    # Raw interface: T=1 calls, each call's h_k/c_k fed back as the next call's h0_k/c0_k.
    states, steps = dict(start), []
    for t in range(T):
        out = _run(session, x[:, t:t + 1], states)
        assert out["y"].shape == (B, 1, expected_y.shape[2])
        steps.append(out["y"])
        states = {f"{name[0]}0{name[1:]}": value for name, value in out.items() if name != "y"}
    _close(np.concatenate(steps, axis=1), expected_y, "T=1 calls")
    for state_name, value in states.items():
        final_name = state_name[0] + state_name[2:]  # h0_k -> h_k
        _close(value, expected_finals[final_name], f"stepped {final_name}")
        _close(value, whole[final_name], f"stepped {final_name} vs whole run")

    # OnnxStreamer: uneven chunks (3, 0, 1, 3) from the same start. The empty chunk leaves the
    # state as it was (onnxruntime's GRU operator aborted the process on one: review 2026-12-05).
    streamer = OnnxStreamer(folder)
    streamer.reset(start)
    chunks = [streamer(x[:, a:b]) for a, b in [(0, 3), (3, 3), (3, 4), (4, T)]]
    assert chunks[1].shape == (B, 0, expected_y.shape[2]) and chunks[1].dtype == np.float32
    _close(np.concatenate(chunks, axis=1), expected_y, "chunked streamer")
    for state_name, value in streamer.state.items():
        _close(value, states[state_name], f"streamer {state_name}")


def test_dynamic_batch_and_time(tmp_path):
    _seed("dynamic")
    rnn, head = rnnkit.LSTM(I, H, num_layers=2, batch_first=True), nn.Linear(H, OUT)
    folder = tmp_path / "onnx"
    export_onnx(rnn, folder, head=head)
    model = onnx.load(str(folder / MODEL_FILENAME))
    dims = lambda value: [d.dim_param or d.dim_value  # noqa: E731
                          for d in value.type.tensor_type.shape.dim]
    shapes = {value.name: dims(value) for value in [*model.graph.input, *model.graph.output]}
    assert shapes == {"x": ["batch", "time", I], "y": ["batch", "time", OUT],
                      **{f"{f}{z}_{k}": ["batch", H] for f in "hc" for z in ("0", "")
                         for k in range(2)}}
    session = _session(folder)
    graph = streaming_graph(rnn, head=head)
    for batch, steps in [(1, 1), (4, 13), (2, 30)]:
        x = np.random.default_rng(batch).standard_normal((batch, steps, I)).astype(np.float32)
        outputs = _run(session, x, _zero_states(session, batch))
        _close(outputs["y"], graph.eager_forward(torch.from_numpy(x)), f"B={batch} T={steps}")


def test_metadata_names_version_kinds_and_states(tmp_path):
    rnn = rnnkit.Stacked([rnnkit.Recurrent(rnnkit.LSTMCell(I, H)),
                          rnnkit.Recurrent(rnnkit.GRUCell(H, H))])
    export_onnx(rnn, tmp_path / "onnx")
    model = onnx.load(str(tmp_path / "onnx" / MODEL_FILENAME))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["rnnkit_version"] == rnnkit.__version__
    assert props["cell_kinds"] == "lstm,gru"
    assert props["input"] == "x"
    assert props["state_inputs"] == "h0_0,c0_0,h0_1"
    assert props["state_outputs"] == "h_0,c_0,h_1"
    assert rnnkit.__version__ in model.doc_string and "h0_0, c0_0, h0_1" in model.doc_string
    assert model.producer_name == "rnnkit"
    assert [o.name for o in model.graph.output] == ["y", "h_0", "c_0", "h_1"]


def test_other_opset_and_check_false(tmp_path):
    _seed("opset")
    rnn = rnnkit.LSTM(I, H, proj_size=P)
    report = export_onnx(rnn, tmp_path / "unchecked", check=False)
    assert report.max_abs_diff is None and "check=False" in report.summary()
    report = export_onnx(rnn, tmp_path / "opset13", opset=13)
    assert report.max_abs_diff <= TOLERANCE
    model = onnx.load(str(tmp_path / "opset13" / MODEL_FILENAME))
    assert [o.version for o in model.opset_import] == [13]
    x = np.random.default_rng(11).standard_normal((B, T, I)).astype(np.float32)
    session = _session(tmp_path / "unchecked")
    _close(_run(session, x, _zero_states(session, B))["y"],
           streaming_graph(rnn).eager_forward(torch.from_numpy(x)), "unchecked export")


def test_reexport_replaces_model(tmp_path):
    folder = tmp_path / "nested" / "onnx"  # parents are created
    export_onnx(rnnkit.GRU(I, H), folder)
    _seed("replace")
    rnn = rnnkit.LSTM(I, H)
    export_onnx(rnn, folder)
    assert sorted(p.name for p in folder.iterdir()) == [MODEL_FILENAME]
    x = np.random.default_rng(12).standard_normal((1, T, I)).astype(np.float32)
    _close(OnnxStreamer(folder)(x), streaming_graph(rnn).eager_forward(torch.from_numpy(x)), "y")


def test_wrong_gate_order_is_caught_and_nothing_written(tmp_path, monkeypatch):
    """The export check compares with PyTorch: torch's LSTM gate order left as is must fail."""
    monkeypatch.setitem(onnx_graph.ONNX_GATE_CHUNKS, "lstm", (0, 1, 2, 3))
    with pytest.raises(ExportMismatchError, match="onnx") as error:
        export_onnx(rnnkit.LSTM(I, H), tmp_path / "onnx")
    one_line_message(error)
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("make, needles", [
    (lambda: rnnkit.LSTM(I, H, bidirectional=True), ["layer rnn.stack.layers.0 ", "backwards"]),
    (lambda: nn.GRU(I, H, bidirectional=True), ["layer rnn ", "bidirectional"]),
    (lambda: rnnkit.Stacked([rnnkit.Recurrent(rnnkit.GRUCell(I, H)),
                             rnnkit.Bidirectional(rnnkit.GRUCell(H, H), rnnkit.GRUCell(H, H))]),
     ["layer rnn.layers.1 ", "backwards"]),
], ids=["rnnkit", "torch", "stacked"])
def test_bidirectional_is_one_line_error_naming_the_layer(tmp_path, make, needles):
    with pytest.raises(UnsupportedModelError) as error:
        export_onnx(make(), tmp_path / "onnx")
    one_line_message(error, *needles)
    assert not (tmp_path / "onnx").exists()


def test_bad_arguments_are_one_line_errors(tmp_path):
    file = tmp_path / "model.onnx"
    file.write_bytes(b"keep")
    with pytest.raises(ValueError, match="not a folder") as error:
        export_onnx(rnnkit.GRU(I, H), file)
    one_line_message(error, str(file))
    assert file.read_bytes() == b"keep"
    for opset in (12, 10_000, "17"):
        with pytest.raises(ValueError, match="opset") as error:
            export_onnx(rnnkit.GRU(I, H), tmp_path / "onnx", opset=opset)
        one_line_message(error)
    with pytest.raises(ValueError, match="head") as error:
        export_onnx(rnnkit.GRU(I, H), tmp_path / "onnx", head=nn.Linear(H + 1, OUT))
    one_line_message(error, "in_features")
    assert not (tmp_path / "onnx").exists()


def test_streamer_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="does not exist") as error:
        OnnxStreamer(tmp_path / "missing")
    one_line_message(error)
    model = rnnkit.GRU(I, H)
    export_onnx(model, tmp_path / "onnx")
    streamer = OnnxStreamer(tmp_path / "onnx")
    streamer(np.zeros((2, 1, I), np.float32))
    with pytest.raises(ValueError, match="reset") as error:
        streamer(np.zeros((3, 1, I), np.float32))
    one_line_message(error)
    with pytest.raises(ValueError, match="dimensions") as error:
        streamer(np.zeros((2, I), np.float32))
    one_line_message(error)
    with pytest.raises(ValueError, match=f"must have {I} features") as error:
        streamer(np.zeros((2, 1, I + 1), np.float32))  # was onnxruntime's 3-line message
    one_line_message(error)
    streamer.reset()
    assert streamer(np.zeros((3, 1, I), np.float32)).shape == (3, 1, H)
    # a state of the wrong width or rank reached onnxruntime (a three-line InvalidArgument)
    for bad in (np.zeros((3, H + 1)), np.zeros(H)):
        with pytest.raises(ValueError, match="state 'h0_0' has shape") as error:
            streamer.reset({"h0_0": bad})
        one_line_message(error, f"width is {H}")
    given = np.full((2, H), 0.5, np.float32)
    streamer.reset({"h0_0": given})  # a good state: the stream continues from it
    x = np.random.default_rng(0).standard_normal((2, 4, I)).astype(np.float32)
    with torch.no_grad():
        expected, _ = model(torch.from_numpy(x).transpose(0, 1), torch.from_numpy(given)[None])
    np.testing.assert_allclose(streamer(x), expected.transpose(0, 1).numpy(), atol=1e-5)


def test_reset_states_must_share_one_batch_size(tmp_path):
    """LSTM states h0 and c0 of batch 2 and 3 failed inside onnxruntime (an [E:onnxruntime]
    log line and Fail)."""
    export_onnx(rnnkit.LSTM(I, H), tmp_path / "onnx")
    streamer = OnnxStreamer(tmp_path / "onnx")
    with pytest.raises(ValueError, match="one batch size") as error:
        streamer.reset({"h0_0": np.zeros((2, H)), "c0_0": np.zeros((3, H))})
    one_line_message(error)


def test_a_model_whose_outputs_overflow_is_refused_and_nothing_written(tmp_path):
    """Both sides inf: the check said "differs by nan; please report this"."""
    rnn = nn.RNN(I, H, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(1e6)
        rnn.weight_ih_l0.fill_(1.0)
        rnn.bias_ih_l0.fill_(1.0)
    with pytest.raises(ValueError) as error:
        export_onnx(rnn, tmp_path / "onnx")
    one_line_message(error, "onnx export cannot be checked", "inf or NaN")
    assert not (tmp_path / "onnx" / "model.onnx").exists()


def test_missing_packages_one_line_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError) as error:
        export_onnx(rnnkit.GRU(I, H), tmp_path / "onnx")
    one_line_message(error, "onnx and onnxruntime", "pip install 'rnnkit[export]'")


def test_import_needs_no_onnx():
    script = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
              "import rnnkit.export, rnnkit.export.onnx_export\n"
              "assert sys.modules['onnx'] is None and sys.modules['onnxruntime'] is None\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", ["gru", "lstm", "tokens"])
def test_an_empty_batch_is_not_sent_to_onnxruntime(tmp_path, kind):
    """onnxruntime's GRU and LSTM operators abort the whole process (exit 134, "terminate
    called without an active exception") on a batch of 0; the streamer guarded only T = 0.
    Run in a child process, so that an abort fails this test instead of ending the suite.
    Oracle: the empty (0, T, O) output the NumPy runtime gives for the same call."""
    script = f"""
import numpy as np, torch
from torch import nn
from rnnkit.export.onnx_export import OnnxStreamer, export_onnx
torch.manual_seed(0)
kind = {kind!r}
rnn = nn.LSTM(3, 4, batch_first=True) if kind == "lstm" else nn.GRU(3, 4, batch_first=True)
embedding = nn.Embedding(7, 3) if kind == "tokens" else None
export_onnx(rnn, {str(tmp_path / "m")!r}, head=nn.Linear(4, 2), embedding=embedding)
streamer = OnnxStreamer({str(tmp_path / "m")!r})
x = np.zeros((0, 5), np.int64) if kind == "tokens" else np.zeros((0, 5, 3), np.float32)
y = streamer(x)
print(y.shape, y.dtype)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["(0,", "5,", "2)", "float32"]
