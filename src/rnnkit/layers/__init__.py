"""Layers: run cells over sequences (one direction, both directions, stacked) and the presets."""

from .bidirectional import MERGE_MODES, Bidirectional, BidirectionalState
from .masking import normalize_lengths
from .presets import GRU, LSTM, RNN
from .recurrent import Recurrent
from .stacked import Stacked

__all__ = [
    "Bidirectional", "BidirectionalState", "MERGE_MODES", "GRU", "LSTM", "RNN", "Recurrent",
    "Stacked", "normalize_lengths",
]
