"""rnnkit: recurrent neural networks on PyTorch.

Drop-in ``RNN``/``LSTM``/``GRU`` (and cells) for torch.nn, composable layers (``Recurrent``,
``Bidirectional``, ``Stacked``), and one entry point to run a cell over time, :func:`scan`.
"""

from .backends import scan, select_backend
from .cells import (
    ElmanState, GRUCell, GRUState, LSTMCell, LSTMState, RecurrentCell, RNNCell,
)
from .layers import GRU, LSTM, RNN, Bidirectional, BidirectionalState, Recurrent, Stacked

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RecurrentCell",
    "ElmanState", "LSTMState", "GRUState", "Recurrent", "Bidirectional", "BidirectionalState",
    "Stacked", "scan", "select_backend", "__version__",
]
