"""Standalone NumPy runtime for recurrent models exported by ``rnnkit.export.export_numpy``.

This file imports only numpy, json and pathlib, so an exported folder (``model.json``,
``weights.npz`` and a copy of this file) runs where neither torch nor rnnkit is installed::

    import rnnkit_numpy_runtime as rt
    model = rt.load("exported_folder")
    outputs, state = model.forward(x)      # x (B, T, I) or (T, I); token ids (B, T) or (T,)
    y_t, state = model.step(x_t, state)    # x_t (B, I) or (I,); token ids (B,) or a scalar

A model is ``x_t --[embedding]--> layer 0 --> ... --> layer L-1 --> head ops --> y_t``.

Embedding (optional): the input is a token id per step and ``x_t = E[id_t]`` with E (V, I);
ids outside 0..V-1 raise ValueError.

Layer l (torch's parameter layout and gate order; G = gates * H) with input x (B, I_l)::

    gx = x W_ih^T + b_ih        (B, G)     W_ih (G, I_l)
    gh = h_{t-1} W_hh^T + b_hh  (B, G)     W_hh (G, P), biases zero when the layer has none

* LSTM, gates i, f, g, o (four (B, H) blocks of gx + gh)::

      c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)       (B, H)
      h_t = sigmoid(o) * tanh(c_t)                             (B, H)
      h_t = h_t W_hr^T           with projection, W_hr (P, H)  (B, P)

* GRU, gates r, z, n (three (B, H) blocks each of gx and gh)::

      r = sigmoid(gx_r + gh_r)        z = sigmoid(gx_z + gh_z)
      n = tanh(gx_n + r * gh_n)
      h_t = (1 - z) * n + z * h_{t-1}

* RNN: ``h_t = tanh(gx + gh)`` (rnn_tanh) or ``max(gx + gh, 0)`` (rnn_relu).

The layer's output is h_t, or ``h_t + x`` for a residual layer (then P = I_l); layer l + 1
takes layer l's output. The head ops then run in order on the top layer's output: ``linear``
(y W^T + b, W (O, I), b (O) or none), ``relu`` (max(y, 0)), ``tanh`` and ``sigmoid``.

Shapes: B batch, T steps, I input features, H hidden, P a layer's output width (proj size, else
H), V vocabulary, O the output width (the last linear's O, else the top layer's P). The state is
a list with one entry per layer: the pair (h (B, P), c (B, H)) for an LSTM, h (B, P) otherwise,
float32 and batch-major. All arrays are float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT_VERSION = 2
#: gates per layer kind, in torch's order (the order of the rows of W_ih, W_hh, b_ih, b_hh)
GATE_ORDERS = {"lstm": "i,f,g,o", "gru": "r,z,n", "rnn_tanh": "h", "rnn_relu": "h"}
HEAD_ACTIVATIONS = ("relu", "tanh", "sigmoid")
_REEXPORT = "re-export the model with rnnkit.export.export_numpy"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Numerically stable and float32-preserving: 0.5 * (1 + tanh(x / 2)).
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(x.dtype, copy=False)


class _Arrays(dict):
    """weights.npz's arrays by name, remembering which ones the model read (an array it never
    reads means model.json was edited: ``"has_bias": false`` silently dropped the biases)."""

    def __init__(self, arrays) -> None:
        super().__init__(arrays)
        self.used: set[str] = set()


def _weight(weights: _Arrays, name: str, shape: tuple) -> np.ndarray:
    """The float32 array ``name`` of weights.npz, checked against the shape model.json implies."""
    if name not in weights:
        raise ValueError(f"weights.npz has no array {name!r} that model.json needs; {_REEXPORT}")
    weights.used.add(name)
    array = np.asarray(weights[name], dtype=np.float32)
    if array.shape != tuple(shape):
        raise ValueError(f"weights.npz array {name!r} has shape {array.shape}; model.json needs "
                         f"{tuple(shape)}; {_REEXPORT}")
    return array


def _size(spec: dict, key: str, where: str) -> int:
    """``spec[key]`` as a whole number >= 1, or a one-line ValueError: int() read 8.7 as 8 and
    "8" as 8, so an edited model.json ran with other sizes than it says."""
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.json's {where} {key} must be a whole number >= 1; got "
                         f"{value!r}; {_REEXPORT}")
    return value


def _flag(spec: dict, key: str, where: str) -> bool:
    """``spec[key]`` as true or false, or a one-line ValueError: bool("false") is True."""
    value = spec[key]
    if not isinstance(value, bool):
        raise ValueError(f"model.json's {where} {key} must be true or false; got {value!r}; "
                         f"{_REEXPORT}")
    return value


def _real_array(value, what: str) -> np.ndarray:
    """``value`` as a float32 array, refusing what is not real numbers: a list of None became
    NaN and one of strings was parsed as numbers."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{what} must hold real numbers (a float array); got an array of "
                         f"dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def _halve_rows(matrix: np.ndarray, rows: int) -> np.ndarray:
    # sigmoid(a) = 0.5 + 0.5 * tanh(a / 2): halving a sigmoid gate's rows (exact in float32) lets
    # one tanh call evaluate all the gates of a step, which matters at batch 1 where every NumPy
    # call costs about a microsecond of overhead.
    matrix = matrix.copy()
    matrix[:rows] *= 0.5
    return matrix


