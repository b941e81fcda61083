"""Tests for rnnkit.runtime.sampling: each result is checked against an oracle written here
(torch.topk, brute-force loops over probabilities, exhaustive search over all sequences)."""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch
from torch.nn import functional as F

from rnnkit.runtime import BeamHypothesis, beam_search, filter_logits, sample_next

pytestmark = pytest.mark.usefixtures("single_thread")

V = 4  # vocabulary of the tiny models
LENGTH = 3  # exhaustive search covers V ** LENGTH = 64 sequences


# --- oracles ------------------------------------------------------------------------------

def softmax_list(values: list[float]) -> list[float]:
    """Plain-Python softmax; -inf entries get probability 0."""
    top = max(values)
    exps = [math.exp(v - top) if v != float("-inf") else 0.0 for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def nucleus_brute_force(row: list[float], top_p: float) -> set[int]:
    """Indices of the smallest set of most probable tokens whose probability reaches top_p."""
    probs = softmax_list(row)
    order = sorted(range(len(row)), key=lambda i: probs[i], reverse=True)
    kept, total = set(), 0.0
    for i in order:
        kept.add(i)
        total += probs[i]
        if total >= top_p:
            break
    return kept


def exhaustive(step, state, first_logits, length, end_token=None):
    """Every sequence of ``length`` tokens (or ending at ``end_token``) with its log-prob,
    found by stepping the model one sequence at a time with a batch of 1."""
    results = []

    def expand(prefix, log_prob, logits, state):
        log_probs = torch.log_softmax(logits.double(), dim=1)[0].tolist()
        for token in range(logits.size(1)):
            tokens, total = prefix + [token], log_prob + log_probs[token]
            if token == end_token or len(tokens) == length:
                results.append((tokens, total))
            else:
                expand(tokens, total, *step(torch.tensor([token]), state))

    with torch.no_grad():
        expand([], 0.0, first_logits, state)
    return results


def penalized(log_prob: float, n: int, length_penalty: float) -> float:
    return log_prob / n ** length_penalty


# --- tiny deterministic models: (step, state after the prompt, first_logits, state_batch_dim) --

class PairState(NamedTuple):
    h: torch.Tensor  # (B, H)
    c: torch.Tensor  # (B, H)


def _parts(seed: int, hidden: int = 6):
    torch.manual_seed(seed)
    embed = torch.nn.Embedding(V, 5)
    head = torch.nn.Linear(hidden, V)
    with torch.no_grad():  # sharper distributions make the ranking of sequences less flat
        head.weight.mul_(3.0)
    return embed, head, hidden


def gru_cell_model(seed: int = 0):
    embed, head, hidden = _parts(seed)
    cell = torch.nn.GRUCell(5, hidden)

    def step(tokens, h):
        assert not torch.is_grad_enabled()
        h = cell(embed(tokens), h)
        return head(h), h

    h0 = torch.randn(1, hidden)
    return step, h0, head(h0).detach(), 0


def stacked_gru_model(seed: int = 1):
    embed, head, hidden = _parts(seed)
    gru = torch.nn.GRU(5, hidden, num_layers=2)

    def step(tokens, h):  # h: (layers, B, H), batch in dim 1
        out, h = gru(embed(tokens)[None], h)
        return head(out[0]), h

    h0 = torch.randn(2, 1, hidden)
    return step, h0, head(h0[-1]).detach(), 1


def namedtuple_lstm_model(seed: int = 2):
    embed, head, hidden = _parts(seed)
    cell = torch.nn.LSTMCell(5, hidden)

    def step(tokens, state):  # state: [PairState]; the types must survive the reordering
        assert isinstance(state, list) and isinstance(state[0], PairState)
        h, c = cell(embed(tokens), tuple(state[0]))
        return head(h), [PairState(h, c)]

    state = [PairState(torch.randn(1, hidden), torch.randn(1, hidden))]
    return step, state, head(state[0].h).detach(), 0


MODELS = [gru_cell_model, stacked_gru_model, namedtuple_lstm_model]


# --- filter_logits ------------------------------------------------------------------------

def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    for k in (1, 3, 9):
        out = filter_logits(logits, top_k=k)
        expected = torch.zeros_like(logits, dtype=torch.bool)
        expected[torch.arange(6)[:, None], torch.topk(logits, k, dim=1).indices] = True
        assert torch.equal(torch.isfinite(out), expected)
        assert torch.equal(out[expected], logits[expected])
    for k in (None, 10, 50):
        assert torch.equal(filter_logits(logits, top_k=k), logits)


def test_top_k_keeps_k_tokens_when_the_k_th_value_is_tied():
    """A threshold on the k-th value would keep all three tied 1.0s for k = 2. Oracle: k
    finite entries, all among torch.topk's and equal to the input."""
    logits = torch.tensor([[1.0, 1.0, 1.0, 0.0], [3.0, 2.0, 2.0, 2.0]])
    out = filter_logits(logits, top_k=2)
    kept = torch.isfinite(out)
    assert kept.sum(dim=1).tolist() == [2, 2]
    assert bool((out[kept] == logits[kept]).all())
    assert kept[1, 0] and not kept[0, 3]  # the largest stays, the smallest goes


def test_sample_next_draws_from_float32_probabilities_of_half_precision_logits(monkeypatch):
    """float16's softmax loses small probabilities (its spacing near 1 is 2^-11). Oracle: the
    float64 softmax of the tempered logits, which the probabilities multinomial receives must
    match to float32's accuracy."""
    seen = []
    real = torch.multinomial

    def spy(probs, *args, **kwargs):
        seen.append(probs)
        return real(probs, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", spy)
    logits = torch.tensor([[8.0, 0.0, -9.0, -12.0]])
    for dtype in (torch.float16, torch.bfloat16):
        sample_next(logits.to(dtype), temperature=0.7, generator=torch.Generator().manual_seed(0))
        probs = seen[-1]
        assert probs.dtype == torch.float32
        expected = F.softmax(logits.to(dtype).double() / 0.7, dim=1)
        torch.testing.assert_close(probs.double(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_matches_brute_force_nucleus(top_p):
    logits = torch.randn(8, 7, generator=torch.Generator().manual_seed(1)) * 2
    out = filter_logits(logits, top_p=top_p)
    for row, filtered in zip(logits.tolist(), out):
        kept = set(torch.isfinite(filtered).nonzero().flatten().tolist())
        assert kept == nucleus_brute_force(row, top_p)
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)


def test_top_p_boundary_keeps_the_smallest_set():
    # Uniform over 4 tokens: probabilities 0.25 exactly, so the cumulative sums hit top_p exactly
    # and the smallest set reaching it has top_p * 4 tokens.
    for top_p, kept in ((0.25, 1), (0.5, 2), (0.75, 3), (1.0, 4)):
        out = filter_logits(torch.zeros(1, 4), top_p=top_p)
        assert int(torch.isfinite(out).sum()) == kept == len(nucleus_brute_force([0.0] * 4, top_p))


@pytest.mark.parametrize("probs, top_p, kept", [
    ([0.5, 0.5 - 1e-9, 1e-9], 1 - 1e-10, 3),  # the first two reach only 1 - 1e-9
    ([0.6, 0.3, 0.1 - 1e-9, 1e-9], 0.99999999, 3),  # this top_p is 1.0 in float32
    ([1 / 3, 1 / 3, 1 / 3], 2 / 3, 2),  # cumsum - probs rounded the third token's mass below
])
def test_top_p_is_exact_at_the_boundary_of_float64_logits(probs, top_p, kept):
    # Oracle: the brute-force nucleus in Python floats (float64). The mass was summed in
    # float32, so float64 logits kept one token too few or too many at the boundary.
    logits = torch.tensor([probs], dtype=torch.float64).log()
    out = filter_logits(logits, top_p=top_p)
    assert int(torch.isfinite(out).sum()) == kept == len(nucleus_brute_force(logits[0].tolist(),
                                                                              top_p))


def test_top_k_then_top_p_with_temperature():
    logits = torch.randn(8, 9, generator=torch.Generator().manual_seed(2))
    temperature, top_k, top_p = 0.7, 5, 0.6
    out = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    for row, filtered in zip(logits.tolist(), out):
        scaled = [x / temperature for x in row]
        in_k = sorted(range(len(row)), key=lambda i: scaled[i], reverse=True)[:top_k]
        masked = [s if i in in_k else float("-inf") for i, s in enumerate(scaled)]
        kept = set(torch.isfinite(filtered).nonzero().flatten().tolist())
        assert kept == nucleus_brute_force(masked, top_p)


def test_temperature_divides_logits():
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(3))
    for temperature in (0.25, 1.0, 3.0):
        torch.testing.assert_close(filter_logits(logits, temperature=temperature),
                                   logits / temperature)


@pytest.mark.parametrize("dtype, temperature", [(torch.float16, 1e-4), (torch.float32, 1e-40),
                                                 (torch.float32, 1e-50)])
@pytest.mark.parametrize("offset", [0.0, -12.0], ids=["mixed", "all-negative"])
def test_a_tiny_temperature_keeps_the_most_probable_token(dtype, temperature, offset):
    """logits / temperature overflowed to +inf before any shift, so softmax gave NaN and top_p
    masked every token; a row of negative logits overflowed to -inf everywhere (float16), and a
    temperature that rounds to 0 in the logits' dtype (1e-50) made 0 / 0 = NaN. Oracle: the
    argmax, and unchanged logits at an ordinary temperature."""
    logits = torch.tensor([[3.0, 5.0, -1.0], [0.5, -2.0, 0.25]], dtype=dtype) + offset
    out = filter_logits(logits, temperature=temperature, top_p=0.9)
    assert out.dtype == dtype
    assert torch.equal(torch.isfinite(out), torch.tensor([[False, True, False],
                                                          [True, False, False]]))
    assert torch.equal(F.softmax(out.float(), dim=1).argmax(dim=1), logits.float().argmax(dim=1))


def test_masked_tokens_stay_masked():
    logits = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf")]])
    out = filter_logits(logits, top_p=0.999)
    assert torch.isneginf(out[0, [1, 3]]).all() and torch.isfinite(out[0, [0, 2]]).all()


def test_a_temperature_past_the_dtypes_range_keeps_masked_tokens_masked():
    """1e39 is inf in float32, and -inf / inf = NaN crashed sample_next. Oracle: the limit, a
    uniform choice among the unmasked tokens."""
    logits = torch.tensor([[0.0, float("-inf"), 1.0, 3.0]])
    probs = F.softmax(filter_logits(logits, temperature=1e39), dim=1)
    torch.testing.assert_close(probs, torch.tensor([[1 / 3, 0.0, 1 / 3, 1 / 3]]))
    tokens = sample_next(logits.expand(300, 4), temperature=1e39,
                         generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) == {0, 2, 3}


@pytest.mark.parametrize("dtype, span", [(torch.float16, 6e4), (torch.bfloat16, 3e38),
                                         (torch.float32, 3e38)])
@pytest.mark.parametrize("temperature", [1e39, 1e300, 1e-30])
def test_logits_that_span_more_than_the_dtypes_range(dtype, span, temperature):
    """Shifting logits -span..span by their maximum overflowed to -inf in the logits' dtype, and
    -inf / inf (a temperature past that range) gave NaN. Oracle: the same logits in float64, at
    the tolerance of the dtype's rounding."""
    logits64 = torch.tensor([[-span, 0.0, span, float("-inf")], [-span, span / 2, 0.0, span]],
                            dtype=torch.float64)
    out = filter_logits(logits64.to(dtype), temperature=temperature)
    assert out.dtype == dtype and not out.isnan().any()
    expected = F.softmax(logits64.to(dtype).double() / temperature, dim=1)
    torch.testing.assert_close(F.softmax(out.double(), dim=1), expected, atol=1e-2, rtol=0)


# --- sample_next --------------------------------------------------------------------------

def test_temperature_zero_is_argmax():
    logits = torch.randn(16, 11, generator=torch.Generator().manual_seed(4))
    tokens = sample_next(logits, temperature=0.0)
    assert tokens.dtype == torch.int64 and tokens.shape == (16,)
    assert tokens.tolist() == [max(range(11), key=row.__getitem__) for row in logits.tolist()]


@pytest.mark.parametrize("dtype, temperature", [(torch.float32, 1e-40), (torch.float64, 1e-310),
                                                 (torch.float16, 1e-4), (torch.float32, 1e-50),
                                                 (torch.float64, 5e-324)])
def test_a_tiny_temperature_tends_to_argmax(dtype, temperature):
    """logits / temperature overflowed to +inf, and the NaN probabilities crashed multinomial
    (in float16 already at 1e-4)."""
    logits = torch.tensor([[10.0, 9.0, -3.0], [0.5, -1.0, 2.0]], dtype=dtype)
    tokens = sample_next(logits, temperature=temperature,
                         generator=torch.Generator().manual_seed(0))
    assert tokens.tolist() == [0, 2]


def test_top_k_one_is_argmax():
    logits = torch.randn(200, 6, generator=torch.Generator().manual_seed(5))
    tokens = sample_next(logits, top_k=1, generator=torch.Generator().manual_seed(6))
    assert torch.equal(tokens, torch.argmax(logits, dim=1))


def test_seeded_generators_are_reproducible():
    logits = torch.zeros(100, 10)  # uniform: two different seeds agree on all 100 with p=1e-100

    def draw(seed):
        return sample_next(logits, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, None), (2.0, None, None),
                                                        (0.8, 3, None), (1.0, None, 0.7)])
