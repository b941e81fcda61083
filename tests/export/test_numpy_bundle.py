"""rnnkit.export.export_numpy: the folder's format, the ExportReport and one-line errors.

The numerical parity with PyTorch lives in test_numpy_runtime.py; here: model.json (format 2)
and weights.npz names, the check and its report, replacing an earlier export, and every error
(unsupported models, bad paths, bad runtime inputs and states, old or damaged folders) being
one line that names the problem.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from one_line import one_line_message
from rnnkit.export import export_numpy
from rnnkit.export import rnnkit_numpy_runtime as runtime
from rnnkit.export.check import RELATIVE_TOLERANCE, TOLERANCE, ExportMismatchError, compare
from rnnkit.export.numpy_bundle import FILES, numpy_runtime_model
from rnnkit.runtime.graph import GATE_ORDERS, UnsupportedModelError
from rnnkit.tasks.lm.model import CharLanguageModel, ModelConfig

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")]

B, T, I, H, P, OUT, V = 2, 5, 5, 6, 3, 4, 11


def _embedding_gru_mlp():
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(H, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, OUT, bias=False))
    return nn.GRU(I, H, batch_first=True), dict(embedding=nn.Embedding(V, I), head=head)


def test_model_json_and_weight_names(tmp_path):
    rnn, kwargs = _embedding_gru_mlp()
    folder = export_numpy(rnn, tmp_path / "gru", **kwargs).folder
    config = json.loads((folder / "model.json").read_text())
    assert config["format_version"] == runtime.FORMAT_VERSION == 2
    assert config["gate_orders"] == GATE_ORDERS == runtime.GATE_ORDERS
    assert config["layers"] == [{"name": "rnn (layer 0)", "kind": "gru", "input_size": I,
                                 "hidden_size": H, "output_size": H, "has_bias": True,
                                 "has_projection": False, "residual": False}]
    assert config["head"] == [
        {"name": "head.0", "kind": "linear", "in_features": H, "out_features": 8, "has_bias": True},
        {"name": "head.1", "kind": "relu"},
        {"name": "head.3", "kind": "linear", "in_features": 8, "out_features": OUT,
         "has_bias": False}]
    assert config["embedding"] == {"vocab_size": V, "embedding_dim": I}
    assert (config["input"], config["input_size"], config["output_size"]) == ("token_ids", I, OUT)
    assert config["source"] == {"model": "torch.nn.modules.rnn.GRU",
                                "rnn": "torch.nn.modules.rnn.GRU", "batch_first": True}
    with np.load(folder / "weights.npz") as archive:
        assert sorted(archive.files) == [
            "embedding.weight", "head0.bias", "head0.weight", "head2.weight",
            "layer0.bias_hh", "layer0.bias_ih", "layer0.weight_hh", "layer0.weight_ih"]
        assert all(archive[name].dtype == np.float32 for name in archive.files)
        np.testing.assert_array_equal(archive["embedding.weight"],
                                      kwargs["embedding"].weight.detach().numpy())

    lstm = rnnkit.Stacked([rnnkit.Recurrent(rnnkit.LSTMCell(I, H, proj_size=P, bias=False)),
                           rnnkit.Recurrent(rnnkit.LSTMCell(P, H, proj_size=P))], residual=True)
    folder = export_numpy(lstm, tmp_path / "lstm").folder
    config = json.loads((folder / "model.json").read_text())
    assert [(layer["kind"], layer["output_size"], layer["has_bias"], layer["has_projection"],
             layer["residual"]) for layer in config["layers"]] == [
        ("lstm", P, False, True, False), ("lstm", P, True, True, True)]
    assert config["head"] == [] and config["embedding"] is None
    with np.load(folder / "weights.npz") as archive:
        assert sorted(archive.files) == [
            "layer0.weight_hh", "layer0.weight_hr", "layer0.weight_ih", "layer1.bias_hh",
            "layer1.bias_ih", "layer1.weight_hh", "layer1.weight_hr", "layer1.weight_ih"]
        assert archive["layer1.weight_hr"].shape == (P, H)


def test_report_check_and_replacing_an_export(tmp_path):
    model = CharLanguageModel(V, ModelConfig(cell="lstm", embedding_dim=I, hidden_size=H,
                                             dropout=0.3, layers=2))
    assert model.training
    report = export_numpy(model, tmp_path / "bundle")
    assert model.training, "the check must restore the model's training mode"
    assert report.files == FILES and 0 <= report.max_abs_diff <= TOLERANCE
    assert report.summary().startswith(f"numpy export in {tmp_path / 'bundle'}: max |")

    # A second export into the same folder replaces the first and leaves no temporary files.
    unchecked = export_numpy(nn.RNN(I, H), tmp_path / "bundle", check=False)
    assert unchecked.max_abs_diff is None and unchecked.note == "check=False"
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == sorted(FILES)
    assert runtime.load(tmp_path / "bundle").vocab_size is None


@pytest.mark.parametrize("fail_at", [0, 1, 2], ids=["weights.npz", "runtime", "model.json"])
def test_a_replacing_export_that_fails_leaves_the_earlier_export_as_it_was(tmp_path, monkeypatch,
                                                                           fail_at):
    """Writing model.json failed (disk full) after the new weights were in place: the earlier
    export's model.json then loaded the new weights under the old config, silently; later,
    the earlier export was lost instead. Every file is now written in full before any replaces
    its earlier copy. Oracle: the earlier export's bytes afterwards, and its outputs."""
    import rnnkit.export.files as files

    folder = tmp_path / "bundle"
    export_numpy(nn.RNN(I, H, nonlinearity="tanh"), folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    x = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)
    outputs = runtime.load(folder).forward(x)[0]
    failing = ["weights.npz", "rnnkit_numpy_runtime.py", "model.json"][fail_at]
    real_stage = files._stage

    def disk_full_at(where, name, data):
        if name == failing:
            raise OSError(28, "No space left on device")
        return real_stage(where, name, data)

    monkeypatch.setattr(files, "_stage", disk_full_at)
    with pytest.raises(OSError) as info:
        export_numpy(nn.RNN(I, H, nonlinearity="relu"), folder)
    monkeypatch.setattr(files, "_stage", real_stage)
    one_line_message(info, f"could not write {folder / failing} (No space left on device)",
                     "are unchanged; free space")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    np.testing.assert_array_equal(runtime.load(folder).forward(x)[0], outputs)


