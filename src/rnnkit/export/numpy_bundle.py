"""Export a recurrent model to a folder that runs on NumPy alone, checked against PyTorch.

The model is read through :func:`rnnkit.runtime.graph.streaming_graph`, so everything the graph
describes exports: an optional embedding (inputs are then token ids), unidirectional LSTM (with
or without projection), GRU and Elman (tanh/relu) layers, residual stacks, and a head of
``nn.Linear`` layers and ReLU/Tanh/Sigmoid activations::

    x_t --[embedding E (V, I)]--> layer 0 --> ... --> layer L-1 --> head ops --> y_t (O)

The folder holds

* ``weights.npz``: float32 arrays ``layer{k}.weight_ih`` (G, I), ``layer{k}.weight_hh`` (G, P),
  ``layer{k}.bias_ih`` / ``layer{k}.bias_hh`` (G) when the layer has biases,
  ``layer{k}.weight_hr`` (P, H) for an LSTM with projection, ``head{j}.weight`` (O, I) /
  ``head{j}.bias`` (O) for linear head op j, and ``embedding.weight`` (V, I), in torch's layout
  and gate order (G = gates * H, P = proj size or H);
* ``model.json`` (format_version 2): the layers (kind, sizes, bias, projection, residual), the
  head ops, the embedding's size or null, the gate orders and where the model came from;
* ``rnnkit_numpy_runtime.py``: the standalone runtime (numpy, json and pathlib only)::

    report = export_numpy(rnnkit.LSTM(8, 16, num_layers=2), "lstm_np", head=nn.Linear(16, 4))
    # elsewhere, with only numpy:
    import rnnkit_numpy_runtime as rt      # the copy inside "lstm_np"
    outputs, state = rt.load("lstm_np").forward(x)   # x (B, T, I), batch-major always
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import check_flag
from ..runtime.graph import GATE_ORDERS, StreamingGraph, streaming_graph
from ..training import folder_for_writing
from . import rnnkit_numpy_runtime as runtime
from .files import check_replaceable, same_first_line, write_files
from .check import (ExportReport, check_inputs, compare,
                    expected_outputs)

RUNTIME_FILENAME = "rnnkit_numpy_runtime.py"
FILES = ("model.json", RUNTIME_FILENAME, "weights.npz")
_LAYOUT = ("batch-major: x (B, T, I) or token ids (B, T); state: one entry per layer, "
           "(h (B, P), c (B, H)) for lstm, h (B, P) otherwise")


def _qualified_name(module) -> str | None:
    return None if module is None else f"{type(module).__module__}.{type(module).__qualname__}"


def _describe(graph: StreamingGraph, model) -> dict:
    """model.json's fields for ``graph``, built from ``model``."""
    layers = [{"name": spec.name, "kind": spec.kind, "input_size": spec.input_size,
               "hidden_size": spec.hidden_size, "output_size": spec.output_size,
               "has_bias": spec.bias_ih is not None, "has_projection": spec.weight_hr is not None,
               "residual": spec.residual} for spec in graph.layers]
    head = []
    for op in graph.head:
        entry = {"name": op.name, "kind": op.kind}
        if op.kind == "linear":
            entry.update(in_features=int(op.weight.shape[1]), out_features=int(op.weight.shape[0]),
                         has_bias=op.bias is not None)
        head.append(entry)
    embedding = None
    if graph.embedding is not None:
        embedding = {"vocab_size": graph.vocab_size, "embedding_dim": int(graph.embedding.shape[1])}
    rnn = graph.modules[1]
    return {
        "format_version": runtime.FORMAT_VERSION,
        "layers": layers,
        "head": head,
        "embedding": embedding,
        "input": "token_ids" if embedding else "features",
        "input_size": graph.input_size,
        "output_size": graph.output_size,
        "gate_orders": dict(GATE_ORDERS),
        "source": {"model": _qualified_name(model), "rnn": _qualified_name(rnn),
                   "batch_first": getattr(rnn, "batch_first", None)},
        "layout": _LAYOUT,
    }


def _weights(graph: StreamingGraph) -> dict[str, np.ndarray]:
    """weights.npz's arrays, named as the module docstring lists."""
    def array(tensor: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())

    arrays = {}
    for k, spec in enumerate(graph.layers):
        for field in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            if getattr(spec, field) is not None:
                arrays[f"layer{k}.{field}"] = array(getattr(spec, field))
    for j, op in enumerate(graph.head):
        for field in ("weight", "bias"):
            if getattr(op, field) is not None:
                arrays[f"head{j}.{field}"] = array(getattr(op, field))
    if graph.embedding is not None:
        arrays["embedding.weight"] = array(graph.embedding)
    return arrays


