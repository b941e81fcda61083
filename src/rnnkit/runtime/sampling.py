"""Choosing tokens from a model's logits: filtering, sampling and beam search over a state.

Shapes use B for the batch, V for the vocabulary and K for the beam width. Logits are always
2-D (B, V); a model that returns (B, 1, V) or (V,) should be reshaped by the caller.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from ..errors import check_floating, describe


def _check_logits(name: str, logits: Tensor, rows: int | None = None) -> None:
    """``logits`` must be a floating (B, V) tensor (B == ``rows`` if given) that softmax can use."""
    check_floating(name, logits)
    if logits.dim() != 2 or logits.size(1) == 0 or (rows is not None and logits.size(0) != rows):
        expected = "(B, V)" if rows is None else f"({rows}, V)"
        raise ValueError(f"{name} must be 2-D {expected} with V >= 1; got shape {describe(logits)} "
                         f"(reshape it, e.g. logits[:, -1] for (B, T, V) outputs)")
    if torch.isnan(logits).any():
        raise ValueError(f"{name} contain NaN; the model produced non-finite outputs: check its "
                         f"weights and inputs, and mask tokens with -inf rather than NaN")
    if torch.isposinf(logits).any():
        raise ValueError(f"{name} contain +inf, which softmax turns into NaN; clamp them "
                         f"(e.g. logits.clamp(max=1e4)) or mask tokens with -inf instead")
    if logits.numel() and torch.isneginf(logits).all(dim=1).any():
        raise ValueError(f"{name} have a row that is all -inf, so no token can be chosen; "
                         f"leave at least one token unmasked in every row")


def whole_number(value: Any) -> int | None:
    """``value`` as an int if it is an integer (NumPy's too), else None (a bool, 2.0, "2")."""
    if isinstance(value, bool):  # operator.index takes True as 1
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_sampling_options(*, temperature: float, top_k: int | None = None,
                           top_p: float | None = None) -> None:
    """Raise a one-line ValueError for a setting :func:`sample_next` would refuse: so that a
    caller can check before it starts (prints a prompt, reads a model) rather than at the
    first token. ``temperature`` 0 means greedy."""
    if isinstance(temperature, Tensor) or isinstance(top_p, Tensor):
        name = "temperature" if isinstance(temperature, Tensor) else "top_p"
        raise ValueError(f"{name} must be a Python number; got a tensor (pass {name}.item())")
    if not _real(temperature) or not (0 <= temperature < float("inf")):
        raise ValueError(f"temperature must be finite and >= 0 (0 = greedy); got "
                         f"{temperature!r}")
    if top_k is not None and (whole_number(top_k) is None or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None to keep every token); got "
                         f"{top_k!r}")
    if top_p is not None and (not _real(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1]; got {top_p!r}")


def _returned_kind(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {describe(value)}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return type(value).__name__


def _real(value: Any) -> bool:
    """Whether ``value`` is a real number (NumPy's too) and not a bool, which compares as 0/1."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def filter_logits(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> Tensor:
    """Scale (B, V) logits by ``1 / temperature`` and set tokens outside the top-k and nucleus
    to -inf; returns (B, V) logits of the same dtype.

    ``top_k`` keeps the k largest logits of each row (None, or k >= V, keeps all). ``top_p``
    then keeps the nucleus: the smallest set of most probable tokens whose cumulative
    probability reaches ``top_p`` (None or 1.0 keeps all; the most probable token always stays).
    Where a tiny temperature would overflow the scaled logits (to +inf, to -inf for a whole row,
    or to NaN when the temperature rounds to 0 in the logits' dtype), each row is first shifted
    so that its largest logit is 0, which changes no probability; that logit then stays 0.
    """
    _check_logits("logits", logits)
    check_sampling_options(temperature=temperature, top_k=top_k, top_p=top_p)
    if temperature == 0:
        raise ValueError(f"temperature must be finite and > 0 in filter_logits (use sample_next "
                         f"with temperature=0 for greedy decoding); got {temperature}")
    vocab = logits.size(1)
    out = logits / temperature
    # One reduction tells whether the division overflowed anywhere: a row's max is +inf (every
    # probability NaN), -inf (a whole row of negative half-precision logits), or NaN (the
    # temperature rounds to 0 in the logits' dtype, 0 / 0, or past its range, -inf / inf).
    if not torch.isfinite(out.amax(dim=1)).all():
        # Shifted so that each row's largest logit is 0 (no probability changes), the largest
        # stays 0 and the others go to -inf at worst: greedy, the limit. In float64, where
        # neither the shift of logits that span more than the dtype's range (fp16: 65504) nor
        # the temperature overflows (a float is a float64): -inf / inf would be NaN. A masked
        # token stays masked; with a temperature past the dtype's range the rest are uniform.
        wide = logits.double()
        shifted = wide - wide.amax(dim=1, keepdim=True)
        out = torch.where(shifted == 0, shifted, shifted / temperature).to(logits.dtype)
    if top_k is not None:
        if top_k < vocab:
            # Scatter from topk's indices, not a threshold on the k-th value: ties at the
            # threshold would otherwise keep more than k tokens.
            keep = torch.zeros_like(out, dtype=torch.bool)
            keep.scatter_(1, out.topk(top_k, dim=1).indices, True)
            out = out.masked_fill(~keep, float("-inf"))
    if top_p is not None:
        if top_p < 1:
            # In float64: at the boundary a float32 mass (or top_p rounded to float32: 0.99999999
            # is 1.0 there) kept one token too few or too many.
            probs, order = F.softmax(out.double(), dim=1).sort(dim=1, descending=True)
            # A token stays if the tokens ranked above it have not yet reached top_p. The
            # exclusive cumulative sum (the inclusive one shifted right, not cumsum - probs,
            # which rounds) is 0 for the first token, so it always stays.
            before = F.pad(probs.cumsum(dim=1)[:, :-1], (1, 0))
            keep = torch.zeros_like(out, dtype=torch.bool)
            keep.scatter_(1, order, before < top_p)
            out = out.masked_fill(~keep, float("-inf"))
    return out


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row of (B, V) logits; returns (B,) int64 token ids.

    ``temperature == 0`` is greedy decoding (argmax, ``top_k``/``top_p`` ignored); otherwise
    the token is sampled from ``softmax(filter_logits(...))`` with ``torch.multinomial``, so a
    seeded ``generator`` makes the draws reproducible.
    """
    _check_logits("logits", logits)
    # every option, also those greedy decoding ignores: a bad one is a mistake either way
    check_sampling_options(temperature=temperature, top_k=top_k, top_p=top_p)
    if temperature == 0:
        return logits.argmax(dim=1)
    # In at least float32 (half-precision softmax loses small probabilities), and shifted so
    # each row's largest logit is 0: softmax is unchanged, and a tiny temperature can no longer
    # overflow the division to +inf (NaN probabilities); it tends to greedy, as it should.
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logits = logits - logits.amax(dim=1, keepdim=True)
    filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    probs = F.softmax(filtered, dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class BeamHypothesis(NamedTuple):
    """One finished sequence from :func:`beam_search`."""

    tokens: list[int]  #: the generated tokens, without the prompt (ends with end_token if hit)
    log_prob: float  #: sum of the log-probabilities of ``tokens``


def _map_state(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to every tensor of a nested tuple/list/NamedTuple/dict state, keeping types."""
    if isinstance(state, Tensor):
        return fn(state)
    if state is None:
        return None
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # NamedTuple: positional fields
        return type(state)(*(_map_state(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return type(state)((k, _map_state(v, fn)) for k, v in state.items())
    raise TypeError(f"state must be a tensor or a nested tuple/list/NamedTuple/dict of tensors; "
                    f"got {type(state).__name__}")


def _check_prompt_state(tensor: Tensor, dim: int) -> Tensor:
    if not -tensor.dim() <= dim < tensor.dim() or tensor.size(dim) != 1:
        raise ValueError(f"every state tensor must have batch size 1 along state_batch_dim={dim}; "
                         f"got shape {describe(tensor)} (pass the state_batch_dim where the batch "
                         f"is, e.g. 1 for (layers, B, H) states)")
    return tensor


def _token_id(name: str, value: Any, vocab: int) -> int:
    """``value`` as an int in [0, vocab), or a one-line ValueError (bools and 1.5 included)."""
    token = whole_number(value)
    if token is None or not 0 <= token < vocab:
        raise ValueError(f"{name} must be an integer token id in [0, {vocab}); got {value!r}")
    return token


def _score(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / (length ** length_penalty)


def beam_search(step: Callable[[Tensor, Any], tuple[Tensor, Any]], state: Any,
                first_logits: Tensor, *, beam_width: int, length: int,
                state_batch_dim: int = 0, length_penalty: float = 0.0,
                end_token: int | None = None) -> list[BeamHypothesis]:
    """Search for the most probable continuations of a prompt, keeping ``beam_width`` live ones.

    ``state`` is the model state after the prompt (batch size 1 along ``state_batch_dim`` in
    every tensor of a tensor or nested tuple/list/NamedTuple) and ``first_logits`` (1, V) the
    logits for the first generated token. ``step(tokens, state)`` takes (L,) int64 tokens and a
    state with batch L (L <= K live beams) and returns ((L, V) logits, new state).

    Every step expands each live sequence by every token and keeps the K best by summed
    log-probability, reordering the state with ``index_select``. A sequence that emits
    ``end_token`` is finished and set aside; the search stops after ``length`` tokens, or once
    K finished sequences beat anything a live one could still reach. Returns up to K
    hypotheses, best first by ``log_prob / len(tokens) ** length_penalty``.
    """
    for name, value in (("beam_width", beam_width), ("length", length)):
        if whole_number(value) is None or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    # a NaN score leaves the hypotheses unordered; a text failed in math.isfinite unnamed
    if not _real(length_penalty) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number; got {length_penalty!r}")
    _check_logits("first_logits", first_logits, rows=1)
    vocab = first_logits.size(1)
    if end_token is not None:
        end_token = _token_id("end_token", end_token, vocab)
    with torch.no_grad():
        return _search(step, state, first_logits, beam_width, length, state_batch_dim,
                       length_penalty, end_token)


def _search(step: Callable[[Tensor, Any], tuple[Tensor, Any]], state: Any, first_logits: Tensor,
            beam_width: int, length: int, batch_dim: int, length_penalty: float,
            end_token: int | None) -> list[BeamHypothesis]:
    """The body of :func:`beam_search`, after its checks and under ``torch.no_grad()``."""
    vocab = first_logits.size(1)
    state = _map_state(state, lambda t: _check_prompt_state(t, batch_dim))
    finished: list[BeamHypothesis] = []

    def by_score(hypothesis: BeamHypothesis) -> float:
        return _score(hypothesis.log_prob, len(hypothesis.tokens), length_penalty)

    sequences: list[list[int]] = [[]]
    # Sums in float64 so that long searches do not reorder beams by rounding error.
    scores = torch.zeros(1, dtype=torch.float64, device=first_logits.device)
    log_probs = F.log_softmax(first_logits.double(), dim=1)
    for t in range(length):
        candidates = scores[:, None] + log_probs  # (L, V)
        if end_token is not None:
            # Sequences that end among the K best candidates are finished, as in common
            # practice; the live beams are then the K best that did not end.
            top = candidates.flatten().topk(min(beam_width, candidates.numel()))
            for value, index in zip(top.values.tolist(), top.indices.tolist()):
                if index % vocab == end_token and value > float("-inf"):
                    finished.append(BeamHypothesis(sequences[index // vocab] + [end_token],
                                                   value))
            finished = sorted(finished, key=by_score, reverse=True)[:beam_width]
            candidates[:, end_token] = float("-inf")
        flat = candidates.flatten()
        # Sequences of probability 0 (tokens masked with -inf) are not hypotheses.
        live = min(beam_width, int(torch.isfinite(flat).sum()))
        if live == 0:
            sequences = []
            break
        top = flat.topk(live)
        parents, tokens = top.indices // vocab, top.indices % vocab
        sequences = [sequences[p] + [k] for p, k in zip(parents.tolist(), tokens.tolist())]
        scores = top.values
        if t == length - 1:
            break
        if len(finished) == beam_width:
            # A live sum only falls from here and can end at any length in (t + 1, length],
            # so its best reachable score is at one end of that range.
            best = max(_score(scores[0].item(), n, length_penalty) for n in (t + 2, length))
            if by_score(finished[-1]) >= best:
                sequences = []
                break
        state = _map_state(state, lambda s: s.index_select(batch_dim, parents))
        returned = step(tokens, state)
        if not isinstance(returned, (tuple, list)) or len(returned) != 2:
            # a bare tensor of logits was unpacked along its rows: "too many values to unpack"
            raise TypeError(f"step must return the pair (logits (L, V), state); got "
                            f"{_returned_kind(returned)}")
        logits, state = returned
        _check_logits("step's logits", logits, rows=live)
        if logits.size(1) != vocab:
            raise ValueError(f"step's logits must have V={vocab} columns like first_logits; "
                             f"got shape {describe(logits)}")
        log_probs = F.log_softmax(logits.double(), dim=1)
    hypotheses = finished + [BeamHypothesis(s, v) for s, v in zip(sequences, scores.tolist())]
    return sorted(hypotheses, key=by_score, reverse=True)[:beam_width]
