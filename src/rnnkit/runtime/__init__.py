"""runtime: running trained recurrent models step by step.

:class:`StreamingSession` advances a model one step at a time for many independent streams
(per-stream state, save/restore), from a :class:`StreamingGraph` built by
:func:`streaming_graph`, the one description every deployment path reads.

:func:`filter_logits` applies temperature, top-k and nucleus (top-p) filtering to (B, V) logits,
:func:`sample_next` draws (or, at temperature 0, picks greedily) the next token of each row, and
:func:`beam_search` keeps the most probable continuations of a prompt by stepping a model's
recurrent state, returning :class:`BeamHypothesis` tuples best first.
"""

from .graph import StreamingGraph, UnsupportedModelError, streaming_graph
from .sampling import BeamHypothesis, beam_search, filter_logits, sample_next
from .session import StreamingSession

__all__ = ["BeamHypothesis", "StreamingGraph", "StreamingSession", "UnsupportedModelError",
           "beam_search", "filter_logits", "sample_next", "streaming_graph"]
