"""runtime: running trained recurrent models step by step: sampling and beam search over state;
the streaming session will live here too. :func:`filter_logits` applies temperature, top-k and
nucleus (top-p) filtering to (B, V) logits, :func:`sample_next` draws (or, at temperature 0,
picks greedily) the next token of each row, and :func:`beam_search` keeps the most probable
continuations of a prompt by stepping a model's recurrent state, returning
:class:`BeamHypothesis` tuples best first.
"""

from .sampling import BeamHypothesis, beam_search, filter_logits, sample_next

__all__ = ["BeamHypothesis", "beam_search", "filter_logits", "sample_next"]