@pytest.mark.parametrize("user_file", ["model.json", "weights.npz"])
def test_a_users_file_at_an_export_path_is_never_replaced(tmp_path, user_file):
    """export_numpy replaced a user's model.json and weights.npz (probe, 2026-12-08). Oracle:
    the file's bytes before and after; an earlier export's files are replaced."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    if user_file == "weights.npz":
        np.savez(folder / "weights.npz", mine=np.zeros(3))
    else:
        (folder / "model.json").write_text('{"mine": 1}')
    before = (folder / user_file).read_bytes()
    with pytest.raises(ValueError) as info:
        export_numpy(nn.GRU(I, H), folder)
    one_line_message(info, f"{user_file} would be replaced", "move it, or export to another "
                                                              "folder")
    assert (folder / user_file).read_bytes() == before
    (folder / user_file).unlink()
    export_numpy(nn.GRU(I, H), folder)
    export_numpy(nn.LSTM(I, H), folder)  # an earlier export's files are its to replace
    assert runtime.load(folder).layers[0].kind == "lstm"


def _overflowing_rnn() -> nn.RNN:
    """A ReLU RNN whose outputs overflow float32 on any ordinary input."""
    rnn = nn.RNN(I, H, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(1e6)
        rnn.weight_ih_l0.fill_(1.0)
        rnn.bias_ih_l0.fill_(1.0)
    return rnn


@pytest.mark.parametrize("exporter", ["numpy", "c"])
def test_a_model_whose_outputs_overflow_is_refused_not_reported_as_a_mismatch(tmp_path,
                                                                              exporter):
    """Both sides inf: the check said "differs by nan; please report this", and the C test
    program held the literal inf (a compile error). Nothing loadable is left behind."""
    from rnnkit.export import export_c

    rnn = _overflowing_rnn()
    with torch.no_grad():
        assert not torch.isfinite(rnn(torch.randn(2, 12, I))[0]).all()  # the premise
    export = {"numpy": export_numpy, "c": export_c}[exporter]
    with pytest.raises(ValueError) as info, np.errstate(over="ignore", invalid="ignore"):
        export(rnn, tmp_path / "out")
    one_line_message(info, "export cannot be checked", "inf or NaN", "fix its weights")
    assert not (tmp_path / "out" / "model.json").exists()
    assert not (tmp_path / "out" / "rnnkit_model_test.c").exists()


def test_in_memory_model_equals_the_loaded_export(tmp_path):
    rnn, kwargs = _embedding_gru_mlp()
    ids = np.random.default_rng(0).integers(0, V, (B, T))
    in_memory = numpy_runtime_model(rnn, **kwargs).forward(ids)[0]
    export_numpy(rnn, tmp_path / "bundle", **kwargs)
    np.testing.assert_array_equal(in_memory, runtime.load(tmp_path / "bundle").forward(ids)[0])


def test_mismatch_with_pytorch_raises(tmp_path, monkeypatch):
    forward = runtime.NumpyRecurrentModel.forward
    monkeypatch.setattr(runtime.NumpyRecurrentModel, "forward",
                        lambda self, x, state=None: (forward(self, x, state)[0] + 1e-3, None))
    with pytest.raises(ExportMismatchError) as error:
        export_numpy(nn.GRU(I, H), tmp_path / "bundle")
    one_line_message(error, "numpy export differs", "1e-05 + 1e-05 |y|")
    # A model with large weights is refused as well, though its export is as close as torch's
    # own float32 (GRU weights x30: 4.1e-5 from float64): the message names that case and
    # check=False, not only "report this" (which read as a bug in every such case).
    one_line_message(error, "float32 rounding alone", "check=False", "please report this")


def test_check_limit_is_absolute_plus_relative():
    """An output y may be off by TOLERANCE + RELATIVE_TOLERANCE |y|, and no more; NaN never."""
    expected = np.array([0.0, 10.0, -200.0])
    assert compare("x", expected + [1e-5 * 0.99, 1.09e-4, -2.0e-3], expected) > 0
    for index, off in ((0, 1.2e-5), (1, 1.2e-4), (2, -2.2e-3)):
        exported = expected.copy()
        exported[index] += off
        with pytest.raises(ExportMismatchError, match=r"1e-05 \+ 1e-05 \|y\|"):
            compare("x", exported, expected)
    with pytest.raises(ExportMismatchError):
        compare("x", np.array([np.nan, 10.0, -200.0]), expected)


def test_large_logits_export_as_accurately_as_torch_computes_them(tmp_path):
    """The default character model's sizes with logits near +-20: the float32 export differs
    from rnnkit's float32 forward by ~1.5e-5, which an absolute 1e-5 refused, though it is as
    close to the float64 forward (the oracle) as torch.nn.LSTM's own float32 result is (review,
    2026-12-05)."""
    torch.manual_seed(0)
    embedding, head = nn.Embedding(68, 64), nn.Linear(512, 68)
    rnn = rnnkit.LSTM(64, 512, num_layers=2, batch_first=True)
    with torch.no_grad():
        head.weight.mul_(20)
        for name, parameter in rnn.named_parameters():
            if "weight" in name:
                parameter.mul_(6)
    report = export_numpy(rnn, tmp_path / "bundle", head=head, embedding=embedding)
    ids = torch.randint(0, 68, (2, 12))
    with torch.no_grad():
        logits64 = head.double()(rnn.double()(embedding.double()(ids))[0]).numpy()
        torch_rnn = nn.LSTM(64, 512, num_layers=2, batch_first=True).double()
        torch_rnn.load_state_dict(rnn.state_dict())
        torch_rnn.float()
        head.float(), embedding.float()
        torch32 = head(torch_rnn(embedding(ids))[0]).double().numpy()
    got = runtime.load(tmp_path / "bundle").forward(ids.numpy())[0]
    assert np.abs(logits64).max() > 5
    torch_error = np.abs(torch32 - logits64).max()
    assert np.abs(got - logits64).max() <= 2 * torch_error
    assert report.max_abs_diff <= TOLERANCE + RELATIVE_TOLERANCE * np.abs(logits64).max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["float64", "bfloat16"])
def test_models_of_other_dtypes_export_as_their_float32_copy(tmp_path, dtype):
    """The check used to feed float32 inputs to the model itself, which refused them."""
    torch.manual_seed(0)
    model = rnnkit.LSTM(I, H, batch_first=True).to(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_numpy(model, tmp_path / "bundle")
    assert report.max_abs_diff <= TOLERANCE
    assert all(torch.equal(before[k], v) and v.dtype == dtype
               for k, v in model.state_dict().items())  # the model itself is left alone
    x = torch.randn(B, T, I)
    with torch.no_grad():
        expected = model.float()(x)[0].numpy()
    got, _ = runtime.load(tmp_path / "bundle").forward(x.numpy())
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)


def test_a_check_that_cannot_run_leaves_no_loadable_folder(tmp_path, monkeypatch):
    from rnnkit.runtime.graph import StreamingGraph

    def broken(self, inputs):
        raise RuntimeError("the model failed")

    monkeypatch.setattr(StreamingGraph, "eager_forward", broken)
    with pytest.raises(RuntimeError, match="the model failed"):
        export_numpy(nn.GRU(I, H), tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "model.json").exists()


@pytest.mark.parametrize("make, needles", [
    (lambda: (rnnkit.LSTM(I, H, bidirectional=True), {}), ["rnn.stack.layers.0", "backwards"]),
    (lambda: (nn.GRU(I, H, bidirectional=True), {}), ["layer rnn", "bidirectional GRU"]),
    (lambda: (rnnkit.Stacked([rnnkit.Recurrent(rnnkit.LSTMCell(I, H)), rnnkit.Bidirectional(
        rnnkit.GRUCell(H, H), rnnkit.GRUCell(H, H), merge="sum")]), {}), ["rnn.layers.1"]),
    (lambda: (rnnkit.Recurrent(rnnkit.GRUCell(I, H), reverse=True), {}),
     ["layer rnn", "backwards"]),
    (lambda: (nn.Linear(I, H), {}), ["torch.nn.modules.linear.Linear", "rnnkit.LSTM/GRU/RNN"]),
    (lambda: (nn.GRU(I, H), {"head": nn.Sequential(nn.Linear(H, OUT), nn.GELU())}),
     ["head.1", "GELU"]),
    (lambda: (nn.GRU(I, H), {"head": nn.Linear(H + 1, OUT)}), ["head", "in_features"]),
    (lambda: (nn.GRU(I, H), {"embedding": nn.Embedding(V, I + 1)}), ["embedding", "width 6"]),
    (lambda: (nn.LSTMCell(I, H), {}), ["torch.nn.LSTMCell", "rnnkit.interop.from_torch"]),
], ids=["rnnkit-bidirectional", "torch-bidirectional", "stacked-bidirectional", "reverse",
        "linear-model", "gelu-head", "head-width", "embedding-width", "torch-cell"])
def test_unsupported_model_is_one_line_error(tmp_path, make, needles):
    model, kwargs = make()
    with pytest.raises(UnsupportedModelError) as error:
        export_numpy(model, tmp_path / "bundle", **kwargs)
    one_line_message(error, *needles)
    assert not (tmp_path / "bundle").exists()


def test_bad_call_is_one_line_error(tmp_path):
    model = CharLanguageModel(V, ModelConfig(cell="gru", embedding_dim=I, hidden_size=H))
    with pytest.raises(ValueError) as error:
        export_numpy(model, tmp_path / "bundle", head=nn.Linear(H, OUT))
    one_line_message(error, "streaming_parts()", "head=")
    (tmp_path / "file").write_text("keep")
    with pytest.raises(ValueError) as error:
        export_numpy(nn.GRU(I, H), tmp_path / "file")
    one_line_message(error, "is not a folder")
    assert (tmp_path / "file").read_text() == "keep"


def _head_with_a_forward_hook():
    head = nn.Linear(H, OUT)
    head.register_forward_hook(lambda module, inputs, output: output / 2)  # a temperature
    return nn.GRU(I, H), {"head": head}


def _cell_with_a_forward_pre_hook():
    cell = rnnkit.GRUCell(I, H)
    cell.register_forward_pre_hook(lambda module, inputs: None)
    return cell, {}


@pytest.mark.parametrize("make, needles", [
    (_head_with_a_forward_hook, ["head has a forward hook", "remove()"]),
    (_cell_with_a_forward_pre_hook, ["rnn has a forward pre-hook", "remove()"]),
], ids=["forward-hook", "forward-pre-hook"])
def test_a_hook_the_export_cannot_carry_is_refused(tmp_path, make, needles):
    """A temperature hook on the head was left out: check=True then blamed rnnkit ("please
    report"), and check=False wrote a model 0.17 off."""
    model, kwargs = make()
    for check in (True, False):
        with pytest.raises(UnsupportedModelError) as error:
            export_numpy(model, tmp_path / "bundle", check=check, **kwargs)
        one_line_message(error, *needles)
        assert not (tmp_path / "bundle").exists()


def test_a_hook_that_never_runs_in_the_forward_does_not_block_the_export(tmp_path):
    """A forward hook on a cell inside a layer never runs (the layer runs the cell's math
    without calling its forward), yet it blocked the export (review 2026-12-06). Oracle: the
    hook's call count, and the export's own check against the eager forward."""
    layer = rnnkit.LSTM(I, H, num_layers=2, batch_first=True)
    calls = []
    layer.stack.layers[0].cell.register_forward_hook(lambda *args: calls.append(1))
    layer.stack.layers[1].register_forward_hook(lambda *args: calls.append(1))
    layer(torch.randn(B, T, I))
    assert calls == []
    report = export_numpy(layer, tmp_path / "bundle")
    assert report.max_abs_diff < 1e-5


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
@pytest.mark.parametrize("reweight", ["prune", "weight_norm", "spectral_norm"])
@pytest.mark.parametrize("make", [lambda: nn.LSTM(I, H, batch_first=True),
                                  lambda: rnnkit.GRUCell(I, H)], ids=["torch-lstm", "rnnkit-cell"])
def test_weights_recomputed_by_hooks_are_exported_as_after_the_last_step(tmp_path, reweight,
                                                                          make):
    """prune and the hook-based weight_norm / spectral_norm recompute the weight a forward uses
    in a pre-hook, so after an optimizer step the attribute held the previous values and the
    export (check=False) was 0.03 off. Oracle: the model's own eval-mode forward after the
    step, and the export's check."""
    from torch.nn.utils import prune, spectral_norm, weight_norm

    torch.manual_seed(0)
    model = make()
    weight = "weight_hh_l0" if isinstance(model, nn.LSTM) else "weight_hh"
    if reweight == "prune":
        prune.l1_unstructured(model, weight, amount=0.5)
    elif reweight == "weight_norm":
        weight_norm(model, weight)
    else:
        spectral_norm(model, weight)
    x = torch.randn(2, 6, I)

    def forward(inputs):
        if isinstance(model, nn.LSTM):
            return model(inputs)[0]
        state, outputs = None, []
        for t in range(inputs.shape[1]):
            state = model(inputs[:, t], state)
            outputs.append(state)
        return torch.stack(outputs, dim=1)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    forward(x).square().sum().backward()
    optimizer.step()  # the weight attribute now holds the values before this step
    export_numpy(model, tmp_path / "unchecked", check=False)
    model.eval()
    with torch.no_grad():
        expected = forward(x).numpy()
    exported = runtime.load(tmp_path / "unchecked").forward(x.numpy())[0]
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-6)
    report = export_numpy(model, tmp_path / "checked")
    assert report.max_abs_diff < 1e-5


