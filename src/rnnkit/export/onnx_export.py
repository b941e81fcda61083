"""Export a recurrent model (plus optional head and embedding) to ONNX for streaming inference.

::

    from rnnkit.export.onnx_export import export_onnx, OnnxStreamer
    report = export_onnx(rnnkit.LSTM(8, 32, num_layers=2), "lstm_onnx", head=nn.Linear(32, 4))
    streamer = OnnxStreamer("lstm_onnx")       # onnxruntime, one thread
    y_t = streamer(x_t)                        # x_t (B, 1, I) float32 -> y_t (B, 1, O); state kept

The folder holds ``model.onnx`` (B batch, T time, I input width, O output width, P = proj_size
or H, H hidden; B and T are dynamic):

* inputs: ``x`` (B, T, I) float32, or ``tokens`` (B, T) int64 with an embedding; and per layer k
  ``h0_{k}`` (B, P), plus ``c0_{k}`` (B, H) for an LSTM: zeros to start a sequence.
* outputs: ``y`` (B, T, O) and the final states ``h_{k}`` / ``c_{k}`` shaped like the inputs;
  feeding them back as the next call's ``h0_{k}`` / ``c0_{k}`` continues the sequence, so T=1
  calls stream step by step and any chunking gives the same outputs as one whole run.
* metadata_props: ``rnnkit_version``, ``cell_kinds``, ``input``, ``state_inputs`` and
  ``state_outputs`` (aligned, comma-separated), ``layout``; doc_string says the same for people.

Layers are ONNX's LSTM/GRU/RNN operators, or a Scan for an LSTM with projection; the gate order
mapping (torch LSTM i,f,g,o -> ONNX i,o,f,c; GRU r,z,n -> z,r,h with linear_before_reset=1) is
in :mod:`.onnx_graph`. onnx and onnxruntime are imported only when an export or a streamer runs
(``pip install 'rnnkit[export]'``), so ``import rnnkit.export`` never needs them.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError, check_flag
from ..runtime.graph import streaming_graph
from ..training import atomic_write, folder_for_writing
from .check import ExportReport, check_inputs, compare, expected_outputs

MODEL_FILENAME = "model.onnx"
#: Squeeze/Unsqueeze axes and Split sizes are inputs (not attributes) from opset 13 on
MIN_OPSET = 13
_MISSING = "ONNX export needs the onnx and onnxruntime packages: pip install 'rnnkit[export]'"


def _import_onnx():
    """(onnx, onnxruntime), or the one-line ImportError saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise MissingExtraError(_MISSING) from error
    return onnx, onnxruntime


