"""Build the ONNX model of a :class:`StreamingGraph`, for :func:`.onnx_export.export_onnx`.

Imports onnx at module level: only import it after checking the package is installed.
Letters: B batch, T time, I input width, H hidden, P = proj_size or H (the layer's output),
O output width, G = gates * H (4H LSTM, 3H GRU, H Elman). The graph, batch-major outside::

    x (B, T, I) float32 ──Transpose──> (T, B, I) ──> layer 0 ──> ... ──> layer L-1
        ──> head ──Transpose──> y (B, T, O)
    tokens (B, T) int64 ──Gather(embedding (V, I))──> (B, T, I) ──Transpose──> ...

Layer k reads the state inputs ``h0_{k}`` (B, P) (and ``c0_{k}`` (B, H) for an LSTM) and
writes ``h_{k}`` / ``c_{k}`` of the same shapes, so a caller streams by feeding them back.
``residual`` layers add their input to their output (Add); the head is MatMul (+ Add bias) and
Relu/Tanh/Sigmoid, applied time-major before the final Transpose.

Layers without projection are ONNX's own LSTM/GRU/RNN operators, time-major (layout=0):
X (T, B, I), initial_h (1, B, H), Y (T, 1, B, H), Y_h / Y_c (1, B, H). Parameter mapping:

* W = weight_ih (G, I) and R = weight_hh (G, H) with a leading direction axis of 1;
  B = [bias_ih, bias_hh] concatenated (1, 2G), omitted without bias (ONNX's default is zero).
* LSTM gates: torch i,f,g,o -> ONNX i,o,f,c (torch chunks 0,3,1,2).
* GRU gates: torch r,z,n -> ONNX z,r,h (torch chunks 1,0,2); ``linear_before_reset=1``
  because torch applies the reset gate after the recurrent matmul:
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
* Elman: one gate, ``activations=["Tanh"]`` or ``["Relu"]``.

An LSTM with projection (torch ``proj_size``; weight_hr (P, H)) has no ONNX operator, so it is a
Scan over time whose body is one step in torch's gate order i,f,g,o::

    gates_x = X @ weight_ih^T + bias_ih + bias_hh      (T, B, 4H), all steps at once
    body(h (B, P), c (B, H), gates_x_t (B, 4H)):
        i, f, g, o = Split(gates_x_t + h @ weight_hh^T)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = (sigmoid(o) * tanh(c')) @ weight_hr^T
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from ..runtime.graph import LayerSpec, StreamingGraph

BATCH, TIME = "batch", "time"  # the symbolic (dynamic) dimensions
#: torch gate chunks in ONNX's order, per cell kind
ONNX_GATE_CHUNKS = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
_ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def layer_states(k: int, layer: LayerSpec) -> list[tuple[str, str, int]]:
    """(input name, output name, width) per state field of layer k: h0_k -> h_k, c0_k -> c_k."""
    return [(f"{field}0_{k}", f"{field}_{k}", width)
            for field, width in layer.state_sizes().items()]


def state_names(graph: StreamingGraph) -> list[tuple[str, str, int]]:
    """:func:`layer_states` of every layer, bottom first: the models' state inputs in order."""
    return [names for k, layer in enumerate(graph.layers) for names in layer_states(k, layer)]


def input_name(graph: StreamingGraph) -> str:
    return "x" if graph.embedding is None else "tokens"


