"""StreamingSession against the eager PyTorch model: step-by-step and chunked outputs equal the
full-sequence forward, streams are independent, state save/restore resumes exactly, and bad use
gets one-line errors. Both engines (native C++ and torch) are checked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from one_line import one_line_message
from rnnkit.backends.fused.build import stream_module
from rnnkit.runtime import StreamingSession, UnsupportedModelError, streaming_graph
from tolerances import assert_close

pytestmark = pytest.mark.usefixtures("single_thread")

try:
    stream_module()
    ENGINES = ["native", "torch"]
except RuntimeError as error:  # no C++ toolchain: the torch engine is still checked
    ENGINES = [pytest.param("native", marks=pytest.mark.skip(reason=f"native engine unavailable: {error}")),
               "torch"]


class TokenModel(nn.Module):
    """A task-style model that describes itself with streaming_parts()."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, 6)
        self.rnn = rnnkit.GRU(6, 10, num_layers=2, batch_first=True)
        self.head = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 11))

    def streaming_parts(self) -> dict:
        return {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}


def _residual_stack():
    return rnnkit.Stacked([rnnkit.Recurrent(rnnkit.LSTMCell(5, 7)), rnnkit.Recurrent(rnnkit.LSTMCell(7, 7)),
                           rnnkit.Recurrent(rnnkit.GRUCell(7, 7))], residual=True)


# name -> (model, head) with input size 5 (or token ids for the TokenModel)
MODELS = {
    "lstm": lambda: (rnnkit.LSTM(5, 7, batch_first=True), None),
    "lstm_2layers_head": lambda: (rnnkit.LSTM(5, 7, num_layers=2, batch_first=True), nn.Linear(7, 3)),
    "lstm_proj": lambda: (rnnkit.LSTM(5, 8, num_layers=2, proj_size=3, batch_first=True), None),
    "gru": lambda: (rnnkit.GRU(5, 7, batch_first=True), nn.Sequential(nn.Linear(7, 4), nn.Sigmoid())),
    "gru_nobias": lambda: (rnnkit.GRU(5, 7, bias=False), None),
    "rnn_tanh": lambda: (rnnkit.RNN(5, 7, num_layers=2), nn.Sequential(nn.Tanh(), nn.Linear(7, 2))),
    "rnn_relu": lambda: (rnnkit.RNN(5, 7, nonlinearity="relu", batch_first=True), None),
    "torch_lstm": lambda: (nn.LSTM(5, 7, num_layers=2, batch_first=True), nn.Linear(7, 3)),
    "torch_gru": lambda: (nn.GRU(5, 7), None),
    "torch_lstm_proj": lambda: (nn.LSTM(5, 8, proj_size=4, batch_first=True), None),
    "cell": lambda: (rnnkit.LSTMCell(5, 7), None),
    "gru_cell": lambda: (rnnkit.GRUCell(5, 7), nn.Linear(7, 2)),
    "residual_stack": lambda: (_residual_stack(), nn.Linear(7, 2)),
    "token_model": lambda: (TokenModel(), None),
    "weight_norm_lstm": lambda: (_weight_normed_lstm(), nn.Linear(7, 2)),
}


def _weight_normed_lstm():
    """Cells with a torch parametrization (a subclass that computes weight_hh when read)."""
    model = rnnkit.LSTM(5, 7, num_layers=2, batch_first=True)
    for cell in [m for m in model.modules() if isinstance(m, rnnkit.cells.RecurrentCell)]:
        nn.utils.parametrizations.weight_norm(cell, "weight_hh")
    return model


def _build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model, head = MODELS[name]()
    graph = streaming_graph(model, head=head)
    return model, head, graph