class _Layer:
    """One recurrent layer: its weights, prepared once for fast steps, and its state checks."""

    gates = 1

    def __init__(self, index: int, spec: dict) -> None:
        self.index = index
        self.kind = spec["kind"]
        where = f"layer {index}"
        self.input_size = _size(spec, "input_size", where)
        self.hidden_size = _size(spec, "hidden_size", where)
        self.output_size = _size(spec, "output_size", where)
        self.residual = _flag(spec, "residual", where)
        self.state_sizes = {"h": self.output_size}

    def _load(self, spec: dict, weights) -> tuple:
        """(W_ih, W_hh, b_ih, b_hh) of this layer, in torch's layout; biases None if it has none."""
        rows, prefix = self.gates * self.hidden_size, f"layer{self.index}."
        w_ih = _weight(weights, prefix + "weight_ih", (rows, self.input_size))
        w_hh = _weight(weights, prefix + "weight_hh", (rows, self.output_size))
        if not _flag(spec, "has_bias", f"layer {self.index}"):
            return w_ih, w_hh, None, None
        return (w_ih, w_hh, _weight(weights, prefix + "bias_ih", (rows,)),
                _weight(weights, prefix + "bias_hh", (rows,)))

    def zero_state(self, batch: int):
        arrays = tuple(np.zeros((batch, width), dtype=np.float32)
                       for width in self.state_sizes.values())
        return arrays if len(arrays) > 1 else arrays[0]

    def check_state(self, entry, batch: int):
        """``entry`` as float32 arrays of shape (batch, width), or a one-line ValueError."""
        fields = len(self.state_sizes)
        if fields > 1 and (not isinstance(entry, (tuple, list)) or len(entry) != fields):
            raise ValueError(f"state[{self.index}] must be the pair (h, c) of LSTM layer "
                             f"{self.index}; got {type(entry).__name__}")
        arrays = tuple(entry) if fields > 1 else (entry,)
        checked = []
        for (name, width), array in zip(self.state_sizes.items(), arrays):
            array = _real_array(array, f"state[{self.index}] {name}")
            if array.shape != (batch, width):
                raise ValueError(f"state[{self.index}] {name} must have shape (B, {width}) = "
                                 f"({batch}, {width}) for layer {self.index}; got {array.shape}")
            checked.append(array)
        return tuple(checked) if fields > 1 else checked[0]


class _LSTMLayer(_Layer):
    gates = 4

    def __init__(self, index: int, spec: dict, weights) -> None:
        super().__init__(index, spec)
        hidden = self.hidden_size
        self.state_sizes = {"h": self.output_size, "c": hidden}
        w_ih, w_hh, b_ih, b_hh = self._load(spec, weights)
        # Rows i, f, g, o become i, f, o, g so the sigmoid gates form one (B, 3H) block.
        order = np.r_[0:2 * hidden, 3 * hidden:4 * hidden, 2 * hidden:3 * hidden]
        prepare = lambda rows: _halve_rows(rows[order], 3 * hidden)  # noqa: E731
        self.w_ih_t = np.ascontiguousarray(prepare(w_ih).T)
        self.w_hh_t = np.ascontiguousarray(prepare(w_hh).T)
        self.bias = None if b_ih is None else prepare(b_ih + b_hh)
        self.w_hr_t = None
        if _flag(spec, "has_projection", f"layer {index}"):
            w_hr = _weight(weights, f"layer{index}.weight_hr", (self.output_size, hidden))
            self.w_hr_t = np.ascontiguousarray(w_hr.T)
        elif self.output_size != hidden:
            raise ValueError(f"layer {index} outputs {self.output_size} features but has "
                             f"hidden_size {hidden} and no projection; {_REEXPORT}")

    def step(self, x: np.ndarray, state):
        h, c = state
        hidden = self.hidden_size
        gates = x @ self.w_ih_t
        gates += h @ self.w_hh_t
        if self.bias is not None:
            gates += self.bias
        gates = np.tanh(gates, out=gates)
        sigmoids = gates[:, :3 * hidden]
        sigmoids *= 0.5
        sigmoids += 0.5
        c = sigmoids[:, hidden:2 * hidden] * c + sigmoids[:, :hidden] * gates[:, 3 * hidden:]
        h = sigmoids[:, 2 * hidden:3 * hidden] * np.tanh(c)
        if self.w_hr_t is not None:
            h = h @ self.w_hr_t
        return h, (h, c)


