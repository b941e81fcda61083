"""``StreamingSession``: run a trained recurrent model one step at a time, for many streams.

Data that arrives one frame at a time (audio, sensors, control loops, a chat of tokens) cannot
wait for a whole sequence. A session holds the model's state per stream and advances it as
inputs come, in about a microsecond per step for a small model (one native call runs the
embedding, every layer and the head)::

    session = StreamingSession(model, head=nn.Linear(32, 4))   # one stream, id 0
    for x_t in frames:                 # x_t (I,) float32
        y_t = session.step(x_t)        # (O,)

    session.add_stream("mic-2")        # many independent streams, addressed by id
    ys = session.feed(chunk, stream="mic-2")   # chunk (T, I) -> (T, O), T steps in one call
    ys = session.step_many(x, ["mic-2", 0])    # x (n, I): one step of several streams at once
    blob = session.state_to_bytes()    # every stream's state; state_from_bytes(blob) resumes exactly

Stepping a stream gives exactly the outputs of running the model over the whole sequence: the
state after ``step`` is ``h_t`` (and ``c_t``) of every layer, as in the full forward. Models: see
:func:`rnnkit.runtime.graph.streaming_graph` (unidirectional rnnkit or torch.nn layers, an
optional embedding, a linear or small MLP head). With an embedding, ``x_t`` is a token id
(a Python int) and chunks are int64 tensors of ids.

Outputs of :meth:`step` are a view of the session's output row for that stream, valid until the
stream's next step (copying would cost as much as the step); ``feed`` and ``step_many`` return new
tensors. Weights are a float32 snapshot taken at construction. Not thread-safe: one session per
thread, or a lock around it.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from pathlib import Path
from typing import Hashable, Iterable

import torch

from ..cells import ElmanState, GRUState, LSTMState
from ..training import atomic_write
from .engines import make_engine, state_offsets
from .graph import streaming_graph

STATE_FORMAT = "rnnkit.stream_state"
STATE_VERSION = "1"
_STATE_TYPES = {"lstm": LSTMState, "gru": GRUState, "rnn_tanh": ElmanState, "rnn_relu": ElmanState}


def _is_stream_id(value) -> bool:
    """Stream ids are ints or strings (they are saved with the state as JSON). Not bools,
    floats or NumPy ints: True, 1.0 and np.int64(1) equal 1 as dict keys and would find
    stream 1."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