@pytest.mark.parametrize("kwargs, needles", [
    ({"model": None}, ["model must be an nn.Module; got NoneType"]),
    ({"model": nn.GRU(I, H).state_dict()}, ["model must be an nn.Module; got OrderedDict",
                                             "load a state_dict"]),
    ({"model": nn.GRU(I, H), "head": torch.tanh}, ["head must be an nn.Module"]),
    ({"model": nn.GRU(I, H), "embedding": torch.zeros(V, I)},
     ["embedding must be an nn.Module; got Tensor"]),
], ids=["none", "state_dict", "function-head", "tensor-embedding"])
def test_something_that_is_not_a_module_is_a_one_line_type_error(tmp_path, kwargs, needles):
    """Each gave "AttributeError: ... has no attribute '_modules'"."""
    model = kwargs.pop("model")
    with pytest.raises(TypeError) as error:
        export_numpy(model, tmp_path / "bundle", **kwargs)
    one_line_message(error, *needles)
    assert not (tmp_path / "bundle").exists()


@pytest.fixture(scope="module")
def lstm_model():
    torch.manual_seed(1)
    return numpy_runtime_model(nn.LSTM(I, H, num_layers=2, proj_size=P))


@pytest.fixture(scope="module")
def token_model():
    rnn, kwargs = _embedding_gru_mlp()
    return numpy_runtime_model(rnn, **kwargs)