class _GRULayer(_Layer):
    gates = 3

    def __init__(self, index: int, spec: dict, weights) -> None:
        super().__init__(index, spec)
        hidden = self.hidden_size
        w_ih, w_hh, b_ih, b_hh = self._load(spec, weights)
        self.w_ih_t = np.ascontiguousarray(_halve_rows(w_ih, 2 * hidden).T)
        self.w_hh_t = np.ascontiguousarray(_halve_rows(w_hh, 2 * hidden).T)
        self.bias_x = self.bias_h = None
        if b_ih is not None:
            # r and z add both biases, so they fold into one; n's hidden bias stays on the hidden
            # side because r multiplies (h W_hn^T + b_hn).
            self.bias_x = b_ih.copy()
            self.bias_x[:2 * hidden] += b_hh[:2 * hidden]
            self.bias_x = _halve_rows(self.bias_x, 2 * hidden)
            self.bias_h = np.zeros_like(b_hh)
            self.bias_h[2 * hidden:] = b_hh[2 * hidden:]

    def step(self, x: np.ndarray, h: np.ndarray):
        hidden = self.hidden_size
        gx = x @ self.w_ih_t
        gh = h @ self.w_hh_t
        if self.bias_x is not None:
            gx += self.bias_x
            gh += self.bias_h
        rz = np.tanh(gx[:, :2 * hidden] + gh[:, :2 * hidden])
        rz *= 0.5
        rz += 0.5
        n = np.tanh(gx[:, 2 * hidden:] + rz[:, :hidden] * gh[:, 2 * hidden:])
        h = n + rz[:, hidden:] * (h - n)
        return h, h


class _ElmanLayer(_Layer):
    def __init__(self, index: int, spec: dict, weights) -> None:
        super().__init__(index, spec)
        w_ih, w_hh, b_ih, b_hh = self._load(spec, weights)
        self.w_ih_t = np.ascontiguousarray(w_ih.T)
        self.w_hh_t = np.ascontiguousarray(w_hh.T)
        self.bias = None if b_ih is None else b_ih + b_hh
        self.relu = self.kind == "rnn_relu"

    def step(self, x: np.ndarray, h: np.ndarray):
        pre = x @ self.w_ih_t
        pre += h @ self.w_hh_t
        if self.bias is not None:
            pre += self.bias
        h = np.maximum(pre, 0, out=pre) if self.relu else np.tanh(pre, out=pre)
        return h, h


_LAYER_TYPES = {"lstm": _LSTMLayer, "gru": _GRULayer, "rnn_tanh": _ElmanLayer,
                "rnn_relu": _ElmanLayer}


