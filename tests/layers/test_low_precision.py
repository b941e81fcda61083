"""Layers with bfloat16 or float16 parameters on the CPU run their recurrence in float32
(rnnkit.backends.widened). Oracle: the float64 run of the same (low-precision) weights and
input, which the result must match to the rounding of its own dtype, plus torch.nn in bfloat16
for the LSTM (same route) and the reference backend for what stays as it was."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.utils.prune as prune

import rnnkit
import rnnkit.backends.widened as widened
from rnnkit.backends.lowered import cpu_bf16_instructions

#: the spacing of the dtype's values in [0.5, 1): the outputs of tanh lie in (-1, 1), where
#: rounding moves a value by at most half of it (2^-9 in bfloat16, as widened.py measures)
ULP = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
LAYERS = {"rnn": rnnkit.RNN, "gru": rnnkit.GRU, "lstm": rnnkit.LSTM}


def low_precision_pair(kind, dtype, hidden=32, **options):
    """A layer in ``dtype`` and its float64 copy with exactly the same weight values."""
    torch.manual_seed(0)
    layer = LAYERS[kind](hidden, hidden, batch_first=True, **options).to(dtype)
    return layer, copy.deepcopy(layer).double()


def max_error(value, oracle):
    return (value.double() - oracle).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_elman_and_gru_round_only_their_output(kind, dtype):
    # Over 100 steps a recurrence rounded at every op drifts several ulps (the reference
    # backend: ~4 in bfloat16); computed in float32 only the final rounding is left.
    layer, exact = low_precision_pair(kind, dtype)
    x = torch.randn(8, 100, 32).to(dtype)
    output, h_n = layer(x)
    want, want_h = exact(x.double())
    assert output.dtype == dtype and h_n.dtype == dtype
    assert max_error(output, want) <= ULP[dtype] / 2 + 1e-6
    assert max_error(h_n, want_h) <= ULP[dtype] / 2 + 1e-6
    reference = copy.deepcopy(layer)
    reference.backend = "reference"
    # the oracle can tell: the old route (the parameters' dtype all through) misses it
    assert max_error(reference(x)[0], want) > ULP[dtype] / 2 + 1e-6


def test_lstm_in_bfloat16_is_as_accurate_as_torch_nn():
    layer, exact = low_precision_pair("lstm", torch.bfloat16, hidden=128)
    torch_lstm = torch.nn.LSTM(128, 128, batch_first=True).bfloat16()
    torch_lstm.load_state_dict(layer.state_dict())
    x = torch.randn(16, 100, 128).bfloat16()
    want = exact(x.double())[0]
    ours, theirs = max_error(layer(x)[0], want), max_error(torch_lstm(x)[0], want)
    # torch.nn's bfloat16 LSTM (oneDNN, float32 gates and cell state) lands at ~0.0023 here,
    # the reference backend in bfloat16 at ~0.0064
    assert ours <= max(theirs * 1.25, ULP[torch.bfloat16] / 2 + 1e-6)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_options_state_and_gradients(kind):
    # lengths, reverse (bidirectional), two layers and a given state, forward and backward
    layer, exact = low_precision_pair(kind, torch.bfloat16, hidden=16, num_layers=2,
                                      bidirectional=True)
    x = torch.randn(3, 40, 16).bfloat16()
    lengths = torch.tensor([40, 5, 1])
    fields = 2 if kind == "lstm" else 1
    state = tuple(0.5 * torch.randn(4, 3, 16) for _ in range(fields))
    given = tuple(s.bfloat16().requires_grad_() for s in state)
    exact_given = tuple(s.detach().double().requires_grad_() for s in given)
    output, final = layer(x, given if kind == "lstm" else given[0], lengths=lengths)
    want, want_final = exact(x.double(), exact_given if kind == "lstm" else exact_given[0],
                             lengths=lengths)
    assert output.dtype == torch.bfloat16
    # With lengths even an LSTM runs wholly in float32 (oneDNN's LSTM has no lengths). The
    # second layer reads the first one's output rounded to bfloat16, which the float64 oracle
    # does not round: one ulp, not half.
    bound = ULP[torch.bfloat16]
    assert max_error(output, want) <= bound
    for got, expected in zip(final if kind == "lstm" else (final,),
                             want_final if kind == "lstm" else (want_final,)):
        assert got.dtype == torch.bfloat16
        assert max_error(got, expected) <= bound
    weights = torch.randn(want.shape, dtype=torch.float64)
    (output.double() * weights).sum().backward()
    (want * weights).sum().backward()
    for (name, param), (_, exact_param) in zip(layer.named_parameters(),
                                               exact.named_parameters()):
        assert param.grad.dtype == torch.bfloat16, name
        scale = exact_param.grad.abs().max().item()
        assert max_error(param.grad, exact_param.grad) <= 0.03 * scale, name
    for got, expected in zip(given, exact_given):
        assert max_error(got.grad, expected.grad) <= 0.03 * expected.grad.abs().max().item()


def test_pruned_weights_are_honoured():
    # prune recomputes the weight in a forward pre-hook, on the cell itself
    layer, exact = low_precision_pair("gru", torch.bfloat16, hidden=16)
    cell, exact_cell = layer.stack.layers[0].cell, exact.stack.layers[0].cell
    prune.random_unstructured(cell, "weight_hh", amount=0.5)
    with torch.no_grad():
        exact_cell.weight_hh.copy_(cell.weight_hh_orig * cell.weight_hh_mask)
    x = torch.randn(2, 40, 16).bfloat16()
    assert max_error(layer(x)[0], exact(x.double())[0]) <= ULP[torch.bfloat16] / 2 + 1e-6


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_a_cell_s_forward_pre_hook_runs_once_per_widened_call(kind):
    # The float32 view of the cell must not carry the cell's hooks: they would run on both (a
    # counting or weight-recomputing hook twice). Oracle: torch.nn runs a module's pre-hooks
    # once per call, and so does a float32 layer here.
    layer, _ = low_precision_pair(kind, torch.bfloat16, hidden=16)
    calls = []
    layer.stack.layers[0].cell.register_forward_pre_hook(lambda module, args: calls.append(1))
    layer(torch.randn(2, 40, 16).bfloat16())
    assert len(calls) == 1


@pytest.mark.parametrize("steps, hidden", [(1, 16), (3, 128), (40, 520)],
                         ids=["one-step", "short", "wide"])
def test_short_or_wide_calls_keep_the_parameters_dtype(steps, hidden):
    # Below ceil((I + H) / 64) steps (at least 2: a character generated at a time) or above
    # H = 512 (256 without gradients) the casts and packing cost more than they save: such
    # calls run as before. Oracle: the reference backend.
    layer, _ = low_precision_pair("gru", torch.bfloat16, hidden=hidden)
    reference = copy.deepcopy(layer)
    reference.backend = "reference"
    x = torch.randn(2, steps, hidden).bfloat16()
    assert torch.equal(layer(x)[0], reference(x)[0])


@pytest.mark.parametrize("hidden, steps", [(128, 4), (256, 8)])
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_a_call_is_widened_from_one_step_per_64_weight_columns(kind, hidden, steps):
    # I + H = 256 weight columns: 3 steps stay in bfloat16, 4 are widened (they ran 1.5-2x
    # faster than torch.nn there, the bfloat16 step loop 0.7-0.9x); 512 columns: 7 and 8.
    # Oracles: the reference backend (equal) below the minimum, the float64 run (within the
    # output's rounding) from it.
    layer, exact = low_precision_pair(kind, torch.bfloat16, hidden=hidden)
    reference = copy.deepcopy(layer)
    reference.backend = "reference"
    # a bfloat16 LSTM without lengths runs oneDNN's LSTM at every length (on a CPU with
    # bfloat16 instructions): with lengths it takes this rule
    lstm = kind == "lstm"
    short_lengths, lengths = ((torch.tensor([steps - 1, 2]), torch.tensor([steps, 3])) if lstm
                              else (None, None))
    short = torch.randn(2, steps - 1, hidden).bfloat16()
    assert torch.equal(layer(short, lengths=short_lengths)[0],
                       reference(short, lengths=short_lengths)[0])
    x = torch.randn(2, steps, hidden).bfloat16()
    assert max_error(layer(x, lengths=lengths)[0], exact(x.double(), lengths=lengths)[0]) \
        <= ULP[torch.bfloat16] / 2 + 1e-6
    # the bfloat16 step loop the minimum replaces misses that bound at these sizes
    assert max_error(reference(x, lengths=lengths)[0], exact(x.double(), lengths=lengths)[0]) \
        > ULP[torch.bfloat16] / 2 + 1e-6


def test_large_steps_are_widened_in_training_only_from_32_steps(monkeypatch):
    # B x H x (I + H) multiply-adds per thread past 2^21: the bfloat16 step loop's AMX matmuls
    # ran an inference step faster than the float32 kernels (B = 64, H = 256: 0.87-1.11x
    # torch.nn against 0.56-0.82x widened), and past 2^22 a training call repays its casts only
    # from 32 steps. Oracle: the reference backend (equal) where the call is not widened, the
    # float64 run where it is.
    layer, exact = low_precision_pair("gru", torch.bfloat16, hidden=64)
    reference = copy.deepcopy(layer)
    reference.backend = "reference"
    step_work = 2 * 64 * (64 + 64) / torch.get_num_threads()  # B x H x (I + H) per thread
    monkeypatch.setattr(widened, "STEP_WORK", step_work * 0.99)
    x = torch.randn(2, 31, 64).bfloat16()
    with torch.no_grad():
        assert torch.equal(layer(x)[0], reference(x)[0])
    assert max_error(layer(x)[0], exact(x.double())[0]) <= ULP[torch.bfloat16] / 2 + 1e-6
    monkeypatch.setattr(widened, "STEP_WORK", step_work * 0.49)
    assert torch.equal(layer(x)[0], reference(x)[0])
    longer = torch.randn(2, 32, 64).bfloat16()
    assert max_error(layer(longer)[0], exact(longer.double())[0]) \
        <= ULP[torch.bfloat16] / 2 + 1e-6
    with torch.no_grad():  # inference stays in bfloat16 at any length
        assert torch.equal(layer(longer)[0], reference(longer)[0])


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_backend_fused_widens_calls_of_every_length(kind, caplog):
    # A layer trained on backend="fused" (T >= 32) failed on a shorter call, such as one
    # character generated at a time: the fused kernels have no bfloat16 arithmetic.
    layer, exact = low_precision_pair(kind, torch.bfloat16, hidden=16, backend="fused")
    x = torch.randn(2, 3, 16).bfloat16()
    with caplog.at_level("INFO", logger="rnnkit"):
        output = layer(x, lengths=torch.tensor([3, 2]))[0]
    assert max_error(output, exact(x.double(), lengths=torch.tensor([3, 2]))[0]) \
        <= ULP[torch.bfloat16] / 2 + 1e-6
    # no notice about the bfloat16 autocast route the user never asked for
    assert "bfloat16" not in caplog.text


def test_mixed_parameter_dtypes_are_refused_as_before():
    # a float16 weight in a bfloat16 layer ran, widened, and returned float16
    layer, _ = low_precision_pair("gru", torch.bfloat16, hidden=8)
    cell = layer.stack.layers[0].cell
    cell.weight_hh.data = cell.weight_hh.data.half()
    with pytest.raises(RuntimeError):
        layer(torch.randn(2, 40, 8).bfloat16())


def test_float16_under_bfloat16_autocast_is_not_rounded_to_bfloat16():
    # the widened float16 layer met the autocast's bfloat16 route and lost 5x in accuracy
    layer, exact = low_precision_pair("gru", torch.float16)
    x = torch.randn(4, 50, 32).half()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = layer(x)[0]
    assert max_error(output, exact(x.double())[0]) <= ULP[torch.float16] / 2 + 1e-6


def test_reference_backend_keeps_the_parameters_dtype():
    # backend="reference" is the oracle of the dtype's own arithmetic: a step loop in bfloat16
    layer, _ = low_precision_pair("gru", torch.bfloat16, hidden=8, backend="reference")
    x = torch.randn(2, 40, 8).bfloat16()  # long enough to be widened on "auto"
    h = torch.zeros(2, 8, dtype=torch.bfloat16)
    cell = layer.stack.layers[0].cell
    steps = []
    for t in range(x.size(1)):
        h = cell(x[:, t], h)
        h = h[0] if isinstance(h, tuple) else h
        steps.append(h)
    assert torch.equal(layer(x)[0], torch.stack(steps, 1))


@pytest.mark.skipif(not cpu_bf16_instructions(),
                    reason="oneDNN's bfloat16 LSTM needs a CPU with AMX-BF16 or AVX512-BF16")
@pytest.mark.parametrize("steps, hidden", [(5, 16), (40, 300)], ids=["short", "wide"])
def test_a_bfloat16_lstm_runs_what_torch_nn_runs_at_any_size(steps, hidden):
    # Short and wide calls ran the reference's step loop in bfloat16, 2-5x slower than
    # torch.nn.LSTM (benchmarks/bench_low_precision.py). Oracle: torch.nn.LSTM in bfloat16,
    # the same oneDNN primitive on the same weights, and its gradients.
    layer, _ = low_precision_pair("lstm", torch.bfloat16, hidden=hidden)
    theirs = torch.nn.LSTM(hidden, hidden, batch_first=True).bfloat16()
    theirs.load_state_dict(layer.state_dict())
    x = torch.randn(2, steps, hidden).bfloat16()
    ours_out, (h, c) = layer(x)
    their_out, (their_h, their_c) = theirs(x)
    assert torch.equal(ours_out, their_out) and torch.equal(h, their_h)
    assert torch.equal(c, their_c)
    ours_out.float().square().sum().backward()
    their_out.float().square().sum().backward()
    for mine, other in zip(layer.parameters(), theirs.parameters()):
        assert torch.equal(mine.grad, other.grad)


def test_a_training_call_is_widened_up_to_h_512_and_inference_up_to_256():
    # At H = 300 a training call pays for its casts (GRU at H = 512 ran 1.9x faster widened),
    # an inference call does not. Oracles: the float64 run (within the output's rounding) and
    # the reference backend (equal).
    layer, exact = low_precision_pair("gru", torch.bfloat16, hidden=300)
    reference = copy.deepcopy(layer)
    reference.backend = "reference"
    x = torch.randn(2, 40, 300).bfloat16()
    assert max_error(layer(x)[0], exact(x.double())[0]) <= ULP[torch.bfloat16] / 2 + 1e-6
    with torch.no_grad():
        assert torch.equal(layer(x)[0], reference(x)[0])