def _zeros(*shape):
    return np.zeros(shape, dtype=np.float32)


@pytest.mark.parametrize("call, needles", [
    (lambda m: m.step(_zeros(B, I + 1)), ["input must have shape (B, 5) or (5,)", "(2, 6)"]),
    (lambda m: m.step(_zeros(B, 1, I)), ["input must have shape (B, 5)", "(2, 1, 5)"]),
    (lambda m: m.forward(_zeros(B, T, I - 1)), ["(B, T, 5) or (T, 5)", "(2, 5, 4)"]),
    (lambda m: m.forward(_zeros(1, B, T, I)), ["(B, T, 5)", "(1, 2, 5, 5)"]),
    (lambda m: m.step(_zeros(B, I), m.initial_state(B)[:1]),
     ["one entry per layer (2)", "1 entries"]),
    (lambda m: m.step(_zeros(B, I), _zeros(B, H)), ["one entry per layer", "ndarray"]),
    (lambda m: m.step(_zeros(B, I), [(_zeros(B, P), _zeros(B, H)), (_zeros(B, H), _zeros(B, H))]),
     ["state[1] h must have shape (B, 3) = (2, 3)", "(2, 6)"]),
    (lambda m: m.step(_zeros(B, I), [(_zeros(B, P), _zeros(B, H)), _zeros(B, P)]),
     ["state[1] must be the pair (h, c)"]),
    (lambda m: m.forward(_zeros(B, T, I), [(_zeros(B + 1, P), _zeros(B + 1, H))] * 2),
     ["state[0] h", "(2, 3)", "(3, 3)"]),
    # a list of None ran as NaN, text was parsed as numbers (probe, 2026-12-08)
    (lambda m: m.step([None] * I), ["input must hold real numbers", "dtype object"]),
    (lambda m: m.step(["1"] * I), ["input must hold real numbers", "<U1"]),
    (lambda m: m.forward(np.ones((B, T, I), dtype=bool)), ["input must hold real numbers"]),
    (lambda m: m.step(_zeros(B, I), [(np.full((B, P), "0"), _zeros(B, H)), m.initial_state(B)[1]]),
     ["state[0] h must hold real numbers"]),
    (lambda m: m.initial_state(-1), ["batch must be a whole number >= 0; got -1"]),
    (lambda m: m.initial_state(2.5), ["batch must be a whole number >= 0; got 2.5"]),
], ids=["step-width", "step-ndim", "forward-width", "forward-ndim", "state-length",
        "state-not-list", "state-shape", "state-not-pair", "state-batch", "input-none",
        "input-text", "input-bool", "state-text", "batch-negative", "batch-fraction"])
