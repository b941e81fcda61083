"""Training through torch.compile on the fused backend: forward and backward traced by AOT
autograd, checked against the same model run eagerly on the reference backend.

The ops' C++ autograd runs under the trace with fake tensors and symbolic sizes. Two ways it
can go wrong, each a test below: making a real tensor (the pooled zero gradient of an unused
output) where only a fake one may go, and reading concrete sizes, which fixes T and B in the
graph so that every new shape compiles again.
"""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

import rnnkit
from rnnkit.backends import BACKENDS, lowered
from tolerances import assert_close

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.skipif(BACKENDS["fused"].unavailable() is not None,
                                 reason="fused backend unavailable here: "
                                        f"{BACKENDS['fused'].unavailable()}")]

KINDS = {
    "lstm": lambda *a, **k: rnnkit.LSTM(*a, **k),
    "lstm_proj": lambda *a, **k: rnnkit.LSTM(*a, proj_size=3, **k),
    "gru": lambda *a, **k: rnnkit.GRU(*a, **k),
    "rnn_tanh": lambda *a, **k: rnnkit.RNN(*a, **k),
}


class _Head(torch.nn.Module):
    """An RNN and a linear head on what ``used`` names: the last output step (the final state
    unused, as in most classifiers), the final state alone (the output unused), or both."""

    def __init__(self, kind: str, backend: str, used: str):
        super().__init__()
        self.rnn = KINDS[kind](3, 8, num_layers=2, bidirectional=True, batch_first=True,
                               backend=backend)
        features = getattr(self.rnn, "proj_size", 0) or 8  # per direction
        self.head = torch.nn.Linear(2 * features, 2)
        self.used = used

    def forward(self, x):
        output, state = self.rnn(x)
        if self.used == "output":
            return self.head(output[:, -1])
        h_n = state[0] if isinstance(state, tuple) else state
        last_state = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # top layer, both directions
        if self.used == "final_state":
            return self.head(last_state)
        return self.head(output[:, -1]) + self.head(last_state)


def _twins(kind: str, used: str):
    """(fused model, reference model) with the same weights."""
    torch.manual_seed(3)
    fused = _Head(kind, "fused", used)
    reference = _Head(kind, "reference", used)
    reference.load_state_dict(fused.state_dict())
    return fused, reference


def _loss_and_grads(model, x):
    loss = model(x).square().sum()
    return loss, torch.autograd.grad(loss, [x, *model.parameters()])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("used", ["output", "final_state", "both"])
def test_compiled_training_equals_eager_reference(kind, used):
    """An unused output reaches the backward op as an undefined gradient; its zeros used to
    come from the buffer pool, a real tensor, and AOT autograd's fake-tensor trace failed
    ("Please convert all Tensors to FakeTensors first")."""
    torch._dynamo.reset()
    fused, reference = _twins(kind, used)
    x = torch.randn(4, 6, 3, requires_grad=True)
    compiled = torch.compile(fused, backend="aot_eager", fullgraph=True)
    loss, grads = _loss_and_grads(compiled, x)
    expected_loss, expected_grads = _loss_and_grads(reference, x)
    assert_close(loss, expected_loss)
    for name, got, expected in zip(["x", *dict(fused.named_parameters())], grads, expected_grads):
        assert_close(got, expected, grad=True, what=name)


