"""Cells: one module per family, each with its pure step function, state type and parameters."""

from .base import RecurrentCell, cell_class
from .elman import ElmanState, RNNCell, elman_step
from .gru import GRUCell, GRUState, gru_step
from .lstm import LSTMCell, LSTMState, lstm_step

__all__ = [
    "RecurrentCell", "cell_class",
    "ElmanState", "RNNCell", "elman_step",
    "GRUCell", "GRUState", "gru_step",
    "LSTMCell", "LSTMState", "lstm_step",
]