def test_bad_features_or_state_is_one_line_error(lstm_model, call, needles):
    lstm_model.step(_zeros(B, I), lstm_model.initial_state(B))  # the well-formed call works
    with pytest.raises(ValueError) as error:
        call(lstm_model)
    one_line_message(error, *needles)


@pytest.mark.parametrize("call, needles", [
    (lambda m: m.step(np.array([1.0, 2.0])), ["integer token ids (B,) or a scalar", "float64"]),
    (lambda m: m.forward(_zeros(B, T, I)), ["integer token ids (B, T) or (T,)", "float32"]),
    (lambda m: m.step(V), [f"token id {V} is out of range", f"ids 0..{V - 1}"]),
    (lambda m: m.step(np.array([0, -1])), ["token id -1 is out of range"]),
    (lambda m: m.forward([[1, 2], [3, V + 4]]), [f"token id {V + 4} is out of range"]),
    (lambda m: m.step(np.zeros((B, T), dtype=int)), ["token ids must have shape (B,)", "(2, 5)"]),
    (lambda m: m.forward(np.zeros((B, T, 1), dtype=int)), ["token ids must have shape (B, T)"]),
    (lambda m: m.step(True), ["integer token ids", "bool"]),
], ids=["step-float", "forward-features", "step-too-large", "step-negative", "forward-range",
        "step-ndim", "forward-ndim", "bool"])