def _inputs(graph, batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if graph.embedding is not None:
        return torch.randint(0, graph.vocab_size, (batch, steps), generator=generator)
    return torch.randn(batch, steps, graph.input_size, generator=generator)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", MODELS)
def test_steps_and_chunks_equal_the_full_sequence(name, engine):
    model, head, graph = _build(name)
    x = _inputs(graph, batch=1, steps=9)
    expected = graph.eager_forward(x)[0]
    session = StreamingSession(model, head=head, engine=engine)
    assert session.engine == engine
    if graph.embedding is not None:
        stepped = torch.stack([session.step(int(token)).clone() for token in x[0]])
    else:
        stepped = torch.stack([session.step(x[0, t].clone()).clone() for t in range(x.shape[1])])
    assert_close(stepped, expected, what=f"{name} step by step")
    session.reset()
    chunked = torch.cat([session.feed(x[0, :4]), session.feed(x[0, 4:])])
    assert_close(chunked, expected, what=f"{name} fed in two chunks")


@pytest.mark.parametrize("engine", ENGINES)
def test_final_state_equals_the_models_final_state(engine):
    model, head, graph = _build("torch_lstm")
    x = _inputs(graph, batch=1, steps=6)
    _, (h_n, c_n) = model(x)
    session = StreamingSession(model, head=head, engine=engine)
    session.feed(x[0])
    for layer, state in enumerate(session.get_state()):
        assert_close(state.h, h_n[layer, 0], what=f"h of layer {layer}")
        assert_close(state.c, c_n[layer, 0], what=f"c of layer {layer}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["lstm_proj", "gru", "residual_stack", "token_model"])
def test_interleaved_streams_equal_each_stream_alone(name, engine):
    model, head, graph = _build(name)
    x = _inputs(graph, batch=3, steps=7)
    expected = graph.eager_forward(x)
    session = StreamingSession(model, head=head, streams=["a", "b", 7], engine=engine)
    ids = session.stream_ids
    outputs = {stream_id: [] for stream_id in ids}
    for t in range(x.shape[1]):
        for index in (2, 0, 1):  # a different order than the ids, on purpose
            value = int(x[index, t]) if graph.embedding is not None else x[index, t].clone()
            outputs[ids[index]].append(session.step(value, ids[index]).clone())
    for index, stream_id in enumerate(ids):
        assert_close(torch.stack(outputs[stream_id]), expected[index], what=f"stream {stream_id}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["lstm_2layers_head", "torch_gru", "token_model"])
def test_step_many_equals_each_stream_alone(name, engine):
    model, head, graph = _build(name)
    x = _inputs(graph, batch=4, steps=5)
    expected = graph.eager_forward(x)
    session = StreamingSession(model, head=head, streams=4, engine=engine)
    order = [3, 1, 0, 2]
    for t in range(x.shape[1]):
        batch = x[order, t].contiguous()
        assert_close(session.step_many(batch, order), expected[order, t], what=f"step {t}")
    # single-stream steps afterwards continue from the state step_many left behind
    tail = _inputs(graph, batch=4, steps=1, seed=5)
    whole = graph.eager_forward(torch.cat([x, tail], dim=1))
    value = int(tail[2, 0]) if graph.embedding is not None else tail[2, 0].clone()
    assert_close(session.step(value, 2), whole[2, -1], what="step after step_many")


@pytest.mark.parametrize("engine", ENGINES)
def test_save_and_restore_resume_exactly(engine, tmp_path):
    model, head, graph = _build("lstm_proj")
    x = _inputs(graph, batch=2, steps=10)
    session = StreamingSession(model, head=head, streams=["left", "right"], engine=engine)
    for index, stream_id in enumerate(session.stream_ids):
        session.feed(x[index, :6], stream_id)
    blob = session.state_to_bytes()
    session.save_state(tmp_path / "streams.safetensors")
    uninterrupted = {s: session.feed(x[i, 6:], s) for i, s in enumerate(session.stream_ids)}

    for restore in ("bytes", "file"):
        resumed = StreamingSession(model, head=head, streams=["other"], engine=engine)
        if restore == "bytes":
            resumed.state_from_bytes(blob)
        else:
            resumed.load_state(tmp_path / "streams.safetensors")
        assert resumed.stream_ids == ["left", "right"]
        for index, stream_id in enumerate(resumed.stream_ids):
            assert torch.equal(resumed.feed(x[index, 6:], stream_id), uninterrupted[stream_id])


@pytest.mark.parametrize("engine", ENGINES)
def test_add_drop_reset_and_growth_keep_streams_apart(engine):
    model, head, graph = _build("gru")
    x = _inputs(graph, batch=12, steps=4)
    expected = graph.eager_forward(x)
    session = StreamingSession(model, head=head, streams=0, engine=engine)
    assert len(session) == 0
    for stream_id in range(12):  # more than the initial arena: it grows while streams are live
        session.add_stream(stream_id)
        session.feed(x[stream_id, :2], stream_id)
    for stream_id in range(12):
        assert_close(session.feed(x[stream_id, 2:], stream_id), expected[stream_id, 2:])
    session.drop_stream(5)
    assert 5 not in session and len(session) == 11
    session.add_stream("new")  # reuses the freed row with a zero state
    assert_close(session.feed(x[0], "new"), expected[0], what="a new stream starts from zero")
    session.reset(3)
    assert_close(session.feed(x[3], 3), expected[3], what="a reset stream starts from zero")


@pytest.mark.parametrize("engine", ENGINES)
def test_set_state_continues_from_a_given_state(engine):
    model, head, graph = _build("lstm_2layers_head")
    x = _inputs(graph, batch=1, steps=8)
    expected = graph.eager_forward(x)[0]
    first = StreamingSession(model, head=head, engine=engine)
    first.feed(x[0, :5])
    second = StreamingSession(model, head=head, streams=["copy"], engine=engine)
    second.set_state(first.get_state(), "copy")
    assert_close(second.feed(x[0, 5:], "copy"), expected[5:])


def test_set_state_refuses_a_wrong_entry_and_leaves_the_state():
    """An empty entry for a layer used to be accepted and zero that layer (review, 2026-12-05)."""
    torch.manual_seed(4)
    session = StreamingSession(rnnkit.LSTM(4, 6, num_layers=2))
    session.feed(torch.randn(3, 4))
    before = session.get_state()
    # two streams of width 3 (another model's final state, batch 2) hold 6 numbers, as this
    # layer's width does, and were read as one state (probe, 2026-12-08)
    _, other = nn.LSTM(4, 3)(torch.randn(5, 2, 4))
    for bad in ([before[0], ()], [before[0], (before[1].h,)],
                [before[0], (before[1].h, torch.zeros(5))], [before[0], before[1].h],
                [before[0], tuple(other)], [before[0], tuple(t.view(2, 3) for t in other)]):
        with pytest.raises(ValueError) as info:
            session.set_state(bad)
        one_line_message(info, "layer 1 (lstm) needs a state of")
        after = session.get_state()
        assert all(torch.equal(a, b) for a, b in zip(after[1], before[1]))
    # a (1, width) field, as a one-stream torch.nn state of one layer, is the same state
    session.set_state([before[0], tuple(t.view(1, 6) for t in before[1])])
    assert all(torch.equal(a, b) for a, b in zip(session.get_state()[1], before[1]))


def test_bidirectional_models_are_refused_naming_the_layer():
    with pytest.raises(UnsupportedModelError) as info:
        StreamingSession(rnnkit.GRU(4, 6, num_layers=2, bidirectional=True))
    one_line_message(info, "rnn.stack.layers.0", "step by step")
    with pytest.raises(UnsupportedModelError) as info:
        StreamingSession(nn.LSTM(4, 6, bidirectional=True))
    one_line_message(info, "bidirectional")
    with pytest.raises(UnsupportedModelError) as info:
        StreamingSession(rnnkit.LSTM(4, 6), head=nn.Sequential(nn.Linear(6, 3), nn.GELU()))
    one_line_message(info, "head.1", "GELU")


class _NormedGRU(nn.GRU):
    def forward(self, x, h=None):
        out, h = super().forward(x, h)
        return nn.functional.layer_norm(out, out.shape[-1:]), h


class _TemperatureHead(nn.Linear):
    def forward(self, x):
        return super().forward(x) / 2


class _ScaledLSTM(rnnkit.LSTM):
    def forward(self, x, state=None):
        out, state = super().forward(x, state)
        return 2 * out, state


class _ScaledRecurrent(rnnkit.Recurrent):
    def forward(self, *args, **kwargs):
        out, state = super().forward(*args, **kwargs)
        return 2 * out, state


class _ScaledEmbedding(nn.Embedding):
    def forward(self, ids):
        return 2 * super().forward(ids)


@pytest.mark.parametrize("parts, needle", [
    (lambda: dict(model=_NormedGRU(4, 6)), "_NormedGRU"),
    (lambda: dict(model=_ScaledLSTM(4, 6)), "_ScaledLSTM"),
    (lambda: dict(model=nn.GRU(4, 6), head=_TemperatureHead(6, 3)), "_TemperatureHead"),
    (lambda: dict(model=nn.GRU(4, 6), head=nn.Sequential(_TemperatureHead(6, 3))), "head.0"),
    (lambda: dict(model=nn.GRU(4, 6), embedding=_ScaledEmbedding(5, 4)), "_ScaledEmbedding"),
    (lambda: dict(model=rnnkit.Stacked([rnnkit.Recurrent(rnnkit.GRUCell(4, 6)),
                                        _ScaledRecurrent(rnnkit.GRUCell(6, 6))])),
     "layers.1 is a test_session._ScaledRecurrent"),
], ids=["torch-layer", "rnnkit-layer", "head", "head-in-sequential", "embedding",
        "layer-in-stacked"])
def test_subclasses_that_may_change_forward_are_refused(parts, needle):
    """A GRU subclass adding a LayerNorm, a Linear dividing by 2: the session streamed the base
    classes' numbers, 0.275 off the model's, silently (review, 2026-12-05)."""
    kwargs = parts()
    model = kwargs.pop("model")
    with pytest.raises(UnsupportedModelError) as info:
        StreamingSession(model, **kwargs)
    one_line_message(info, needle, "subclass")


def test_parametrized_layers_are_not_refused_as_subclasses():
    """torch parametrizations swap in a generated subclass that only computes the weights: the
    session streams the model's numbers (the oracle: its eager forward)."""
    torch.manual_seed(0)
    model, head = nn.GRU(4, 6, batch_first=True), nn.Linear(6, 3)
    nn.utils.parametrizations.weight_norm(head)
    nn.utils.parametrizations.weight_norm(model, "weight_hh_l0")
    x = torch.randn(1, 7, 4)
    with torch.no_grad():
        expected = head(model(x)[0])[0]
    assert_close(StreamingSession(model, head=head).feed(x[0]), expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_strided_inputs_run_as_their_contiguous_copies(engine):
    """Views (every other feature, a transposed batch) give what their .contiguous() copies give
    (bit for bit on the native engine, which copies them; torch's matmul may round a transposed
    operand differently)."""
    torch.manual_seed(3)
    model = rnnkit.LSTM(4, 6, num_layers=2)
    wide = torch.randn(5, 8)  # (T, 2 I): [:, ::2] is a strided (T, I) chunk
    by_column = torch.randn(4, 2)  # .t() is (2 streams, I) with non-unit column stride
    strided = StreamingSession(model, streams=["a", "b"], engine=engine)
    packed = StreamingSession(model, streams=["a", "b"], engine=engine)
    outputs = [(strided.step(wide[0, ::2], "a"), packed.step(wide[0, ::2].contiguous(), "a")),
               (strided.feed(wide[1:, ::2], "a"), packed.feed(wide[1:, ::2].contiguous(), "a")),
               (strided.step_many(by_column.t(), ["a", "b"]),
                packed.step_many(by_column.t().contiguous(), ["a", "b"]))]
    for got, expected in outputs:
        if engine == "native":
            assert torch.equal(got, expected)
        else:
            assert_close(got, expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_stream_arguments_are_refused(engine):
    """streams="mic" opened streams 'm', 'i', 'c'; streams=-1 opened none; step(x, stream=True)
    stepped stream 1 (True == 1 as a dict key) though add_stream(True) is refused."""
    model = rnnkit.GRU(3, 4)
    with pytest.raises(TypeError) as info:
        StreamingSession(model, streams="mic", engine=engine)
    one_line_message(info, "count or an iterable of ids", "['mic']")
    with pytest.raises(ValueError) as info:
        StreamingSession(model, streams=-1, engine=engine)
    one_line_message(info, "count >= 0")
    session = StreamingSession(model, streams=2, engine=engine)
    for call in (lambda: session.step(torch.ones(3), stream=True),
                 lambda: session.feed(torch.ones(2, 3), stream=True),
                 lambda: session.get_state(True)):
        with pytest.raises(TypeError) as info:
            call()
        one_line_message(info, "got bool")
    assert session.get_state(1)[0].h.abs().sum() == 0, "stream 1 was not stepped"


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_inputs_get_one_line_errors(engine):
    session = StreamingSession(rnnkit.LSTM(4, 6), streams=["a"], engine=engine)
    with pytest.raises(KeyError) as info:
        session.step(torch.zeros(4), "b")
    one_line_message(info, "no stream 'b'", "add_stream")
    with pytest.raises(ValueError) as info:
        session.step(torch.zeros(5), "a")
    one_line_message(info, "float32", "4 features")
    with pytest.raises(ValueError) as info:
        session.step(torch.zeros(4, dtype=torch.float64), "a")
    one_line_message(info, "float32")
    # the right number of values in the wrong layout: features must be the last dimension
    # (a count check took these and read them row by row; review 2026-12-05)
    session.add_stream("c")
    for x, call in ((torch.zeros(2, 2), lambda x: session.step(x, "a")),
                    (torch.zeros(4, 2), lambda x: session.step_many(x, ["a", "c"])),
                    (torch.zeros(2, 3, 4).transpose(0, 2), lambda x: session.feed(x, "a"))):
        with pytest.raises(ValueError) as info:
            call(x)
        one_line_message(info, "4 features", ", ".join(map(str, x.shape)))
    session.drop_stream("c")
    with pytest.raises(ValueError) as info:
        session.add_stream("a")
    one_line_message(info, "already open")
    with pytest.raises(TypeError) as info:
        session.add_stream(1.5)
    one_line_message(info, "ints or strings")
    session.add_stream("b")
    with pytest.raises(ValueError) as info:
        session.step_many(torch.zeros(2, 4), ["a", "a"])
    one_line_message(info, "distinct")
    with pytest.raises(ValueError) as info:
        session.state_from_bytes(b"definitely not safetensors")
    one_line_message(info, "not a stream-state blob")
    other = StreamingSession(rnnkit.GRU(4, 6), engine=engine)
    with pytest.raises(ValueError) as info:
        other.state_from_bytes(session.state_to_bytes())
    one_line_message(info, "layers")
    assert other.stream_ids == [0], "a refused restore leaves the session as it was"
    # same layers, another head or input width: refused before any stream is dropped
    for head, inputs, needle in ((nn.Linear(6, 3), 4, "saved output has shape"),
                                 (None, 5, "taking ['features', 4]")):
        saved = StreamingSession(rnnkit.GRU(4, 6), head=nn.Linear(6, 2), engine=engine)
        saved.add_stream("x")
        other = StreamingSession(rnnkit.GRU(inputs, 6), head=head, engine=engine)
        other.add_stream("kept")
        streams = other.stream_ids
        with pytest.raises(ValueError) as info:
            other.state_from_bytes(saved.state_to_bytes())
        one_line_message(info, needle)
        assert other.stream_ids == streams


@pytest.mark.parametrize("engine", ENGINES)
def test_token_ids_may_be_numpy_integers_but_not_bools(engine):
    """The engines disagreed: the native one refused np.int64 (what np.argmax returns) and took
    True as token 1, the torch one the other way round (review, 2026-12-05). The oracle: the
    same stream stepped with Python ints."""
    import numpy as np

    session = StreamingSession(TokenModel(), streams=["ints", "numpy"], engine=engine)
    # a 0-d array too (np.asarray(token)), which the torch engine refused
    for token, numpy_type in ((3, np.int64), (7, np.int32), (0, np.int64), (5, np.asarray)):
        want = session.step(token, "ints").clone()
        assert torch.equal(session.step(numpy_type(token), "numpy"), want)
    for bad in (True, False):
        with pytest.raises(TypeError) as info:
            session.step(bad, "ints")
        one_line_message(info, "token id must be an int", "bool")


@pytest.mark.skipif("native" not in ENGINES, reason="the native engine did not build here")
def test_a_nan_through_relu_reaches_the_output_on_both_engines():
    """The native engine's ReLU (in a layer and in a head) turned NaN into 0, where the torch
    engine passed it on. Oracle: the torch engine."""
    torch.manual_seed(2)
    model = rnnkit.RNN(3, 5, nonlinearity="relu")
    head = nn.Sequential(nn.Linear(5, 2), nn.ReLU())
    x = torch.randn(4, 3)
    x[1, 0] = float("nan")
    outputs = [StreamingSession(model, head=head, engine=engine).feed(x.clone())
               for engine in ("torch", "native")]
    assert outputs[0][1:].isnan().all()
    assert torch.equal(outputs[1].isnan(), outputs[0].isnan())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_batch_of_one_token_row_is_told_to_pass_its_row(engine):
    """feed((1, 3) ids) said "x must be 1 steps of int64 token ids" (probe, 2026-12-08).
    Oracle: the fix it gives, chunk[0], runs and equals three steps."""
    chunk = torch.tensor([[1, 2, 3]])
    session = StreamingSession(TokenModel(), streams=["fed", "stepped"], engine=engine)
    with pytest.raises(ValueError) as info:
        session.feed(chunk, "fed")
    one_line_message(info, "chunk must be (T,) token ids for one stream; got shape (1, 3)",
                     "pass chunk[0]")
    fed = session.feed(chunk[0], "fed")
    stepped = torch.stack([session.step(int(token), "stepped").clone() for token in chunk[0]])
    assert torch.equal(fed, stepped)


@pytest.mark.parametrize("engine", ENGINES)
def test_token_ids_of_several_streams_must_be_a_tensor(engine):
    """The torch engine took a list (the native one refused it), so code tested on one engine
    failed on the other."""
    session = StreamingSession(TokenModel(), streams=2, engine=engine)
    with pytest.raises(TypeError) as info:
        session.step_many([1, 2], [0, 1])
    one_line_message(info, "x must be a torch.Tensor; got list")


@pytest.mark.parametrize("engine", ENGINES)
def test_token_ids_outside_the_vocabulary_are_refused(engine):
    session = StreamingSession(TokenModel(), engine=engine)
    with pytest.raises(ValueError) as info:
        session.step(11)
    one_line_message(info, "token id 11", "[0, 11)")
    with pytest.raises(ValueError) as info:
        session.feed(torch.tensor([1, -1]))
    one_line_message(info, "token id -1")
    # past int64 (an overflow in the engine's conversion, naming nothing): as 11 is
    for huge in (2**70, -2**64):
        with pytest.raises(ValueError) as info:
            session.step(huge)
        one_line_message(info, f"token id {huge}", "[0, 11)")


@pytest.mark.parametrize("engine", ENGINES)
def test_set_state_refuses_what_is_no_real_number_and_leaves_the_state(engine):
    """None or text gave torch's "Could not infer dtype"; a complex state was cast to its
    real part with only a warning. Oracle: the state before the call, and the same state
    given as NumPy arrays and lists, which are accepted."""
    torch.manual_seed(5)
    session = StreamingSession(rnnkit.LSTM(4, 6), engine=engine)
    session.feed(torch.randn(3, 4))
    (before,) = session.get_state()
    for bad in ([None], [(before.h, None)], [("a", "b")],
                [(before.h.to(torch.complex64), before.c)], [(before.h > 0, before.c)]):
        with pytest.raises(ValueError) as info:
            session.set_state(bad)
        one_line_message(info, "layer 0 (lstm) state must hold real numbers")
        assert all(torch.equal(a, b) for a, b in zip(session.get_state()[0], before))
    session.set_state([(before.h.numpy(), before.c.tolist())])
    assert all(torch.equal(a, b) for a, b in zip(session.get_state()[0], before))
    # unsigned integers are real numbers too (the first version of this check refused them)
    session.set_state([(torch.arange(6).to(torch.uint32), torch.arange(6).to(torch.uint8))])
    assert all(torch.equal(a, torch.arange(6.0)) for a in session.get_state()[0])


def _states_of(session):
    return {i: [tuple(t.clone() for t in s) for s in session.get_state(i)]
            for i in session.stream_ids}


@pytest.mark.parametrize("streams", ['["p", "p"]', '[true, "q"]', '"ab"', '[1.5, 2]', "{"])
def test_a_blob_with_bad_stream_ids_leaves_the_session_as_it_was(streams):
    """Only the shapes were checked before every stream was dropped: ids that could not be
    re-added (a repeat, a bool, a float) left the session empty or half-replaced, and a
    string gave one stream per letter. Oracle: the ids and states before the call."""
    import json

    from safetensors.torch import load, save

    from rnnkit.runtime.session import _safetensors_metadata

    session = StreamingSession(rnnkit.GRU(3, 4), streams=["x", "y"])
    session.step(torch.randn(3), "x")
    blob = session.state_to_bytes()
    before = _states_of(session)
    metadata = {**_safetensors_metadata(blob), "streams": streams}
    with pytest.raises(ValueError) as info:
        session.state_from_bytes(save(load(blob), metadata=metadata))
    one_line_message(info, "the blob is damaged" if streams != "{" else "damaged")
    after = _states_of(session)
    assert list(after) == ["x", "y"]
    for stream in before:
        for old, new in zip(before[stream], after[stream]):
            assert all(torch.equal(a, b) for a, b in zip(old, new))
    assert json.loads(_safetensors_metadata(session.state_to_bytes())["streams"]) == ["x", "y"]


def test_a_blob_whose_numbers_were_damaged_is_refused_and_an_older_blob_still_loads():
    """safetensors checks a blob's header and sizes, not its numbers: a flipped bit in a saved
    state resumed the stream silently wrong. Oracle: the states before the call; and the same
    blob without its checksum (as written before checksums) restores the streams exactly."""
    from safetensors.torch import load, save

    from rnnkit.runtime.session import _safetensors_metadata

    torch.manual_seed(6)
    session = StreamingSession(rnnkit.GRU(3, 4), streams=["x", "y"])
    session.feed(torch.randn(5, 3), "x")
    blob = session.state_to_bytes()
    before = _states_of(session)
    tensors, metadata = load(blob), _safetensors_metadata(blob)
    damaged = dict(tensors, state=tensors["state"].clone())
    damaged["state"].view(torch.int32)[0, 1] ^= 1 << 20  # one bit of one number
    with pytest.raises(ValueError) as info:
        session.state_from_bytes(save(damaged, metadata=metadata))
    one_line_message(info, "checksum", "damaged")

    def assert_states_are_before(after):
        assert list(after) == ["x", "y"]
        for stream in before:
            for old, new in zip(before[stream], after[stream]):
                assert all(torch.equal(a, b) for a, b in zip(old, new))

    assert_states_are_before(_states_of(session))
    older = {k: v for k, v in metadata.items() if k != "sha256"}
    fresh = StreamingSession(rnnkit.GRU(3, 4), streams=[])
    fresh.state_from_bytes(save(tensors, metadata=older))
    assert_states_are_before(_states_of(fresh))


def test_set_state_from_a_forward_keeps_no_autograd_history():
    """The state buffer took the model's autograd graph, one link per call, so memory grew and
    a stream never set could backpropagate into the weights. Oracle: the values set, and no
    gradient history on any stream."""
    model = rnnkit.GRU(3, 4, batch_first=True)
    session = StreamingSession(model, streams=["a", "b"])
    for _ in range(3):
        _, h = model(torch.randn(1, 5, 3))
        session.set_state([h[0]], "a")
    assert torch.equal(session.get_state("a")[0].h, h[0, 0].detach())
    assert not any(s.h.requires_grad for i in ("a", "b") for s in session.get_state(i))


@pytest.mark.parametrize("engine", ENGINES)
def test_look_alike_ids_and_a_string_of_ids_are_refused(engine):
    """1.0, True and np.int64(1) equal 1 as dict keys, so step(x, 1.0) stepped stream 1 while
    add_stream(1.0) was refused; step_many(x, "ab") stepped streams "a" and "b". Oracle:
    stream 1's state, unchanged by each refused call."""
    import numpy as np

    session = StreamingSession(rnnkit.GRU(3, 4), streams=[1, "a", "b"], engine=engine)
    before = session.get_state(1)[0].h.clone()
    for look_alike in (1.0, True, np.int64(1)):
        for call in (lambda i: session.step(torch.randn(3), i),
                     lambda i: session.feed(torch.randn(2, 3), i), session.reset,
                     session.get_state, session.drop_stream):
            with pytest.raises(TypeError, match="stream ids are ints or strings"):
                call(look_alike)
        assert look_alike not in session
    with pytest.raises(TypeError, match=r"for one stream, pass \['ab'\]"):
        session.step_many(torch.randn(2, 3), "ab")
    assert torch.equal(session.get_state(1)[0].h, before) and session.stream_ids == [1, "a", "b"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_session_made_under_inference_mode_works_after_it(engine):
    """Its buffers were inference tensors: reset, set_state and add_stream (and with the torch
    engine every step) then failed with torch's in-place error. Oracle: a session made
    normally, stepped the same way."""
    model, head, graph = _build("lstm_2layers_head")
    x = _inputs(graph, batch=1, steps=6)[0]
    with torch.inference_mode():
        made_inside = StreamingSession(model, head=head, streams=["a"], engine=engine)
    normal = StreamingSession(model, head=head, streams=["a"], engine=engine)
    for session in (made_inside, normal):
        session.feed(x[:3], "a")
        state = session.get_state("a")
        session.reset()
        session.set_state(state, "a")
        session.add_stream("b")
        for name in "abcde"[2:]:  # past the first arena: the session grows
            session.add_stream(name)
        session.step_many(x[3:5], ["a", "b"])
    assert_close(made_inside.step(x[5], "a"), normal.step(x[5], "a"),
                 what="a session made under inference_mode")
    assert_close(made_inside.get_state("b")[1].h, normal.get_state("b")[1].h,
                 what="its second stream")


@pytest.mark.parametrize("engine", ENGINES)
def test_step_many_of_no_streams_gives_no_rows(engine):
    """The torch engine's buffers were bound only once the session first grew, so a session
    opened with no streams raised a TypeError; the native engine returned (0, O)."""
    session = StreamingSession(rnnkit.GRU(3, 4), streams=0, engine=engine)
    assert session.step_many(torch.zeros(0, 3), []).shape == (0, 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_stream_counts_may_be_numpy_integers_and_other_numbers_are_refused(engine):
    import numpy as np  # a dependency of rnnkit
    session = StreamingSession(rnnkit.GRU(3, 4), streams=np.int64(3), engine=engine)
    assert session.stream_ids == [0, 1, 2]
    with pytest.raises(TypeError) as info:
        StreamingSession(rnnkit.GRU(3, 4), streams=2.0, engine=engine)
    one_line_message(info, "count or an iterable of ids", "float")


@pytest.mark.parametrize("engine", ENGINES)
def test_input_errors_give_the_count_a_call_needs_and_the_cast(engine):
    """"a float32 CPU tensor of n rows of x 5 features" named neither the count nor the fix."""
    session = StreamingSession(rnnkit.GRU(5, 4), streams=2, engine=engine)
    with pytest.raises(ValueError) as info:
        session.step_many(torch.zeros(3, 5), [0, 1])
    one_line_message(info, "2 rows (one per stream) of 5 features", "3, 5")
    with pytest.raises(ValueError) as info:
        session.feed(torch.zeros(4, 5, dtype=torch.float64), 0)
    one_line_message(info, "4 steps of 5 features", "convert it with x.float()")
    tokens = StreamingSession(TokenModel(), streams=2, engine=engine)
    with pytest.raises(ValueError) as info:
        tokens.step_many(torch.zeros(2, dtype=torch.int32), [0, 1])
    one_line_message(info, "2 rows (one per stream) of int64 token ids", "x.long()")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_lstm_state_given_as_a_list_is_told_to_be_a_tuple(engine):
    session = StreamingSession(rnnkit.LSTM(3, 4), engine=engine)
    h, c = session.get_state()[0]
    with pytest.raises(ValueError) as info:
        session.set_state([[h + 1, c + 1]])
    one_line_message(info, "list of tensors", "as a tuple")
    assert session.get_state()[0].h.abs().sum() == 0, "a refused state was written"


@pytest.mark.parametrize("register", ["register_forward_hook", "register_forward_pre_hook"])
def test_hooks_on_a_model_that_describes_its_parts_are_refused(register, tmp_path):
    """A hook on the character LM itself (here one halving the logits, as a temperature hook
    would) ran in model(x) but not in the session built from its streaming_parts(), which then
    streamed numbers 0.18 off the model's, and export checked itself against those parts."""
    from rnnkit.export import export_numpy
    from rnnkit.tasks.lm.model import CharLanguageModel, ModelConfig

    model = CharLanguageModel(5, ModelConfig(hidden_size=8, embedding_dim=4)).eval()
    halve = ((lambda module, args, output: (output[0] / 2, output[1]))
             if register == "register_forward_hook" else (lambda module, args: None))
    getattr(model, register)(halve)
    for build in (lambda: StreamingSession(model),
                  lambda: export_numpy(model, tmp_path / "bundle")):
        with pytest.raises(UnsupportedModelError) as info:
            build()
        one_line_message(info, "CharLanguageModel", "hook")
    assert not (tmp_path / "bundle").exists()
