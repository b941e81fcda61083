"""Standalone NumPy runtime for recurrent models exported by ``rnnkit.export.export_numpy``.

This file imports only numpy, json and pathlib, so an exported folder (``model.json``,
``weights.npz`` and a copy of this file) runs where neither torch nor rnnkit is installed::

    import rnnkit_numpy_runtime as rt
    model = rt.load("exported_folder")
    outputs, state = model.forward(x)            # x (B, T, I) or (T, I)
    y_t, state = model.step(x_t, state)          # x_t (B, I) or (I,)

Equations per layer (torch gate order; ``gx = x_t W_ih^T + b_ih``, ``gh = h_{t-1} W_hh^T + b_hh``,
biases are zero when the model has none):

* LSTM (gates i, f, g, o; gates = gx + gh split into four (B, H) blocks)::

      c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
      h_t = sigmoid(o) * tanh(c_t)

* GRU (gates r, z, n; gx and gh each split into three (B, H) blocks)::

      r = sigmoid(gx_r + gh_r)    z = sigmoid(gx_z + gh_z)
      n = tanh(gx_n + r * gh_n)
      h_t = (1 - z) * n + z * h_{t-1}

* RNN: ``h_t = act(gx + gh)`` with act tanh or relu.

Layer l > 0 takes layer l-1's h_t as its input. The step output ``y_t`` is the top layer's
h_t, or ``y_t = h_t W_head^T + b_head`` when the model has a linear head.

Shapes: x_t (B, I); per layer W_ih (G*H, I_l), W_hh (G*H, H), b_* (G*H) with G = 4 (LSTM),
3 (GRU), 1 (RNN); state is a list with one entry per layer: the tuple (h, c) for LSTM, the
array h otherwise, each (B, H) float32, batch-major.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
GATE_COUNTS = {"lstm": 4, "gru": 3, "rnn": 1}
GATE_ORDERS = {"lstm": "ifgo", "gru": "rzn", "rnn": "h"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Numerically stable and float32-preserving: 0.5 * (1 + tanh(x / 2)).
    return 0.5 * (1.0 + np.tanh(0.5 * x)).astype(x.dtype, copy=False)


class NumpyRecurrentModel:
    """A stack of LSTM/GRU/RNN layers (plus optional linear head) evaluated with NumPy."""

    def __init__(self, config: dict, weights: dict) -> None:
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported model.json format_version {version!r}; "
                             f"this runtime reads version {FORMAT_VERSION}")
        self.config = config
        self.cell = config["cell"]
        if self.cell not in GATE_COUNTS:
            raise ValueError(f"unknown cell {self.cell!r} in model.json; expected one of "
                             f"{sorted(GATE_COUNTS)}")
        self.input_size = int(config["input_size"])
        self.hidden_size = int(config["hidden_size"])
        self.num_layers = int(config["num_layers"])
        self.nonlinearity = config.get("nonlinearity", "tanh")
        gates = GATE_COUNTS[self.cell] * self.hidden_size
        self.layers = []
        for index in range(self.num_layers):
            w_ih = np.asarray(weights[f"layer{index}.weight_ih"], dtype=np.float32)
            w_hh = np.asarray(weights[f"layer{index}.weight_hh"], dtype=np.float32)
            if config["has_bias"]:
                b_ih = np.asarray(weights[f"layer{index}.bias_ih"], dtype=np.float32)
                b_hh = np.asarray(weights[f"layer{index}.bias_hh"], dtype=np.float32)
            else:
                b_ih = b_hh = np.zeros(gates, dtype=np.float32)
            self.layers.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T),
                                np.ascontiguousarray(b_ih), np.ascontiguousarray(b_hh)))
        self.head = None
        if config.get("head") is not None:
            w = np.asarray(weights["head.weight"], dtype=np.float32)
            b = (np.asarray(weights["head.bias"], dtype=np.float32) if config["head"]["has_bias"]
                 else np.zeros(w.shape[0], dtype=np.float32))
            self.head = (np.ascontiguousarray(w.T), b)
        self.output_size = self.head[0].shape[1] if self.head is not None else self.hidden_size

    # -- state --------------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> list:
        """Zero state: one (h, c) tuple (LSTM) or h array per layer, each (batch, H)."""
        zeros = lambda: np.zeros((batch, self.hidden_size), dtype=np.float32)  # noqa: E731
        if self.cell == "lstm":
            return [(zeros(), zeros()) for _ in range(self.num_layers)]
        return [zeros() for _ in range(self.num_layers)]

    def _check_state(self, state, batch: int) -> list:
        if state is None:
            return self.initial_state(batch)
        if len(state) != self.num_layers:
            raise ValueError(f"state must have one entry per layer ({self.num_layers}); "
                             f"got {len(state)}")
        fields = 2 if self.cell == "lstm" else 1
        checked = []
        for layer_state in state:
            arrays = tuple(layer_state) if fields == 2 else (layer_state,)
            if len(arrays) != fields:
                raise ValueError("LSTM state entries must be (h, c) tuples")
            arrays = tuple(np.asarray(a, dtype=np.float32) for a in arrays)
            for a in arrays:
                if a.shape != (batch, self.hidden_size):
                    raise ValueError(f"state arrays must be (B, H) = ({batch}, "
                                     f"{self.hidden_size}); got {a.shape}")
            checked.append(arrays if fields == 2 else arrays[0])
        return checked

    # -- compute ------------------------------------------------------------------------
    def _cell_step(self, layer, x: np.ndarray, layer_state):
        w_ih_t, w_hh_t, b_ih, b_hh = layer
        gx = x @ w_ih_t + b_ih
        if self.cell == "lstm":
            h, c = layer_state
            i, f, g, o = np.split(gx + (h @ w_hh_t + b_hh), 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            return h, (h, c)
        h = layer_state
        gh = h @ w_hh_t + b_hh
        if self.cell == "gru":
            x_r, x_z, x_n = np.split(gx, 3, axis=1)
            h_r, h_z, h_n = np.split(gh, 3, axis=1)
            r = _sigmoid(x_r + h_r)
            z = _sigmoid(x_z + h_z)
            n = np.tanh(x_n + r * h_n)
            h = n + z * (h - n)
            return h, h
        pre = gx + gh
        h = np.tanh(pre) if self.nonlinearity == "tanh" else np.maximum(pre, 0)
        return h, h

    def step(self, x_t, state=None):
        """One time step. x_t (B, I) or (I,); returns (y_t (B, out) or (out,), new state)."""
        x_t = np.asarray(x_t, dtype=np.float32)
        unbatched = x_t.ndim == 1
        if unbatched:
            x_t = x_t[None, :]
        if x_t.ndim != 2 or x_t.shape[1] != self.input_size:
            raise ValueError(f"x_t must be (B, {self.input_size}) or ({self.input_size},); "
                             f"got shape {x_t.shape}")
        state = self._check_state(state, x_t.shape[0])
        new_state = []
        inp = x_t
        for layer, layer_state in zip(self.layers, state):
            inp, layer_state = self._cell_step(layer, inp, layer_state)
            new_state.append(layer_state)
        y = inp if self.head is None else inp @ self.head[0] + self.head[1]
        return (y[0] if unbatched else y), new_state

    def forward(self, x, state=None):
        """Run over a sequence. x (B, T, I) or (T, I); returns (outputs (B, T, out), state).

        Unbatched input gives outputs (T, out); the state stays batch-major with B = 1.
        """
        x = np.asarray(x, dtype=np.float32)
        unbatched = x.ndim == 2
        if unbatched:
            x = x[None]
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x must be (B, T, {self.input_size}) or (T, {self.input_size}); "
                             f"got shape {x.shape}")
        batch, steps = x.shape[0], x.shape[1]
        state = self._check_state(state, batch)
        outputs = np.empty((batch, steps, self.output_size), dtype=np.float32)
        for t in range(steps):
            outputs[:, t], state = self.step(x[:, t], state)
        return (outputs[0] if unbatched else outputs), state

    __call__ = forward


def load(folder) -> NumpyRecurrentModel:
    """Load an exported folder (``model.json`` + ``weights.npz``)."""
    folder = Path(folder)
    config = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    with np.load(folder / "weights.npz", allow_pickle=False) as archive:
        weights = {name: archive[name] for name in archive.files}
    return NumpyRecurrentModel(config, weights)