def test_bad_token_ids_are_one_line_errors(token_model, call, needles):
    with pytest.raises(ValueError) as error:
        call(token_model)
    one_line_message(error, *needles)


@pytest.mark.parametrize("damage, needles", [
    (lambda c, w: c.update(format_version=1), ["format_version 1", "reads format_version 2"]),
    (lambda c, w: c.update(format_version=99), ["format_version 99", "re-export"]),
    (lambda c, w: c.pop("head"), ["no field 'head'", "re-export"]),
    (lambda c, w: c["layers"][0].update(kind="lstm2"), ["kind 'lstm2'", "rnn_relu"]),
    (lambda c, w: c["gate_orders"].update(lstm="i,g,f,o"), ["gate order 'i,g,f,o'", "'i,f,g,o'"]),
    (lambda c, w: w.pop("layer1.weight_hr"), ["no array 'layer1.weight_hr'", "re-export"]),
    (lambda c, w: w.update({"layer0.weight_ih": np.zeros((1, 2))}),
     ["'layer0.weight_ih' has shape (1, 2)", "(24, 5)"]),
    # edits that loaded and ran with other weights or sizes than the file holds (probe,
    # 2026-12-08): the biases left unused, bool("false") read as true, int(8.7) as 8
    (lambda c, w: c["layers"][0].update(has_bias=False),
     ["holds 'layer0.bias_hh', 'layer0.bias_ih', which model.json does not use", "re-export"]),
    (lambda c, w: c["layers"][1].update(has_projection="false"),
     ["layer 1 has_projection must be true or false; got 'false'"]),
    (lambda c, w: c["layers"][0].update(hidden_size=6.7),
     ["layer 0 hidden_size must be a whole number >= 1; got 6.7"]),
    (lambda c, w: c["layers"][0].update(input_size="5"),
     ["layer 0 input_size must be a whole number >= 1; got '5'"]),
    (lambda c, w: c.update(output_size=7), ["gives output_size 7, but its layers and head make "
                                            "it 3: it was edited"]),
    (lambda c, w: c.update(layers={"0": c["layers"][0]}), ["model.json is damaged", "wrong type"]),
    (lambda c, w: c.update(head=None), ["model.json is damaged", "re-export"]),
    (lambda c, w: c.update(gate_orders=None), ["model.json is damaged", "re-export"]),
], ids=["version-1", "version-unknown", "missing-field", "layer-kind", "gate-order",
        "missing-array", "array-shape", "unused-biases", "text-flag", "fractional-size",
        "text-size", "top-level-size", "layers-object", "head-null", "gate-orders-null"])