class _Builder:
    """Collects nodes and initializers, giving every value a unique name.

    Names are unique across the Scan bodies too: a body may read outer values (the weights)
    by name, and ONNX forbids a body value shadowing an outer one.
    """

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken: set[str] = set()
        self._axes: dict[int, str] = {}

    def fresh(self, hint: str) -> str:
        name, index = hint, 1
        while name in self._taken:
            name, index = f"{hint}_{index}", index + 1
        self._taken.add(name)
        return name

    def constant(self, hint: str, array: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def axes(self, axis: int) -> str:
        """An int64 [axis] initializer for Squeeze/Unsqueeze (inputs since opset 13), shared."""
        if axis not in self._axes:
            self._axes[axis] = self.constant(f"axes_{axis}", np.array([axis], np.int64))
        return self._axes[axis]

    def op(self, op_type: str, inputs: list[str], hint: str, *, outputs: list[str] | None = None,
           count: int = 1, into: list | None = None, **attributes) -> str | list[str]:
        """Add one node; returns its output name (or names when ``count`` > 1 or ``outputs``).

        outputs: exact names (graph outputs); otherwise ``count`` fresh names from ``hint``.
        into: the node list to append to (a Scan body), default the main graph.
        """
        names = outputs or [self.fresh(hint if count == 1 else f"{hint}_{i}") for i in range(count)]
        node = helper.make_node(op_type, inputs, names, name=self.fresh(f"{hint}_node"),
                                **attributes)
        (self.nodes if into is None else into).append(node)
        return names[0] if outputs is None and count == 1 else names


def _array(tensor) -> np.ndarray:
    return tensor.numpy().astype(np.float32, copy=False)


def _onnx_gates(tensor, kind: str) -> np.ndarray:
    """Reorder the gate blocks of a (G, ...) or (G,) torch parameter into ONNX's order."""
    chunks = np.split(_array(tensor), len(ONNX_GATE_CHUNKS[kind]), axis=0)
    return np.concatenate([chunks[i] for i in ONNX_GATE_CHUNKS[kind]], axis=0)


def _bias_or_zeros(bias, rows: int) -> np.ndarray:
    return _array(bias) if bias is not None else np.zeros(rows, np.float32)


def _standard_layer(b: _Builder, k: int, layer: LayerSpec, x: str, states: tuple[str, ...],
                    finals: tuple[str, ...]) -> str:
    """One ONNX LSTM/GRU/RNN node: x (T, B, I) -> returns y (T, B, H); writes ``finals``."""
    kind, hidden = layer.kind, layer.hidden_size
    weights = [b.constant(f"W_{k}", _onnx_gates(layer.weight_ih, kind)[None]),
               b.constant(f"R_{k}", _onnx_gates(layer.weight_hh, kind)[None])]
    if layer.bias_ih is not None or layer.bias_hh is not None:
        rows = layer.weight_ih.shape[0]
        biases = [_onnx_gates(bias, kind) if bias is not None else np.zeros(rows, np.float32)
                  for bias in (layer.bias_ih, layer.bias_hh)]
        weights.append(b.constant(f"B_{k}", np.concatenate(biases)[None]))
    else:
        weights.append("")
    # The ONNX ops want states with a direction axis: (B, H) -> (1, B, H).
    initial = [b.op("Unsqueeze", [state, b.axes(0)], f"{state}_dir") for state in states]
    attributes = {"hidden_size": hidden}
    if kind == "gru":
        attributes["linear_before_reset"] = 1
    elif kind.startswith("rnn_"):
        attributes["activations"] = [_ACTIVATIONS[kind[len("rnn_"):]]]
    # inputs: X, W, R, B, sequence_lens (none: every row runs all T steps), initial_h[, initial_c]
    outputs = b.op(_ONNX_OPS[kind], [x, *weights, "", *initial], f"{_ONNX_OPS[kind]}_{k}",
                   count=1 + len(states), **attributes)
    for directional, final in zip(outputs[1:], finals):
        b.op("Squeeze", [directional, b.axes(0)], final, outputs=[final])
    return b.op("Squeeze", [outputs[0], b.axes(1)], f"y_{k}")  # (T, 1, B, H) -> (T, B, H)


def _projected_lstm(b: _Builder, k: int, layer: LayerSpec, x: str, states: tuple[str, ...],
                    finals: tuple[str, ...]) -> str:
    """A Scan over time for an LSTM with projection: x (T, B, I) -> returns y (T, B, P)."""
    hidden, width = layer.hidden_size, layer.output_size
    # The input half of the gates needs no state: one MatMul for all steps outside the loop
    # leaves only the recurrent MatMul inside it.
    gates_x = b.op("MatMul", [x, b.constant(f"weight_ih_T_{k}", _array(layer.weight_ih).T)],
                   f"gates_x_{k}")
    if layer.bias_ih is not None or layer.bias_hh is not None:
        rows = 4 * hidden
        bias = _bias_or_zeros(layer.bias_ih, rows) + _bias_or_zeros(layer.bias_hh, rows)
        gates_x = b.op("Add", [gates_x, b.constant(f"bias_{k}", bias)], f"gates_xb_{k}")
    weight_hh_t = b.constant(f"weight_hh_T_{k}", _array(layer.weight_hh).T)
    weight_hr_t = b.constant(f"weight_hr_T_{k}", _array(layer.weight_hr).T)
    split = b.constant(f"gate_split_{k}", np.full(4, hidden, np.int64))

    body: list = []
    h, c, step_gates_x = (b.fresh(f"{name}_{k}") for name in ("h_prev", "c_prev", "gates_x_t"))
    gates = b.op("Add", [step_gates_x, b.op("MatMul", [h, weight_hh_t], f"gates_h_{k}", into=body)],
                 f"gates_{k}", into=body)
    i, f, g, o = b.op("Split", [gates, split], f"gate_{k}", count=4, into=body, axis=1)
    i, f, o = (b.op("Sigmoid", [gate], f"{gate}_sigmoid", into=body) for gate in (i, f, o))
    g = b.op("Tanh", [g], f"{g}_tanh", into=body)
    c_next = b.op("Add", [b.op("Mul", [f, c], f"keep_{k}", into=body),
                          b.op("Mul", [i, g], f"write_{k}", into=body)], f"c_next_{k}", into=body)
    cell_out = b.op("Mul", [o, b.op("Tanh", [c_next], f"c_tanh_{k}", into=body)],
                    f"h_full_{k}", into=body)
    h_next = b.op("MatMul", [cell_out, weight_hr_t], f"h_next_{k}", into=body)
    # A body output name may appear once: the per-step output is a copy of the new state.
    y_t = b.op("Identity", [h_next], f"y_t_{k}", into=body)

    def typed(name: str, size: int):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, size])

    body_graph = helper.make_graph(
        body, f"projected_lstm_step_{k}",
        [typed(h, width), typed(c, hidden), typed(step_gates_x, 4 * hidden)],
        [typed(h_next, width), typed(c_next, hidden), typed(y_t, width)])
    y = b.fresh(f"y_{k}")
    b.op("Scan", [*states, gates_x], f"Scan_{k}", outputs=[*finals, y], body=body_graph,
         num_scan_inputs=1)
    return y