def test_inductor_training_with_the_final_state_unused():
    """The same as above through inductor, the default backend users get."""
    torch._dynamo.reset()
    fused, reference = _twins("lstm", "output")
    x = torch.randn(4, 6, 3, requires_grad=True)
    loss, grads = _loss_and_grads(torch.compile(fused), x)
    expected_loss, expected_grads = _loss_and_grads(reference, x)
    assert_close(loss, expected_loss)
    for got, expected in zip(grads, expected_grads):
        assert_close(got, expected, grad=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_training_keeps_one_graph_over_shapes(kind, dtype):
    """With dynamic=True one graph serves every (B, T). float32 layers run their input
    projection through rnnkit::linear, whose backward read concrete sizes: one graph per new
    shape, and torch fell back to eager after eight."""
    torch._dynamo.reset()
    counters.clear()
    fused, reference = _twins(kind, "both")
    fused.to(dtype), reference.to(dtype)
    compiled = torch.compile(fused, backend="aot_eager", fullgraph=True, dynamic=True)
    for batch, steps in [(4, 6), (2, 3), (5, 9), (3, 4)]:
        x = torch.randn(batch, steps, 3, dtype=dtype, requires_grad=True)
        loss, grads = _loss_and_grads(compiled, x)
        expected_loss, expected_grads = _loss_and_grads(reference, x)
        assert_close(loss, expected_loss, what=f"loss at B={batch}, T={steps}")
        for got, expected in zip(grads, expected_grads):
            assert_close(got, expected, grad=True, what=f"gradient at B={batch}, T={steps}")
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


@pytest.mark.parametrize("form", ["tensor", "mask"])
def test_compiled_training_with_lengths_keeps_one_graph_over_shapes(form):
    """The traced lengths check formatted T into its message, which fixed T in the graph: one
    graph per sequence length. (The reference backend unrolls its Python loop over T, so only
    the fused one can keep a single graph.)"""
    torch._dynamo.reset()
    counters.clear()
    fused, reference = _twins("gru", "both")

    def rnn_loss(model, x, lengths):
        if form == "mask":
            lengths = torch.arange(x.size(1)) < lengths.unsqueeze(1)  # (B, T), batch_first
        output, h_n = model.rnn(x, lengths=lengths)
        return output.square().sum() + h_n.square().sum()

    def loss_and_grads(loss_of, model, x, lengths):
        value = loss_of(model, x, lengths)
        return value, torch.autograd.grad(value, [x, *model.rnn.parameters()])

    compiled = torch.compile(rnn_loss, backend="aot_eager", fullgraph=True, dynamic=True)
    generator = torch.Generator().manual_seed(0)
    # No size equal to another (input_size 3 included) in the first call: dynamo gives equal
    # sizes one symbol, and fixing one (input_size) would fix the other.
    for batch, steps in [(4, 2), (5, 6), (2, 7), (6, 4)]:
        x = torch.randn(batch, steps, 3, requires_grad=True)
        lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
        loss, grads = loss_and_grads(compiled, fused, x, lengths)
        expected_loss, expected_grads = loss_and_grads(rnn_loss, reference, x, lengths)
        assert_close(loss, expected_loss, what=f"loss at B={batch}, T={steps}")
        for got, expected in zip(grads, expected_grads):
            assert_close(got, expected, grad=True, what=f"gradient at B={batch}, T={steps}")
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


@pytest.fixture
def first_calls(monkeypatch):
    """A process's first calls: the once-per-process caches and logs empty, so the trace goes
    through the code that fills them (which is where dynamo failed)."""
    import importlib

    scan = importlib.import_module("rnnkit.backends.scan")  # the module, not scan() itself
    backend = importlib.import_module("rnnkit.backends.fused.backend")
    monkeypatch.setattr(lowered, "_declines_logged", set())
    monkeypatch.setattr(lowered, "_bf16_instructions", None, raising=False)
    monkeypatch.setattr(scan, "_fallbacks_logged", set())
    monkeypatch.setattr(backend, "_bf16_kernel", None)


@pytest.mark.skipif(not lowered.cpu_bf16_instructions(),
                    reason="the bfloat16 routes run only on CPUs with AMX-BF16 or AVX512-BF16")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("backend", ["auto", "fused"])
def test_compiled_training_under_bf16_autocast_equals_eager(kind, backend, first_calls):
    """Under CPU bfloat16 autocast, fullgraph=True failed to trace the route choice: a logger
    call, the /proc/cpuinfo read behind functools.lru_cache, torch.get_num_threads and the
    kernels' string-valued probe. Oracle: the same calls eagerly, under the same autocast."""
    torch._dynamo.reset()
    torch.manual_seed(3)
    model = KINDS[kind](6, 8, backend=backend)
    x = torch.randn(5, 4, 6, requires_grad=True)

    def loss(x):
        return model(x)[0].float().square().sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    results = []
    for run in (compiled, loss):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = run(x)
        results.append((value, torch.autograd.grad(value, [x, *model.parameters()])))
    (got, got_grads), (expected, expected_grads) = results
    assert_close(got, expected)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        assert_close(got_grad, expected_grad, grad=True)


@pytest.mark.parametrize("batch", [3, 0], ids=["batch-3", "empty-batch"])
def test_compiled_training_with_padded_gate_gradients(batch):
    """At H = 128 an LSTM's gate gradients have rows one cache line longer than the gates
    (csrc/common.h, gradient_row_stride), and the input projection's backward reads them in
    place: the traced backward views them as the fake functions describe them (whose strides
    test_fused.py compares with the real ones). An empty batch runs too."""
    torch._dynamo.reset()
    torch.manual_seed(4)
    fused = rnnkit.LSTM(16, 128, backend="fused")
    reference = rnnkit.LSTM(16, 128, backend="reference")
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(5, batch, 16, requires_grad=True)

    def loss_and_grads(model):
        output, _ = model(x)
        loss = output.square().sum()
        return loss, torch.autograd.grad(loss, [x, *model.parameters()], allow_unused=True)

    compiled = torch.compile(fused, backend="aot_eager", fullgraph=True)
    loss, grads = loss_and_grads(compiled)
    expected_loss, expected_grads = loss_and_grads(reference)
    assert_close(loss, expected_loss)
    for ours, theirs in zip(grads, expected_grads):
        assert_close(ours, theirs, grad=True)