def _session(onnxruntime, model, threads: int):
    """An onnxruntime CPU session for a model file or its bytes, with ``threads`` threads.

    One intra-op thread is the right setting for one stream of tiny per-step matmuls, where
    waking a thread pool costs more than the arithmetic.
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxStreamer:
    """Run an exported ``model.onnx`` chunk by chunk, carrying the recurrent state between calls.

    ``streamer(x)`` with x (B, T, I) float32 (or (B, T) int64 token ids) returns y (B, T, O)
    and keeps the final states for the next call; T=1 is one streaming step. The first call
    starts from zero states for its batch size; :meth:`reset` starts a new sequence (or sets
    given states). ``state`` holds the next call's state inputs by name (h0_0: (B, P), ...), or
    None before the first call. folder: the export folder (or its model.onnx); threads:
    onnxruntime intra-op threads (1 suits batch-1 streaming).
    """

    def __init__(self, folder, *, threads: int = 1) -> None:
        folder = Path(folder)
        model = folder / MODEL_FILENAME if folder.is_dir() else folder
        if not model.is_file():
            raise ValueError(f"OnnxStreamer: {model} does not exist; pass the folder that "
                             f"export_onnx wrote")
        self._setup(_session(_import_onnx()[1], str(model), threads))

    @classmethod
    def _from_session(cls, session) -> "OnnxStreamer":
        streamer = cls.__new__(cls)
        streamer._setup(session)
        return streamer

    def _setup(self, session) -> None:
        self.session = session
        meta = session.get_modelmeta().custom_metadata_map
        if "state_inputs" not in meta:
            raise ValueError("OnnxStreamer: the model has no state_inputs metadata; it was not "
                             "written by rnnkit's export_onnx: re-export it")
        self.input_name = meta["input"]
        self.state_inputs = meta["state_inputs"].split(",")
        self.state_outputs = meta["state_outputs"].split(",")
        shapes = {value.name: value.shape for value in session.get_inputs()}
        self._widths = {name: shapes[name][1] for name in self.state_inputs}
        self._dtype = np.int64 if self.input_name == "tokens" else np.float32
        # the feature width (None for token ids, or if the graph leaves it open)
        width = shapes[self.input_name][-1] if self._dtype == np.float32 else None
        self._features = width if isinstance(width, int) else None
        self._outputs = ["y", *self.state_outputs]
        self._output_width = {value.name: value.shape for value in session.get_outputs()}["y"][-1]
        self.state: dict[str, np.ndarray] | None = None

    def reset(self, state: dict[str, np.ndarray] | None = None) -> None:
        """Start a new sequence: zero states on the next call, or ``state`` {h0_0: (B, P), ...}."""
        if state is not None and sorted(state) != sorted(self.state_inputs):
            raise ValueError(f"OnnxStreamer.reset: state needs the keys {self.state_inputs}; "
                             f"got {sorted(state)}")
        if state is None:
            self.state = None
            return
        arrays = {name: np.ascontiguousarray(value, dtype=np.float32)
                  for name, value in state.items()}
        batch = next(iter(arrays.values())).shape[0] if arrays else None
        for name in self.state_inputs:  # checked here: onnxruntime's errors run to lines
            shape, width = arrays[name].shape, self._widths[name]
            if len(shape) != 2 or shape[0] != batch or (isinstance(width, int)
                                                         and shape[1] != width):
                raise ValueError(f"OnnxStreamer.reset: state {name!r} has shape {shape}; every "
                                 f"state needs shape (B, width) with one batch size B "
                                 f"({name}'s width is {width})")
        self.state = arrays

    def __call__(self, x) -> np.ndarray:
        given = np.asarray(x)
        if self._dtype == np.int64 and given.size and not np.issubdtype(given.dtype, np.integer):
            # a cast would truncate 1.9 to token 1 without a word
            raise ValueError(f"OnnxStreamer: tokens must be integer ids; got dtype {given.dtype}")
        x = np.ascontiguousarray(given, dtype=self._dtype)
        rank = 2 if self._dtype == np.int64 else 3
        if x.ndim != rank:
            raise ValueError(f"OnnxStreamer: {self.input_name} must have {rank} dimensions "
                             f"(batch, time{', features' if rank == 3 else ''}); got shape "
                             f"{x.shape}")
        if self._features is not None and x.shape[-1] != self._features:
            raise ValueError(f"OnnxStreamer: {self.input_name} must have {self._features} "
                             f"features in its last dimension; got shape {x.shape}")
        batch = x.shape[0]
        if self.state is None:
            self.state = {name: np.zeros((batch, width), np.float32)
                          for name, width in self._widths.items()}
        elif next(iter(self.state.values())).shape[0] != batch:
            raise ValueError(f"OnnxStreamer: batch size changed to {batch} mid-sequence; call "
                             f"reset() before streaming a batch of another size")
        if x.shape[0] == 0 or x.shape[1] == 0:
            # Nothing to step: the state stays. onnxruntime's GRU/RNN/LSTM operators abort the
            # whole process on an empty sequence or an empty batch (and its Scan fails), so it
            # is not asked.
            return np.zeros((batch, x.shape[1], self._output_width), np.float32)
        y, *finals = self.session.run(self._outputs, {self.input_name: x, **self.state})
        self.state = dict(zip(self.state_inputs, finals))
        return y


def _check(graph, onnxruntime, data: bytes, opset: int) -> float:
    """Run the model in onnxruntime against the PyTorch oracle; the max |difference|.

    Checks the whole-sequence run from zero states, and the streaming contract: T=1 calls with
    the states fed back give the same outputs and the same final states.
    """
    try:
        session = _session(onnxruntime, data, threads=1)
    except Exception as error:  # onnxruntime's own exception types, e.g. Fail for new opsets
        detail = " ".join(str(error).split())
        raise ValueError(f"export_onnx: onnxruntime {onnxruntime.__version__} cannot load the "
                         f"opset-{opset} model ({detail}); pass a lower opset= (default 17) or "
                         f"check=False") from error
    streamer = OnnxStreamer._from_session(session)
    inputs = check_inputs(graph)
    expected = expected_outputs("onnx", graph, inputs).numpy()
    x = inputs.numpy()
    difference = compare("onnx", streamer(x), expected)
    whole_finals = streamer.state
    streamer.reset()
    stepped = np.concatenate([streamer(x[:, t:t + 1]) for t in range(x.shape[1])], axis=1)
    difference = max(difference, compare("onnx (one step per call)", stepped, expected))
    for name, final in whole_finals.items():
        difference = max(difference, compare(f"onnx (final state {name}, one step per call)",
                                             streamer.state[name], final))
    return difference


def export_onnx(model, path, *, head=None, embedding=None, opset: int = 17,
                check: bool = True) -> ExportReport:
    """Write ``model`` (plus ``head`` and ``embedding``) to ``path``/model.onnx; see the module doc.

    model, head, embedding: as :func:`rnnkit.runtime.graph.streaming_graph` takes them (rnnkit
    or torch.nn LSTM/GRU/RNN, Stacked, Recurrent or a cell; unidirectional; an nn.Sequential
    head of Linear and ReLU/Tanh/Sigmoid; an nn.Embedding). opset: ONNX opset, 13 or newer.
    check: run the model in onnxruntime on random inputs and compare with the PyTorch model,
    raising ExportMismatchError past check.LIMIT_TEXT; nothing is written then. The folder is
    created if needed and an earlier model.onnx in it is replaced atomically.
    Raises UnsupportedModelError (a ValueError) naming the first part that cannot be exported.
    """
    onnx, onnxruntime = _import_onnx()
    graph = streaming_graph(model, head=head, embedding=embedding)
    newest = onnx.defs.onnx_opset_version()
    if (isinstance(opset, bool) or not isinstance(opset, numbers.Integral)
            or not MIN_OPSET <= opset <= newest):  # NumPy integers too, as sizes take them
        raise ValueError(f"export_onnx: opset must be an int from {MIN_OPSET} to {newest} (the "
                         f"installed onnx's newest); got {opset!r}")
    opset = int(opset)
    check_flag("check", check)  # "no" ran the check
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"export_onnx: {folder} exists and is not a folder; pass a folder path "
                         f"(model.onnx is written inside it)")

    from .onnx_graph import build_model  # imports onnx: only now that it is known to exist

    proto = build_model(graph, opset)
    if proto.ByteSize() >= 2 ** 31:
        raise ValueError(f"export_onnx: the model takes {proto.ByteSize() / 2 ** 30:.1f} GiB, "
                         f"over protobuf's 2 GiB limit for one .onnx file; export a smaller model")
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    # Check the bytes before writing them, so a mismatch leaves no wrong file behind.
    difference = _check(graph, onnxruntime, data, opset) if check else None
    with folder_for_writing(folder):
        atomic_write(folder / MODEL_FILENAME, data)
    return ExportReport("onnx", folder, (MODEL_FILENAME,), difference,
                        "" if check else "check=False")