def test_damaged_folder_is_one_line_error(tmp_path, damage, needles):
    folder = export_numpy(nn.LSTM(I, H, num_layers=2, proj_size=P), tmp_path / "bundle").folder
    config = json.loads((folder / "model.json").read_text())
    with np.load(folder / "weights.npz") as archive:
        weights = {name: archive[name] for name in archive.files}
    damage(config, weights)
    (folder / "model.json").write_text(json.dumps(config))
    np.savez(folder / "weights.npz", **weights)
    with pytest.raises(ValueError) as error:
        runtime.load(folder)
    one_line_message(error, *needles)


def _flip_byte(path, at=200):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, error, needles", [
    (lambda f: (f / "model.json").write_text('{"format'), ValueError,
     ["model.json cannot be read (Unterminated string"]),
    (lambda f: (f / "model.json").write_bytes(b"\xff\xfe"), ValueError,
     ["model.json cannot be read", "can't decode byte 0xff"]),
    (lambda f: (f / "weights.npz").unlink(), FileNotFoundError,
     ["weights.npz does not exist"]),
    (lambda f: (f / "weights.npz").write_bytes((f / "weights.npz").read_bytes()[:100]),
     ValueError, ["weights.npz is damaged (File is not a zip file)"]),
    (lambda f: (f / "weights.npz").write_bytes(b""), ValueError, ["weights.npz is damaged"]),
    (lambda f: _flip_byte(f / "weights.npz"), ValueError, ["weights.npz is damaged (Bad CRC-32"]),
], ids=["json-truncated", "json-not-utf8", "npz-missing", "npz-truncated", "npz-empty",
        "npz-byte-flipped"])
