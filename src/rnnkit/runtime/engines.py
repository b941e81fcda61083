"""The two engines that advance a :class:`StreamingGraph` for a StreamingSession.

Both work on the same buffers, which the session owns:

* ``state`` (N, S) float32: one row per stream, each layer's state side by side,
  ``[h_0 | c_0 | h_1 | ...]`` (``c`` for LSTM layers only; h has P values, c has H);
* ``output`` (N, O) float32: the last output of each stream.

and offer the same three calls: ``step(x, row)`` (one stream, one step; x (I,) features or an int
token id), ``feed(x, row, y)`` (T steps of one stream into y (T, O)) and ``step_rows(x, rows, y)``
(one step of n streams). ``NativeEngine`` runs the whole graph in one C++ call per step (the
fused single-step kernels, ~1 us for a small model); ``TorchEngine`` is the readable fallback
built on the cells' own step functions, used where the C++ module cannot be built.
"""

from __future__ import annotations

import logging
import operator

import torch
from torch.nn import functional as F

from ..cells import ElmanState, GRUState, LSTMState, elman_step, gru_step, lstm_step
from .graph import StreamingGraph

log = logging.getLogger("rnnkit")

_NATIVE_KINDS = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}
_NATIVE_ACTIVATIONS = {"relu": 0, "tanh": 1, "sigmoid": 2}
_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
ENGINES = ("auto", "native", "torch")


def state_offsets(graph: StreamingGraph) -> tuple[list[tuple[int, int | None]], int]:
    """Per layer (offset of h, offset of c or None) within a state row, and the row width S."""
    offsets, width = [], 0
    for layer in graph.layers:
        sizes = layer.state_sizes()
        h_offset, width = width, width + sizes["h"]
        c_offset = None
        if "c" in sizes:
            c_offset, width = width, width + sizes["c"]
        offsets.append((h_offset, c_offset))
    return offsets, width


def _address(tensor) -> int:
    return 0 if tensor is None else tensor.data_ptr()


class NativeEngine:
    """The graph in the C++ streaming module (``rnnkit_stream.Session``)."""

    name = "native"

    def __init__(self, graph: StreamingGraph, module) -> None:
        # The native side copies (packs) every weight; the graph's tensors need not outlive it.
        table = graph.embedding
        native = module.Session(graph.input_size, graph.vocab_size or 0, _address(table))
        for layer in graph.layers:
            native.add_layer(_NATIVE_KINDS[layer.kind], layer.input_size, layer.hidden_size,
                             layer.output_size, _address(layer.weight_ih), _address(layer.weight_hh),
                             _address(layer.bias_ih), _address(layer.bias_hh),
                             _address(layer.weight_hr), layer.residual)
        for op in graph.head:
            if op.kind == "linear":
                native.add_linear(op.weight.shape[1], op.weight.shape[0], _address(op.weight),
                                  _address(op.bias))
            else:
                native.add_activation(_NATIVE_ACTIVATIONS[op.kind])
        self._native = native
        self.bind = native.bind
        self.step = native.step  # no Python frame between the session and C++
        self.feed = native.feed
        self.step_rows = native.step_rows