class StreamingSession:
    """Per-stream state and one-step inference for a recurrent model; see the module docstring.

    model/head/embedding: as :func:`~rnnkit.runtime.graph.streaming_graph`. streams: how many
    streams to open (ids 0..n-1) or an iterable of ids (ints or strings). engine: ``auto`` (native
    C++ when it builds here, else torch), ``native`` or ``torch``.
    """

    def __init__(self, model, *, head=None, embedding=None, streams: int | Iterable = 1,
                 engine: str = "auto") -> None:
        self.graph = streaming_graph(model, head=head, embedding=embedding)
        self._engine = make_engine(self.graph, engine)
        self._offsets, self.state_width = state_offsets(self.graph)
        self.output_size = self.graph.output_size
        self._rows: dict[Hashable, int] = {}
        self._free_rows: list[int] = []
        self._output_rows: list[torch.Tensor] = []
        with torch.inference_mode(False):  # see _grow
            self._state = torch.zeros(0, self.state_width)
            self._output = torch.zeros(0, self.output_size)
        self._engine.bind(self._state, self._output)  # step_many of no streams reads them
        if isinstance(streams, (bool, str, bytes)):  # a string would open a stream per letter
            raise TypeError(f"streams must be a count or an iterable of ids; got {streams!r} "
                            f"(for one stream named so, pass [{streams!r}])")
        if isinstance(streams, numbers.Integral):  # NumPy's integers too
            if streams < 0:
                raise ValueError(f"streams must be a count >= 0 or an iterable of ids; got "
                                 f"{streams}")
            ids = range(int(streams))
        elif isinstance(streams, Iterable):
            ids = streams
        else:
            raise TypeError(f"streams must be a count or an iterable of ids; got "
                            f"{type(streams).__name__}")
        for stream_id in ids:
            self.add_stream(stream_id)
        self._step = self._engine.step

    @property
    def engine(self) -> str:
        """Which engine runs the steps: ``native`` or ``torch``."""
        return self._engine.name

    # -- streams -------------------------------------------------------------------------
    @property
    def stream_ids(self) -> list:
        """Ids of the open streams, in the order they were added."""
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, stream_id) -> bool:
        return _is_stream_id(stream_id) and stream_id in self._rows

    def add_stream(self, stream_id) -> None:
        """Open a stream with a zero state; ids are ints or strings, unique within the session."""
        if not _is_stream_id(stream_id):
            raise TypeError(f"stream ids must be ints or strings (they are saved with the state); "
                            f"got {type(stream_id).__name__}")
        if stream_id in self._rows:
            raise ValueError(f"stream {stream_id!r} is already open; reset() it or pick another id")
        if not self._free_rows:
            self._grow(max(4, 2 * len(self._output_rows)))
        row = self._free_rows[-1]
        self._state[row].zero_()
        self._output[row].zero_()
        self._rows[stream_id] = self._free_rows.pop()  # only once the row is ready

    def drop_stream(self, stream_id) -> None:
        """Close a stream and free its state."""
        self._free_rows.append(self._row(stream_id))
        del self._rows[stream_id]

    def reset(self, stream_id=None) -> None:
        """Zero the state of one stream, or of every stream when ``stream_id`` is None."""
        rows = self._rows.values() if stream_id is None else [self._row(stream_id)]
        for row in rows:
            self._state[row].zero_()
            self._output[row].zero_()

    def _row(self, stream_id) -> int:
        if not _is_stream_id(stream_id):
            raise TypeError(f"stream ids are ints or strings; got {type(stream_id).__name__}")
        try:
            return self._rows[stream_id]
        except (KeyError, TypeError):
            shown = self.stream_ids[:8]
            raise KeyError(f"no stream {stream_id!r} in this session (open: {shown}"
                           f"{' ...' if len(self._rows) > 8 else ''}); add it with "
                           f"add_stream({stream_id!r})") from None

    def _grow(self, capacity: int) -> None:
        """Reallocate the state arena with room for ``capacity`` streams (rows keep their place)."""
        old = self._state.shape[0]
        # Ordinary tensors even when made under inference_mode: steps, reset() and set_state()
        # write them in place, which torch refuses for inference tensors outside that mode.
        with torch.inference_mode(False):
            state = torch.zeros(capacity, self.state_width)
            output = torch.zeros(capacity, self.output_size)
            state[:old], output[:old] = self._state, self._output
        self._state, self._output = state, output
        self._engine.bind(state, output)
        self._output_rows = list(output.unbind(0))
        self._free_rows.extend(range(capacity - 1, old - 1, -1))

    # -- stepping ------------------------------------------------------------------------
    def step(self, x_t, stream=0) -> torch.Tensor:
        """One step of one stream: x_t (I,) float32 (or an int token id) -> output (O,).

        The output is the stream's row of the session's output buffer (valid until its next step).
        """
        try:
            row = self._rows[stream]
            if stream.__class__ is not int and stream.__class__ is not str:
                raise KeyError(stream)  # True, 1.0, np.int64(1) == 1 as dict keys: _row decides
        except (KeyError, TypeError):
            row = self._row(stream)
        try:
            self._step(x_t, row)
        except (OverflowError, ValueError):  # no cost on the hot path unless it raises
            self._refuse_a_token_past_int64(x_t)
            raise
        return self._output_rows[row]

    def _refuse_a_token_past_int64(self, x_t) -> None:
        """A token id past int64 (2**70) failed in the engine's integer conversion, with an
        overflow message that named neither the id nor the vocabulary."""
        if (self.graph.embedding is not None and isinstance(x_t, int)
                and not -2**63 <= x_t < 2**63):
            raise ValueError(f"token id {x_t} is outside the vocabulary "
                             f"[0, {self.graph.vocab_size})") from None

    def feed(self, chunk, stream=0) -> torch.Tensor:
        """T steps of one stream: chunk (T, I) float32 (or (T,) int64 token ids) -> (T, O)."""
        row = self._row(stream)
        steps = chunk.shape[0] if isinstance(chunk, torch.Tensor) and chunk.dim() > 0 else -1
        if steps < 0:
            raise ValueError(f"chunk must be a tensor with a time dimension, (T, I) features or "
                             f"(T,) token ids; got {type(chunk).__name__}"
                             f"{' of shape ()' if isinstance(chunk, torch.Tensor) else ''}")
        if self.graph.embedding is not None and chunk.dim() != 1:
            # (1, T) read as 1 step gave "x must be 1 steps of int64 token ids" (probe)
            raise ValueError(f"chunk must be (T,) token ids for one stream; got shape "
                             f"{tuple(chunk.shape)} (for a (1, T) batch of one, pass chunk[0]; "
                             f"several streams step together with step_many)")
        outputs = torch.empty(steps, self.output_size)
        self._engine.feed(chunk, row, outputs)
        return outputs

    def step_many(self, x, streams) -> torch.Tensor:
        """One step of several streams at once: x (n, I) (or (n,) ids) for ``streams`` -> (n, O)."""
        if isinstance(streams, (str, bytes, int)):  # a string would step a stream per letter
            raise TypeError(f"streams must be a list of stream ids; got {streams!r} (for one "
                            f"stream, pass [{streams!r}])")
        streams = list(streams)
        rows = [self._row(stream_id) for stream_id in streams]
        if len(set(rows)) != len(rows):
            raise ValueError(f"streams must be distinct; got {streams}")
        outputs = torch.empty(len(rows), self.output_size)
        self._engine.step_rows(x, torch.tensor(rows, dtype=torch.int64), outputs)
        return outputs

    # -- state ---------------------------------------------------------------------------
    def get_state(self, stream=0) -> list:
        """Copies of the stream's per-layer states: LSTMState(h (P,), c (H,)), GRUState(h (H,)), ..."""
        row = self._state[self._row(stream)]
        states = []
        for layer, (h_at, c_at) in zip(self.graph.layers, self._offsets):
            h = row[h_at:h_at + layer.output_size].clone()
            kind = _STATE_TYPES[layer.kind]
            states.append(kind(h, row[c_at:c_at + layer.hidden_size].clone()) if c_at is not None
                          else kind(h))
        return states

    def set_state(self, states, stream=0) -> None:
        """Set the stream's state from a list like :meth:`get_state`'s (one state per layer)."""
        row = self._row(stream)
        if not isinstance(states, (list, tuple)) or len(states) != len(self.graph.layers):
            raise ValueError(f"states must be a list with one state per layer "
                             f"({len(self.graph.layers)}), as get_state() returns")
        values = torch.zeros(self.state_width)
        for index, (layer, state, (h_at, c_at)) in enumerate(
                zip(self.graph.layers, states, self._offsets)):
            sizes = layer.state_sizes()
            fields = tuple(state) if isinstance(state, tuple) else (state,)
            fields = [_state_values(field, index, layer.kind) for field in fields]
            # the count first: zip over an empty tuple would leave the layer silently zero;
            # then the width as the last dimension, not just the count of numbers: two streams
            # of width 4 (1, 2, 4) were read as one state of width 8
            if len(fields) != len(sizes) or any(
                    f.numel() != width or f.dim() == 0 or f.size(-1) != width
                    for f, width in zip(fields, sizes.values())):
                raise ValueError(f"layer {index} ({layer.kind}) needs a state of {sizes}, each "
                                 f"field of shape (width,) as get_state() returns (or (1, "
                                 f"width)); got {[tuple(f.shape) for f in fields]}")
            for field, width, at in zip(fields, sizes.values(), (h_at, c_at)):
                values[at:at + width] = field.to(torch.float32).reshape(width)
        self._state[row] = values

    def _input_description(self) -> list:
        """What a step takes: ["tokens", V] with an embedding, else ["features", I]."""
        if self.graph.embedding is not None:
            return ["tokens", int(self.graph.vocab_size)]
        return ["features", int(self.graph.input_size)]

    def _layout(self) -> list:
        return [[layer.kind, layer.hidden_size, layer.output_size] for layer in self.graph.layers]

    def state_to_bytes(self) -> bytes:
        """Every open stream's id and state, as safetensors bytes (restore: :meth:`state_from_bytes`)."""
        from safetensors.torch import save

        rows = torch.tensor(list(self._rows.values()), dtype=torch.int64)
        state, output = self._state[rows].contiguous(), self._output[rows].contiguous()
        metadata = {"format": STATE_FORMAT, "version": STATE_VERSION,
                    "streams": json.dumps(self.stream_ids), "layout": json.dumps(self._layout()),
                    "input": json.dumps(self._input_description()),
                    "sha256": _digest(state, output)}
        return save({"state": state, "output": output}, metadata=metadata)

    def state_from_bytes(self, data: bytes) -> None:
        """Replace every stream with those saved by :meth:`state_to_bytes` (same model layout)."""
        from safetensors.torch import load

        try:
            tensors = load(bytes(data))
            metadata = _safetensors_metadata(data)
        except Exception as error:
            raise ValueError(f"not a stream-state blob (expected state_to_bytes() output): "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
                             ) from None
        if metadata.get("format") != STATE_FORMAT or metadata.get("version") != STATE_VERSION:
            raise ValueError(f"not a stream-state blob of version {STATE_VERSION} (format "
                             f"{metadata.get('format')!r}, version {metadata.get('version')!r})")
        try:
            layout, streams = json.loads(metadata["layout"]), json.loads(metadata["streams"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"not a stream-state blob (expected state_to_bytes() output): its "
                             f"{'layout or streams' if isinstance(error, KeyError) else 'header'} "
                             f"is missing or damaged") from None
        if not (isinstance(streams, list) and len(set(map(repr, streams))) == len(streams)
                and all(map(_is_stream_id, streams))):
            raise ValueError("the saved stream ids are not a list of distinct ints or strings; "
                             "the blob is damaged")
        if layout != self._layout():
            raise ValueError(f"the saved state is for layers {layout} but this session's model has "
                             f"{self._layout()} ([kind, hidden, output] per layer)")
        # "input" is absent from blobs written before 2026-12-04
        saved_input = json.loads(metadata.get("input", "null"))
        if saved_input is not None and saved_input != self._input_description():
            raise ValueError(f"the saved state is for a model taking {saved_input} but this "
                             f"session's takes {self._input_description()}")
        state, output = tensors.get("state"), tensors.get("output")
        expected = {"state": (len(streams), self.state_width),
                    "output": (len(streams), self.output_size)}
        for name, tensor in (("state", state), ("output", output)):
            if tensor is None or tuple(tensor.shape) != expected[name]:
                shape = None if tensor is None else tuple(tensor.shape)
                raise ValueError(f"the saved {name} has shape {shape} but this session needs "
                                 f"{expected[name]} for {len(streams)} streams (the output "
                                 f"width is the head's); it was saved from another model")
        # "sha256" is absent from blobs written before 2026-12-06
        if "sha256" in metadata and metadata["sha256"] != _digest(state, output):
            raise ValueError("the saved states do not match the blob's checksum: the blob was "
                             "damaged after it was written; restore it from another copy")
        # Checked above, so replacing the streams cannot fail half-way.
        for stream_id in list(self._rows):
            self.drop_stream(stream_id)
        for index, stream_id in enumerate(streams):
            self.add_stream(stream_id)
            row = self._rows[stream_id]
            self._state[row], self._output[row] = state[index], output[index]

    def save_state(self, path) -> None:
        """Write :meth:`state_to_bytes` to ``path`` atomically (an old file is never half-written)."""
        atomic_write(Path(path), self.state_to_bytes())

    def load_state(self, path) -> None:
        """Restore the streams saved by :meth:`save_state`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no stream-state file at {path}; write one with save_state()")
        self.state_from_bytes(path.read_bytes())

    def __repr__(self) -> str:
        kinds = "+".join(layer.kind for layer in self.graph.layers)
        return (f"StreamingSession({kinds}, input={self.graph.vocab_size or self.graph.input_size}"
                f"{' tokens' if self.graph.embedding is not None else ''}, output="
                f"{self.output_size}, streams={len(self)}, engine={self.engine})")


def _digest(state: torch.Tensor, output: torch.Tensor) -> str:
    """SHA-256 of the saved tensors' bytes: safetensors checks a blob's layout, not its
    numbers, so a flipped bit in a state would otherwise resume a stream silently wrong."""
    digest = hashlib.sha256(state.numpy().tobytes())
    digest.update(output.numpy().tobytes())
    return digest.hexdigest()


def _state_values(field, layer: int, kind: str) -> torch.Tensor:
    """One field of a state given to set_state as a detached real tensor, or a one-line
    ValueError (None or text gave torch's "Could not infer dtype"; a complex tensor lost its
    imaginary part with only a warning)."""
    try:
        # detached: a state from a model's forward would chain its autograd graph into the
        # session's buffer, one link per call
        tensor = torch.as_tensor(field).detach()
    except (TypeError, RuntimeError, ValueError):
        tensor = None
    if tensor is None or tensor.is_complex() or tensor.dtype == torch.bool:
        if isinstance(field, list) and any(isinstance(f, torch.Tensor) for f in field):
            raise ValueError(f"layer {layer} ({kind}) state is a list of tensors; pass a "
                             f"layer's fields as a tuple, (h, c) for an LSTM, as get_state() "
                             f"returns")
        what = type(field).__name__ if tensor is None else f"a {tensor.dtype} tensor"
        raise ValueError(f"layer {layer} ({kind}) state must hold real numbers (tensors or "
                         f"arrays, as get_state() returns); got {what}")
    return tensor


def _safetensors_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors blob (its header is 8-byte length + JSON)."""
    length = int.from_bytes(bytes(data[:8]), "little")
    header = json.loads(bytes(data[8:8 + length]).decode("utf-8"))
    return header.get("__metadata__") or {}