def build_model(graph: StreamingGraph, opset: int) -> onnx.ModelProto:
    """The ONNX model of ``graph`` (see the module docstring for its inputs and outputs)."""
    b = _Builder()
    names = state_names(graph)
    for taken in ["x", "tokens", "y", *(n for triple in names for n in triple[:2])]:
        b.fresh(taken)  # reserve the interface names
    source = input_name(graph)
    if graph.embedding is not None:
        table = b.constant("embedding", _array(graph.embedding))
        # Gather would wrap negative ids (and fail on large ones); ONNX cannot raise, so ids
        # are clamped into [0, V - 1], as the C export does.
        low = b.constant("token_min", np.array(0, dtype=np.int64))
        high = b.constant("token_max", np.array(graph.vocab_size - 1, dtype=np.int64))
        ids = b.op("Clip", [source, low, high], "token_ids")
        features = b.op("Gather", [table, ids], "embedded", axis=0)
        source_info = helper.make_tensor_value_info(source, TensorProto.INT64, [BATCH, TIME])
    else:
        features = source
        source_info = helper.make_tensor_value_info(source, TensorProto.FLOAT,
                                                    [BATCH, TIME, graph.input_size])
    h = b.op("Transpose", [features], "x_time_major", perm=[1, 0, 2])
    for k, layer in enumerate(graph.layers):
        states, finals = zip(*((n[0], n[1]) for n in layer_states(k, layer)))
        build = _projected_lstm if layer.weight_hr is not None else _standard_layer
        y = build(b, k, layer, h, states, finals)
        h = b.op("Add", [y, h], f"residual_{k}") if layer.residual else y
    for index, head_op in enumerate(graph.head):
        if head_op.kind == "linear":
            h = b.op("MatMul", [h, b.constant(f"head_{index}_weight_T", _array(head_op.weight).T)],
                     f"head_{index}")
            if head_op.bias is not None:
                h = b.op("Add", [h, b.constant(f"head_{index}_bias", _array(head_op.bias))],
                         f"head_{index}_biased")
        else:
            h = b.op(_ACTIVATIONS[head_op.kind], [h], f"head_{index}_{head_op.kind}")
    b.op("Transpose", [h], "y", outputs=["y"], perm=[1, 0, 2])

    def state_info(name: str, width: int):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, width])

    onnx_graph = helper.make_graph(
        b.nodes, "rnnkit_streaming",
        [source_info, *(state_info(n[0], n[2]) for n in names)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, TIME, graph.output_size]),
         *(state_info(n[1], n[2]) for n in names)],
        initializer=b.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="rnnkit",
                              producer_version=__version__, doc_string=_describe(graph))
    # The oldest IR version that carries this opset, so older runtimes can load the file.
    model.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(model, {
        "rnnkit_version": __version__,
        "cell_kinds": ",".join(layer.kind for layer in graph.layers),
        "input": source,
        "state_inputs": ",".join(n[0] for n in names),
        "state_outputs": ",".join(n[1] for n in names),
        "layout": "batch-major: input (batch, time[, I]), y (batch, time, O), states (batch, "
                  "width)",
    })
    return model


def _describe(graph: StreamingGraph) -> str:
    names = state_names(graph)
    layers = ", ".join(f"{layer.kind}({layer.input_size}->{layer.output_size})"
                       + (" residual" if layer.residual else "") for layer in graph.layers)
    source = ("tokens (batch, time) int64" if graph.embedding is not None
              else f"x (batch, time, {graph.input_size}) float32")
    return (f"rnnkit {__version__} streaming export: {layers}; input {source}; output y (batch, "
            f"time, {graph.output_size}); state inputs {', '.join(n[0] for n in names)} (zeros "
            f"to start) become outputs {', '.join(n[1] for n in names)}: feed them back on the "
            f"next call to continue the sequence.")