class NumpyRecurrentModel:
    """An exported model (embedding, recurrent layers, head ops) evaluated with NumPy."""

    def __init__(self, config: dict, weights) -> None:
        version = config.get("format_version") if isinstance(config, dict) else None
        if version != FORMAT_VERSION:
            raise ValueError(f"model.json has format_version {version!r}; this runtime reads "
                             f"format_version {FORMAT_VERSION} only: {_REEXPORT}")
        self.config = config
        weights = _Arrays(weights)
        try:
            self.layers = self._build_layers(config["layers"], config["gate_orders"], weights)
            self.embedding = self._build_embedding(config["embedding"], weights)
            self.head, self.output_size = self._build_head(config["head"], weights)
        except KeyError as missing:
            raise ValueError(f"model.json has no field {missing}; {_REEXPORT}") from None
        except (TypeError, AttributeError, IndexError) as error:
            # a field of the wrong kind: layers as an object, a null where a list goes, ...
            raise ValueError(f"model.json is damaged (a field of the wrong type: {error}); "
                             f"{_REEXPORT}") from None
        self.input_size = self.layers[0].input_size
        self.vocab_size = None if self.embedding is None else self.embedding.shape[0]
        unused = sorted(set(weights) - weights.used)
        if unused:
            raise ValueError(f"weights.npz holds {', '.join(map(repr, unused[:3]))}, which "
                             f"model.json does not use: model.json was edited; {_REEXPORT}")
        described = {"input_size": self.input_size,
                     "output_size": self.output_size,
                     "input": "features" if self.embedding is None else "token_ids"}
        for key, value in described.items():
            if key in config and config[key] != value:
                raise ValueError(f"model.json gives {key} {config[key]!r}, but its layers and "
                                 f"head make it {value!r}: it was edited; {_REEXPORT}")

    # -- building -------------------------------------------------------------------------
    @staticmethod
    def _build_layers(specs: list, gate_orders: dict, weights) -> list:
        if not specs:
            raise ValueError(f"model.json lists no layers; {_REEXPORT}")
        layers = []
        for index, spec in enumerate(specs):
            kind = spec["kind"]
            if kind not in _LAYER_TYPES:
                raise ValueError(f"layer {index} has kind {kind!r}; this runtime supports "
                                 f"{sorted(_LAYER_TYPES)}")
            if gate_orders.get(kind) != GATE_ORDERS[kind]:
                raise ValueError(f"model.json gives gate order {gate_orders.get(kind)!r} for "
                                 f"{kind}; this runtime computes {GATE_ORDERS[kind]!r}")
            layer = _LAYER_TYPES[kind](index, spec, weights)
            width = layers[-1].output_size if layers else layer.input_size
            if layer.input_size != width:
                raise ValueError(f"layer {index} takes {layer.input_size} features but receives "
                                 f"{width}; {_REEXPORT}")
            if layer.residual and layer.output_size != layer.input_size:
                raise ValueError(f"layer {index} is residual but maps {layer.input_size} -> "
                                 f"{layer.output_size} features; {_REEXPORT}")
            layers.append(layer)
        return layers

    def _build_embedding(self, spec, weights):
        if spec is None:
            return None
        shape = (_size(spec, "vocab_size", "embedding"), _size(spec, "embedding_dim", "embedding"))
        if shape[1] != self.layers[0].input_size:
            raise ValueError(f"the embedding is {shape[1]} wide but layer 0 takes "
                             f"{self.layers[0].input_size} features; {_REEXPORT}")
        return _weight(weights, "embedding.weight", shape)

    def _build_head(self, ops: list, weights) -> tuple[list, int]:
        """The head ops as (kind, W^T, b) and the model's output width O."""
        head, width = [], self.layers[-1].output_size
        for index, op in enumerate(ops):
            kind = op["kind"]
            if kind == "linear":
                where = f"head op {index}"
                if _size(op, "in_features", where) != width:
                    raise ValueError(f"head op {index} takes {op['in_features']} features but "
                                     f"receives {width}; {_REEXPORT}")
                width = _size(op, "out_features", where)
                weight = _weight(weights, f"head{index}.weight", (width, op["in_features"]))
                bias = (_weight(weights, f"head{index}.bias", (width,))
                        if _flag(op, "has_bias", where) else None)
                head.append((kind, np.ascontiguousarray(weight.T), bias))
            elif kind in HEAD_ACTIVATIONS:
                head.append((kind, None, None))
            else:
                raise ValueError(f"head op {index} has kind {kind!r}; this runtime supports "
                                 f"linear, {', '.join(HEAD_ACTIVATIONS)}")
        return head, width

    # -- state ----------------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> list:
        """Zero state: per layer (h (batch, P), c (batch, H)) for an LSTM, else h (batch, P)."""
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
            raise ValueError(f"batch must be a whole number >= 0; got {batch!r}")
        return [layer.zero_state(batch) for layer in self.layers]

    def _check_state(self, state, batch: int) -> list:
        if state is None:
            return self.initial_state(batch)
        if not isinstance(state, (list, tuple)) or len(state) != len(self.layers):
            got = (f"{len(state)} entries" if isinstance(state, (list, tuple))
                   else type(state).__name__)
            raise ValueError(f"state must be a list with one entry per layer "
                             f"({len(self.layers)}); got {got}")
        return [layer.check_state(entry, batch) for layer, entry in zip(self.layers, state)]

    # -- inputs ---------------------------------------------------------------------------
    def _token_ids(self, ids, batched_ndim: int, shapes: str) -> tuple[np.ndarray, bool]:
        """Integer ids checked against the vocabulary; returns (ids, unbatched)."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"this model takes integer token ids {shapes} (it has an embedding "
                             f"of {self.vocab_size} tokens); got an array of dtype {ids.dtype}")
        if ids.ndim not in (batched_ndim - 1, batched_ndim):
            raise ValueError(f"token ids must have shape {shapes}; got shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)].flat[0]
            raise ValueError(f"token id {bad} is out of range: the vocabulary has "
                             f"{self.vocab_size} tokens (ids 0..{self.vocab_size - 1})")
        unbatched = ids.ndim == batched_ndim - 1
        return (ids[None] if unbatched else ids), unbatched

    def _features(self, x, batched_ndim: int, shapes: str) -> tuple[np.ndarray, bool]:
        """Float32 features with the batch axis added if missing; returns (x, unbatched)."""
        x = _real_array(x, "input")
        if x.ndim not in (batched_ndim - 1, batched_ndim) or x.shape[-1] != self.input_size:
            raise ValueError(f"input must have shape {shapes}; got shape {x.shape}")
        unbatched = x.ndim == batched_ndim - 1
        return (x[None] if unbatched else x), unbatched

    # -- compute --------------------------------------------------------------------------
    def _advance(self, x: np.ndarray, state: list):
        """One step of every layer and the head: x (B, I) contiguous -> (y (B, O), state)."""
        new_state = []
        for layer, layer_state in zip(self.layers, state):
            output, layer_state = layer.step(x, layer_state)
            x = output + x if layer.residual else output
            new_state.append(layer_state)
        for kind, weight_t, bias in self.head:
            if kind == "linear":
                x = x @ weight_t
                if bias is not None:
                    x += bias
            elif kind == "relu":
                x = np.maximum(x, 0)
            elif kind == "tanh":
                x = np.tanh(x)
            else:
                x = _sigmoid(x)
        return x, new_state

    def step(self, x_t, state=None):
        """One time step; returns (y_t (B, O), or (O,) for unbatched input, new state).

        x_t: features (B, I) or (I,), or with an embedding integer token ids (B,) or a scalar.
        state: from :meth:`initial_state` or an earlier call, or None for zeros. The given
        state is not modified.
        """
        if self.embedding is not None:
            ids, unbatched = self._token_ids(x_t, 1, "(B,) or a scalar")
            x_t = self.embedding[ids]
        else:
            x_t, unbatched = self._features(x_t, 2, f"(B, {self.input_size}) or "
                                                    f"({self.input_size},)")
            # Contiguous rows make the matrix products (and so the results) identical to forward's.
            x_t = np.ascontiguousarray(x_t)
        y, state = self._advance(x_t, self._check_state(state, x_t.shape[0]))
        if not self.head:  # y is then the last layer's h, held by the state: a caller
            y = y.copy()   # changing y in place would change the next step
        return (y[0] if unbatched else y), state

    def forward(self, x, state=None):
        """Run over a sequence; returns (outputs (B, T, O), or (T, O) unbatched, final state).

        x: features (B, T, I) or (T, I), or with an embedding integer token ids (B, T) or (T,).
        The state stays batch-major (B = 1 for unbatched input). Equals calling :meth:`step`
        for t = 0..T-1, bit for bit.
        """
        if self.embedding is not None:
            ids, unbatched = self._token_ids(x, 2, "(B, T) or (T,)")
            x = self.embedding[ids]
        else:
            x, unbatched = self._features(x, 3, f"(B, T, {self.input_size}) or "
                                                f"(T, {self.input_size})")
        batch, steps = x.shape[0], x.shape[1]
        state = self._check_state(state, batch)
        time_major = np.ascontiguousarray(x.transpose(1, 0, 2))  # contiguous (B, I) per step
        outputs = np.empty((batch, steps, self.output_size), dtype=np.float32)
        for t in range(steps):
            outputs[:, t], state = self._advance(time_major[t], state)
        return (outputs[0] if unbatched else outputs), state

    __call__ = forward


def load(folder) -> NumpyRecurrentModel:
    """Load an exported folder (``model.json`` + ``weights.npz``)."""
    folder = Path(folder)
    config_path = folder / "model.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist; export a model to {folder} with "
                                f"rnnkit.export.export_numpy first")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError included
        raise ValueError(f"{config_path} cannot be read ({_one_line(error)}); {_REEXPORT}") \
            from None
    weights_path = folder / "weights.npz"
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} does not exist (or is not a file); {_REEXPORT}")
    try:
        with np.load(weights_path, allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
    except Exception as error:  # zipfile's BadZipFile, EOFError, a CRC or pickle refusal, ...
        raise ValueError(f"{weights_path} is damaged ({_one_line(error)}); {_REEXPORT}") \
            from None
    return NumpyRecurrentModel(config, weights)


def _one_line(error: BaseException) -> str:
    """The first line of an error's message (numpy's pickle refusal advises allow_pickle=True,
    which is no fix for a damaged file), or its type's name."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first.split(" Pass allow_pickle=")[0].rstrip(".;,")