def test_a_damaged_file_is_named_with_the_fix(tmp_path, damage, error, needles):
    """These gave json's, zipfile's or numpy's own errors, naming neither the file nor a fix
    (probe, 2026-12-08). Oracle: the intact folder loads and runs; each damaged copy does not."""
    folder = export_numpy(nn.LSTM(I, H), tmp_path / "bundle").folder
    runtime.load(folder).step(_zeros(B, I))
    damage(folder)
    with pytest.raises(error) as info:
        runtime.load(folder)
    one_line_message(info, *needles, "re-export the model with rnnkit.export.export_numpy")
    assert "allow_pickle" not in str(info.value)


def test_missing_folder_is_one_line_error(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        runtime.load(tmp_path / "nowhere")
    one_line_message(error, "model.json does not exist", "export_numpy")


@pytest.mark.parametrize("layer", ["gru", "rnn"])
def test_a_step_output_changed_in_place_leaves_the_state_alone(layer):
    """Without a head, step() returned the very array the state holds as h: centring y_t in
    place changed the next step. Oracle: forward over both steps."""
    model = numpy_runtime_model({"gru": nn.GRU, "rnn": nn.RNN}[layer](I, H, batch_first=True))
    x = np.random.default_rng(0).standard_normal((2, 2, I)).astype(np.float32)
    whole, _ = model.forward(x)
    y0, state = model.step(x[:, 0])
    y0 -= 100.0
    y1, _ = model.step(x[:, 1], state)
    np.testing.assert_array_equal(y1, whole[:, 1])