def test_empirical_frequencies_match_probabilities(temperature, top_k, top_p):
    row = [1.0, 0.0, -1.0, 2.0, 0.5]
    draws = 20000
    tokens = sample_next(torch.tensor([row]).expand(draws, -1), temperature=temperature,
                         top_k=top_k, top_p=top_p, generator=torch.Generator().manual_seed(9))
    # The distribution the draws should follow, computed here from the definitions.
    scaled = [x / temperature for x in row]
    if top_k is not None:
        kept = sorted(range(len(row)), key=lambda i: scaled[i], reverse=True)[:top_k]
        scaled = [s if i in kept else float("-inf") for i, s in enumerate(scaled)]
    if top_p is not None:
        kept = nucleus_brute_force(scaled, top_p)
        scaled = [s if i in kept else float("-inf") for i, s in enumerate(scaled)]
    probs = softmax_list(scaled)
    counts = torch.bincount(tokens, minlength=len(row)).tolist()
    for count, p in zip(counts, probs):
        sigma = math.sqrt(p * (1 - p) / draws)
        assert abs(count / draws - p) <= 4 * sigma + 1e-12, (counts, probs)


# --- beam_search --------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_beam_width_one_is_greedy(model):
    step, state, first_logits, batch_dim = model()
    hypotheses = beam_search(step, state, first_logits, beam_width=1, length=5,
                             state_batch_dim=batch_dim)
    tokens, log_prob, logits = [], 0.0, first_logits
    with torch.no_grad():
        for _ in range(5):
            token = int(torch.argmax(logits[0]))
            log_prob += torch.log_softmax(logits.double(), dim=1)[0, token].item()
            tokens.append(token)
            logits, state = step(torch.tensor([token]), state)
    assert len(hypotheses) == 1 and isinstance(hypotheses[0], BeamHypothesis)
    assert hypotheses[0].tokens == tokens
    assert hypotheses[0].log_prob == pytest.approx(log_prob, abs=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_wide_beam_equals_exhaustive_search(model):
    step, state, first_logits, batch_dim = model()
    hypotheses = beam_search(step, state, first_logits, beam_width=V ** LENGTH, length=LENGTH,
                             state_batch_dim=batch_dim)
    oracle = dict((tuple(t), lp) for t, lp in exhaustive(step, state, first_logits, LENGTH))
    best = max(oracle, key=oracle.get)
    assert hypotheses[0].tokens == list(best)
    assert hypotheses[0].log_prob == pytest.approx(oracle[best], abs=1e-5)
    # With the beam this wide nothing is pruned: every sequence comes back with its log-prob.
    assert len(hypotheses) == len(oracle)
    for h in hypotheses:
        assert h.log_prob == pytest.approx(oracle[tuple(h.tokens)], abs=1e-5)
    scores = [h.log_prob for h in hypotheses]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
@pytest.mark.parametrize("model", MODELS)
def test_wide_beam_with_end_token_equals_exhaustive_search(model, length_penalty):
    step, state, first_logits, batch_dim = model()
    end = 2
    hypotheses = beam_search(step, state, first_logits, beam_width=V ** LENGTH, length=LENGTH,
                             state_batch_dim=batch_dim, end_token=end,
                             length_penalty=length_penalty)
    oracle = exhaustive(step, state, first_logits, LENGTH, end_token=end)
    oracle.sort(key=lambda r: penalized(r[1], len(r[0]), length_penalty), reverse=True)
    assert len(hypotheses) == len(oracle) == 1 + (V - 1) + (V - 1) ** 2 * V
    assert hypotheses[0].tokens == oracle[0][0]
    assert hypotheses[0].log_prob == pytest.approx(oracle[0][1], abs=1e-5)
    expected = {tuple(t): lp for t, lp in oracle}
    for h in hypotheses:
        assert h.log_prob == pytest.approx(expected[tuple(h.tokens)], abs=1e-5)
        assert end not in h.tokens[:-1]  # a hypothesis is never expanded past end_token
    scores = [penalized(h.log_prob, len(h.tokens), length_penalty) for h in hypotheses]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("length_penalty", [0.0, 0.5, 2.0])
def test_narrow_beam_is_sorted_and_no_better_than_exhaustive(length_penalty):
    step, state, first_logits, batch_dim = gru_cell_model(seed=3)
    hypotheses = beam_search(step, state, first_logits, beam_width=3, length=LENGTH,
                             end_token=0, length_penalty=length_penalty)
    scores = [penalized(h.log_prob, len(h.tokens), length_penalty) for h in hypotheses]
    assert len(hypotheses) == 3 and scores == sorted(scores, reverse=True)
    oracle = exhaustive(step, state, first_logits, LENGTH, end_token=0)
    best = max(penalized(lp, len(t), length_penalty) for t, lp in oracle)
    assert scores[0] <= best + 1e-9


def test_the_early_stop_keeps_a_live_beam_whose_length_penalty_can_still_win():
    """With length_penalty = 1 a long sequence's average log-probability can beat a short
    finished one: the early stop must bound a live beam by its best reachable length, not its
    next one. Analytic oracle: ending at once scores log 0.9 = -0.105; going on, each further
    step costs log(sigmoid(30)) ~ -1e-13, so 30 tokens score (log 0.1) / 30 = -0.077."""
    first = torch.tensor([[0.9, 0.1]]).log()  # token 0 ends

    def step(tokens, state):  # every later step: go on (token 1), almost surely
        return torch.tensor([[-30.0, 0.0]]).expand(len(tokens), 2).clone(), state

    best = beam_search(step, torch.zeros(1, 1), first, beam_width=1, length=30, end_token=0,
                       length_penalty=1.0)[0]
    assert best.tokens == [1] * 30
    going_on = math.log(0.1) + 29 * F.logsigmoid(torch.tensor(30.0, dtype=torch.float64)).item()
    assert best.log_prob == pytest.approx(going_on, abs=1e-6)  # first_logits are float32
    assert best.log_prob / 30 > math.log(0.9)


def test_end_token_stops_the_search_early():
    end = 0
    calls = []

    def step(tokens, h):  # a "model" that always strongly prefers ending, then token 1
        calls.append(tokens.tolist())
        return torch.tensor([[20.0, 5.0, 0.0, 0.0]]).expand(len(tokens), -1), h

    first_logits = torch.tensor([[20.0, 5.0, 0.0, 0.0]])
    hypotheses = beam_search(step, torch.zeros(1, 2), first_logits, beam_width=2, length=10,
                             end_token=end)
    log_p = torch.log_softmax(first_logits.double(), dim=1)[0].tolist()
    # Ending now beats everything and [1, end] comes next; after one step every live sequence
    # is already ~15 nats below [1, end] and can only fall, so the search stops after one call.
    assert [h.tokens for h in hypotheses] == [[end], [1, end]]
    assert hypotheses[0].log_prob == pytest.approx(log_p[end])
    assert hypotheses[1].log_prob == pytest.approx(log_p[1] + log_p[end])
    assert len(calls) == 1


# --- errors -------------------------------------------------------------------------------

def _ok_logits():
    return torch.zeros(2, 4)


@pytest.mark.parametrize("call, match", [
    (lambda: sample_next(_ok_logits(), temperature=-0.5), r"temperature must be finite and >= 0"),
    # inf was blamed on filter_logits, which sample_next calls
    (lambda: sample_next(_ok_logits(), temperature=float("inf")),
     r"temperature must be finite and >= 0 \(0 = greedy\); got inf"),
    # bools and options greedy decoding ignores were never checked
    (lambda: sample_next(_ok_logits(), top_k=True), r"top_k must be an integer >= 1"),
    # a float k was a bare TypeError from operator.index, naming no option
    (lambda: sample_next(_ok_logits(), top_k=2.0), r"top_k must be an integer >= 1 .*got 2.0"),
    (lambda: filter_logits(_ok_logits(), top_k=True), r"top_k must be an integer >= 1"),
    (lambda: sample_next(_ok_logits(), temperature=0, top_p=5), r"top_p must be in \(0, 1\]"),
    (lambda: sample_next(_ok_logits(), temperature=0, top_k=-3), r"top_k must be an integer"),
    (lambda: filter_logits(_ok_logits(), temperature=0.0), r"temperature must be .*> 0"),
    (lambda: filter_logits(_ok_logits(), temperature=-1.0), r"temperature must be .*>= 0"),
    # a bool was taken as 1 (top_k and top_p refused theirs); a string or None raised
    # TypeError from the comparison, naming no option
    (lambda: sample_next(_ok_logits(), temperature=True), r"temperature must be .*got True"),
    (lambda: sample_next(_ok_logits(), temperature="1"), r"temperature must be .*got '1'"),
    (lambda: filter_logits(_ok_logits(), temperature=None), r"temperature must be .*got None"),
    (lambda: sample_next(_ok_logits(), top_p="0.5"), r"top_p must be in \(0, 1\]; got '0.5'"),
    # a tensor was shown as "got tensor(0.5000)", as if its value were wrong (probe, 2026-12-08)
    (lambda: sample_next(_ok_logits(), temperature=torch.tensor(0.5)),
     r"temperature must be a Python number; got a tensor \(pass temperature.item\(\)\)"),
    (lambda: sample_next(_ok_logits(), top_p=torch.tensor(0.5)),
     r"top_p must be a Python number; got a tensor \(pass top_p.item\(\)\)"),
    (lambda: filter_logits(_ok_logits(), top_k=0), r"top_k must be an integer >= 1"),
    (lambda: sample_next(_ok_logits(), top_k=-3), r"top_k must be an integer >= 1"),
    (lambda: filter_logits(_ok_logits(), top_p=0.0), r"top_p must be in \(0, 1\]; got 0.0"),
    (lambda: sample_next(_ok_logits(), top_p=1.5), r"top_p must be in \(0, 1\]; got 1.5"),
    (lambda: sample_next(torch.tensor([[0.0, float("nan")]])), r"NaN"),
    (lambda: filter_logits(torch.tensor([[float("nan"), 1.0]])), r"NaN"),
    (lambda: sample_next(torch.tensor([[0.0, float("inf")]])), r"\+inf"),
    (lambda: sample_next(torch.full((1, 3), float("-inf"))), r"all -inf"),
    (lambda: sample_next(torch.zeros(4)), r"logits must be 2-D \(B, V\)"),
    (lambda: filter_logits(torch.zeros(2, 3, 4)), r"logits must be 2-D \(B, V\)"),
])
def test_sampling_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_integer_logits_are_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        sample_next(torch.zeros(2, 3, dtype=torch.int64))


def _beam(**overrides):
    step, state, first_logits, batch_dim = gru_cell_model()
    kwargs = dict(beam_width=2, length=2, state_batch_dim=batch_dim)
    kwargs.update(overrides)
    step = kwargs.pop("step", step)
    return beam_search(step, kwargs.pop("state", state), kwargs.pop("first_logits", first_logits),
                       **kwargs)


@pytest.mark.parametrize("overrides, match", [
    (dict(beam_width=0), r"beam_width must be an integer >= 1; got 0"),
    (dict(beam_width=True), r"beam_width must be an integer >= 1; got True"),
    (dict(beam_width=2.0), r"beam_width must be an integer >= 1; got 2.0"),  # was a TypeError
    (dict(length=False), r"length must be an integer >= 1; got False"),
    (dict(length=0), r"length must be an integer >= 1; got 0"),
    (dict(first_logits=torch.zeros(2, V)), r"first_logits must be 2-D \(1, V\)"),
    (dict(first_logits=torch.zeros(V)), r"first_logits must be 2-D \(1, V\)"),
    (dict(first_logits=torch.tensor([[0.0, float("nan"), 0.0, 0.0]])), r"NaN"),
    (dict(end_token=V), r"end_token must be an integer token id in \[0, 4\); got 4"),
    # True was searched as token 1 and returned as tokens=[True]; 1.5 was an IndexError
    (dict(end_token=True), r"end_token must be an integer token id in \[0, 4\); got True"),
    (dict(end_token=1.5), r"end_token must be an integer token id in \[0, 4\); got 1.5"),
    (dict(length_penalty=float("nan")), r"length_penalty must be a finite number; got nan"),
    (dict(state=torch.zeros(2, 1, 6)), r"batch size 1 along state_batch_dim=0"),
    (dict(step=lambda tokens, h: (torch.zeros(len(tokens), 1, V), h)), r"step's logits"),
    (dict(step=lambda tokens, h: (torch.zeros(len(tokens), V + 1), h)), r"V=4 columns"),
])
def test_beam_search_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        _beam(**overrides)


def test_beam_search_names_a_text_penalty_and_a_step_that_returns_no_pair():
    """"must be real number, not str" without the parameter's name, and a step returning bare
    logits unpacked along their rows (probe, 2026-12-08). Oracle: the search with a number and
    a step returning (logits, state) runs."""
    assert _beam(length_penalty=1.0)
    with pytest.raises(ValueError, match=r"length_penalty must be a finite number; got '1'"):
        _beam(length_penalty="1")
    step, _, _, _ = gru_cell_model()
    with pytest.raises(TypeError, match=r"step must return the pair \(logits \(L, V\), state\); "
                                        r"got a tensor of shape"):
        _beam(step=lambda tokens, h: step(tokens, h)[0])
    # a list of the two is the pair too (review, 2026-12-08)
    assert _beam(step=lambda tokens, h: list(step(tokens, h))) == _beam()


def test_beam_search_rejects_non_tensor_state():
    with pytest.raises(TypeError, match="state must be a tensor"):
        _beam(state="hidden")