class TorchEngine:
    """The graph in torch operators: per step ~20-100 us of operator overhead, but no compiler."""

    name = "torch"

    def __init__(self, graph: StreamingGraph) -> None:
        self.graph = graph
        self.offsets, self.width = state_offsets(graph)
        self.state = self.output = None

    def bind(self, state: torch.Tensor, output: torch.Tensor) -> None:
        self.state, self.output = state, output

    def _inputs(self, x, count: int, what: str) -> torch.Tensor:
        """(count, I) float32 features, or the embedding rows of ``count`` token ids; ``what``
        words the count for errors, as the native engine does ("{} steps of")."""
        graph = self.graph
        what = what.format(count)
        if graph.embedding is not None:
            if not isinstance(x, torch.Tensor):  # as the native engine (step() takes ints)
                raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
            tokens = x
            if tokens.dtype != torch.int64 or tokens.numel() != count:
                fix = " (convert it with x.long())" if tokens.dtype != torch.int64 else ""
                raise ValueError(f"x must be {what} int64 token ids; got {tokens.dtype} of shape "
                                 f"{tuple(tokens.shape)}{fix}")
            tokens = tokens.reshape(count)
            if tokens.numel() and (tokens.min() < 0 or tokens.max() >= graph.vocab_size):
                bad = tokens[(tokens < 0) | (tokens >= graph.vocab_size)][0].item()
                raise ValueError(f"token id {bad} is outside the vocabulary [0, {graph.vocab_size})")
            return graph.embedding[tokens]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        features = graph.input_size  # the last dimension, as on the native engine
        if (x.dtype != torch.float32 or x.device.type != "cpu" or x.numel() != count * features
                or x.dim() == 0 or x.size(-1) != features):
            fix = " (convert it with x.float())" if x.dtype != torch.float32 else ""
            raise ValueError(f"x must be a float32 CPU tensor of {what} {graph.input_size} "
                             f"features; got {x.dtype} on {x.device} of shape {tuple(x.shape)}"
                             f"{fix}")
        return x.reshape(count, graph.input_size)

    @torch.no_grad()
    def _run(self, inputs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """One step for B rows: inputs (B, I), states (B, S) updated in place; returns (B, O)."""
        x = inputs
        for layer, (h_at, c_at) in zip(self.graph.layers, self.offsets):
            h = states[:, h_at:h_at + layer.output_size]
            gates_x = F.linear(x, layer.weight_ih, layer.bias_ih)
            if layer.kind == "lstm":
                c = states[:, c_at:c_at + layer.hidden_size]
                new = lstm_step(gates_x, LSTMState(h, c), layer.weight_hh, layer.bias_hh,
                                layer.weight_hr)
                c.copy_(new.c)
            elif layer.kind == "gru":
                new = gru_step(gates_x, GRUState(h), layer.weight_hh, layer.bias_hh)
            else:
                new = elman_step(gates_x, ElmanState(h), layer.weight_hh, layer.bias_hh,
                                 layer.kind.removeprefix("rnn_"))
            h.copy_(new.h)
            x = new.h + x if layer.residual else new.h
        for op in self.graph.head:
            x = F.linear(x, op.weight, op.bias) if op.kind == "linear" else _ACTIVATIONS[op.kind](x)
        return x

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self.state.shape[0]:
            raise IndexError(f"row {row} outside the state arena of {self.state.shape[0]} rows")

    def step(self, x, row: int) -> None:
        self._check_row(row)
        if (self.graph.embedding is not None and not isinstance(x, torch.Tensor)
                and hasattr(type(x), "__index__")):
            # as the native engine: anything with __index__ (Python and NumPy integers, a 0-d
            # NumPy integer array), never a bool
            # NumPy's bools too, by dtype kind (a str() of the dtype cost ~13 us a step)
            if isinstance(x, bool) or getattr(getattr(x, "dtype", None), "kind", None) == "b":
                raise TypeError("a token id must be an int; got bool")
            x = torch.tensor([operator.index(x)])
        rows = self.state[row:row + 1]
        self.output[row] = self._run(self._inputs(x, 1, "one step of"), rows)[0]

    def feed(self, x, row: int, y: torch.Tensor) -> None:
        self._check_row(row)
        steps = y.shape[0]
        inputs = self._inputs(x, steps, "{} steps of")
        rows = self.state[row:row + 1]
        for t in range(steps):
            y[t] = self._run(inputs[t:t + 1], rows)[0]
        if steps:
            self.output[row] = y[-1]

    def step_rows(self, x, rows: torch.Tensor, y: torch.Tensor) -> None:
        for row in rows.tolist():
            self._check_row(row)
        inputs = self._inputs(x, rows.numel(), "{} rows (one per stream) of")
        gathered = self.state[rows]
        y.copy_(self._run(inputs, gathered))
        self.state[rows] = gathered
        self.output[rows] = y


def make_engine(graph: StreamingGraph, engine: str = "auto"):
    """The native engine when the C++ module builds here (``auto`` falls back to torch, logged)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
    if engine == "torch":
        return TorchEngine(graph)
    from ..backends.fused.build import stream_module

    try:
        module = stream_module()
    except RuntimeError as error:
        if engine == "native":
            raise RuntimeError(f"the native streaming engine cannot run here: {error}; use "
                               f"engine='torch' or 'auto'") from None
        log.info("rnnkit: streaming with the torch engine (%s)", error)
        return TorchEngine(graph)
    return NativeEngine(graph, module)
