"""rnnkit: recurrent neural networks on PyTorch.

Drop-in ``RNN``/``LSTM``/``GRU`` (and cells) for torch.nn, composable layers (``Recurrent``,
``Bidirectional``, ``Stacked``), and one entry point to run a cell over time, :func:`scan`.

The names below are imported on first use (PEP 562), not by ``import rnnkit``: the package
itself imports nothing heavy, so the ``rnnkit`` command can answer Ctrl-C and ``--help``
before torch has loaded. ``rnnkit.LSTM`` and ``from rnnkit import LSTM`` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    "scan": "backends", "select_backend": "backends",
    "ElmanState": "cells", "GRUCell": "cells", "GRUState": "cells", "LSTMCell": "cells",
    "LSTMState": "cells", "RecurrentCell": "cells", "RNNCell": "cells",
    "GRU": "layers", "LSTM": "layers", "RNN": "layers", "Bidirectional": "layers",
    "BidirectionalState": "layers", "Recurrent": "layers", "Stacked": "layers",
}
_SUBPACKAGES = {
    "backends", "cells", "cli", "data", "errors", "export", "interop", "layers", "runtime",
    "tasks", "training",
}

__all__ = [
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RecurrentCell",
    "ElmanState", "LSTMState", "GRUState", "Recurrent", "Bidirectional", "BidirectionalState",
    "Stacked", "scan", "select_backend", "__version__",
]

if TYPE_CHECKING:  # what static tools and IDEs see
    from .backends import scan, select_backend
    from .cells import (
        ElmanState, GRUCell, GRUState, LSTMCell, LSTMState, RecurrentCell, RNNCell,
    )
    from .layers import GRU, LSTM, RNN, Bidirectional, BidirectionalState, Recurrent, Stacked


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBPACKAGES)
