"""Export a recurrent model (plus optional linear head) to a folder that runs on NumPy alone.

The folder holds ``weights.npz`` (float32 arrays ``layer{k}.weight_ih``, ``layer{k}.weight_hh``,
``layer{k}.bias_ih``, ``layer{k}.bias_hh``, ``head.weight``, ``head.bias``), ``model.json``
(cell, sizes, layers, nonlinearity, bias, head shape, format version, gate order) and a copy of
``rnnkit_numpy_runtime.py``, so it runs where neither torch nor rnnkit is installed::

    from rnnkit.export import export_numpy
    export_numpy(rnnkit.LSTM(8, 16, num_layers=2), "lstm_np", head=torch.nn.Linear(16, 4))

    # elsewhere, with only numpy:
    import rnnkit_numpy_runtime as rt      # the copy inside "lstm_np"
    outputs, state = rt.load("lstm_np").forward(x)   # x (B, T, I), batch-major always
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..layers import GRU, LSTM, RNN
from ..training import atomic_write
from . import rnnkit_numpy_runtime as runtime

RUNTIME_FILENAME = "rnnkit_numpy_runtime.py"
_SUPPORTED = "rnnkit.LSTM/GRU/RNN or torch.nn.LSTM/GRU/RNN"
_CELLS = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}


def _describe_model(rnn) -> dict:
    """model.json's fields for ``rnn``; a one-line ValueError for anything unsupported."""
    if not isinstance(rnn, (LSTM, GRU, RNN, nn.LSTM, nn.GRU, nn.RNN)):
        raise ValueError(f"export_numpy supports {_SUPPORTED} (unidirectional, proj_size=0); "
                         f"got {type(rnn).__module__}.{type(rnn).__qualname__}")
    name = type(rnn).__name__
    if getattr(rnn, "bidirectional", False):
        raise ValueError(f"export_numpy: {name}(bidirectional=True) is not supported; the NumPy "
                         f"runtime supports unidirectional layers only")
    if getattr(rnn, "proj_size", 0):
        raise ValueError(f"export_numpy: {name}(proj_size={rnn.proj_size}) is not supported; the "
                         f"NumPy runtime supports LSTM with proj_size=0 only")
    cell = _CELLS.get(rnn.mode)
    if cell is None:
        raise ValueError(f"export_numpy: {name} with mode {rnn.mode!r} is not supported; "
                         f"supported modes are {sorted(_CELLS)}")
    return {
        "format_version": runtime.FORMAT_VERSION,
        "cell": cell,
        "gate_order": runtime.GATE_ORDERS[cell],
        "input_size": int(rnn.input_size),
        "hidden_size": int(rnn.hidden_size),
        "num_layers": int(rnn.num_layers),
        "nonlinearity": "relu" if rnn.mode == "RNN_RELU" else "tanh",
        "has_bias": bool(rnn.bias),
        "source": f"{type(rnn).__module__}.{type(rnn).__qualname__}",
        "source_batch_first": bool(rnn.batch_first),
        "layout": "batch-major: x (B, T, I), state per layer (B, H)",
        "head": None,
    }


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())


def _collect_weights(rnn, config: dict) -> dict[str, np.ndarray]:
    state = rnn.state_dict()  # torch.nn's key names for both rnnkit presets and torch.nn
    arrays = {}
    fields = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if config["has_bias"] else [])
    for layer in range(config["num_layers"]):
        for field in fields:
            key = f"{field}_l{layer}"
            if key not in state:
                raise ValueError(f"export_numpy: parameter {key!r} missing from the model's "
                                 f"state_dict; expected torch.nn's parameter names")
            arrays[f"layer{layer}.{field}"] = _to_numpy(state[key])
    return arrays


def _describe_head(head, hidden_size: int) -> tuple[dict, dict[str, np.ndarray]]:
    if not isinstance(head, nn.Linear):
        raise ValueError(f"export_numpy: head must be a torch.nn.Linear (or None); got "
                         f"{type(head).__module__}.{type(head).__qualname__}")
    if head.in_features != hidden_size:
        raise ValueError(f"export_numpy: head.in_features={head.in_features} must equal the "
                         f"model's hidden_size={hidden_size}")
    arrays = {"head.weight": _to_numpy(head.weight)}
    if head.bias is not None:
        arrays["head.bias"] = _to_numpy(head.bias)
    info = {"type": "linear", "in_features": int(head.in_features),
            "out_features": int(head.out_features), "has_bias": head.bias is not None}
    return info, arrays


def export_numpy(rnn, path, head: nn.Linear | None = None) -> Path:
    """Write ``rnn`` (and ``head``) to the folder ``path`` for the NumPy runtime; returns it.

    rnn: rnnkit.LSTM/GRU/RNN or torch.nn.LSTM/GRU/RNN, unidirectional, any num_layers, either
    batch_first (the runtime is always batch-major), bias on or off, RNN tanh or relu, LSTM
    proj_size 0. Dropout is ignored (inference). head: optional torch.nn.Linear(H, out) applied
    to the top layer's h at every step. Each file is written atomically; the folder is created
    if needed and files of an earlier export in it are replaced.
    """
    config = _describe_model(rnn)
    arrays = _collect_weights(rnn, config)
    if head is not None:
        config["head"], head_arrays = _describe_head(head, config["hidden_size"])
        arrays.update(head_arrays)
    # Validate with the runtime itself before writing anything.
    runtime.NumpyRecurrentModel(config, arrays)

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"export_numpy: {folder} exists and is not a folder; pass a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(folder / "weights.npz", buffer.getvalue())
    atomic_write(folder / RUNTIME_FILENAME, Path(runtime.__file__).read_bytes())
    # model.json last: its presence marks a complete export.
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / "model.json", text.encode("utf-8"))
    return folder