def _bundle(model, head, embedding) -> tuple[StreamingGraph, dict, dict[str, np.ndarray]]:
    graph = streaming_graph(model, head=head, embedding=embedding)
    return graph, _describe(graph, model), _weights(graph)


def numpy_runtime_model(model, *, head=None, embedding=None) -> runtime.NumpyRecurrentModel:
    """The runtime's model for ``model`` built in memory, without a folder (benchmarks, tests).

    Same arguments as :func:`export_numpy`; the result computes what ``load(folder)`` of an
    export would.
    """
    _, config, arrays = _bundle(model, head, embedding)
    return runtime.NumpyRecurrentModel(config, arrays)


def _written_by_export_numpy(path: Path, new: bytes) -> bool:
    """Whether the file at ``path`` is one an earlier export_numpy wrote: a model.json of the
    runtime's format, a weights.npz of only the arrays the bundle names (layerN.*, headN.*,
    embedding.weight), the runtime file itself (its first line)."""
    if path.name == "model.json":
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(config, dict) and {"format_version", "layers", "gate_orders"} <= set(
            config)
    if path.name == "weights.npz":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return False
        return bool(names) and all(_BUNDLE_ARRAY.fullmatch(name) for name in names)
    return same_first_line(path, new)


#: the arrays' names inside an export's weights.npz (np.savez adds .npy)
_BUNDLE_ARRAY = re.compile(r"(layer\d+\.(weight|bias)_(ih|hh|hr)|head\d+\.(weight|bias)"
                           r"|embedding\.weight)\.npy")


def export_numpy(model, path, *, head=None, embedding=None, check: bool = True) -> ExportReport:
    """Write ``model`` (plus ``head`` and ``embedding``) to the folder ``path`` for the runtime.

    model: anything :func:`rnnkit.runtime.graph.streaming_graph` takes: rnnkit LSTM/GRU/RNN,
    Stacked (residual too), Recurrent, an rnnkit cell, torch.nn.LSTM/GRU/RNN (either batch_first,
    any num_layers, bias on or off, LSTM proj_size), unidirectional, or a module with
    ``streaming_parts()``. head: nn.Linear or an nn.Sequential of Linear and ReLU/Tanh/Sigmoid
    (Dropout and Identity are dropped). embedding: nn.Embedding; inputs are then token ids.

    Unsupported models raise :class:`rnnkit.runtime.graph.UnsupportedModelError` naming the
    layer, before anything is written. The folder is created if needed; an earlier export in
    it is replaced, but a file of the user's at one of the export's paths is refused before
    anything is written. All files are written in full before any replaces its earlier copy,
    model.json last (its presence marks a complete export), so a failed write leaves an
    earlier export as it was (:mod:`rnnkit.export.files`). With ``check`` the written folder is loaded with the runtime and run on
    :func:`check_inputs`, and ``max_abs_diff`` is its largest difference from the PyTorch
    model (past ``check.LIMIT_TEXT`` raises ``ExportMismatchError``; that or any other failure of
    the check removes model.json, so the folder no longer loads); otherwise it is None. A
    failed write or check removes the folders the call made (an existing one stays).
    """
    check_flag("check", check)  # "no" ran the check
    graph, config, arrays = _bundle(model, head, embedding)
    # Validate with the runtime itself, and serialize, before writing anything.
    runtime.NumpyRecurrentModel(config, arrays)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"export_numpy: {folder} exists and is not a folder; pass a folder path")

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    contents = {"weights.npz": buffer.getvalue(),
                RUNTIME_FILENAME: Path(runtime.__file__).read_bytes(),
                "model.json": text.encode("utf-8")}
    check_replaceable(folder, contents, "export_numpy", _written_by_export_numpy)
    with folder_for_writing(folder):  # a folder made here goes again if anything below fails
        # model.json last, an earlier one removed first (files.py): the folder never loads an
        # earlier config with the new weights
        write_files(folder, contents, last="model.json")
        if not check:
            return ExportReport("numpy", folder, FILES, None, note="check=False")
        try:
            inputs = check_inputs(graph)
            outputs, _ = runtime.load(folder).forward(inputs.numpy())
            difference = compare("numpy", outputs, expected_outputs("numpy", graph, inputs))
        except BaseException:
            # A mismatch, or a check that could not run: without model.json the folder no
            # longer loads, so an unchecked export is never used by mistake.
            (folder / "model.json").unlink(missing_ok=True)
            raise
    return ExportReport("numpy", folder, FILES, difference)
