"""The character language model: embedding -> recurrent stack -> linear head.

    e_t = E[x_t]                    (B, T) ids -> (B, T, E)
    h_t = RNN(e_t, h_{t-1})         rnnkit.LSTM / GRU / RNN, L layers, (B, T, H)
    logits_t = W dropout(h_t) + b   (B, T, V), next-character scores

``implementation="torch"`` swaps in torch.nn's layer of the same cell, everything else equal,
which is how the benchmark compares the two on the same task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import rnnkit
from rnnkit.layers.dropout import Dropout
from rnnkit.training.config import check_model_sizes

_LAYERS = {
    "rnnkit": {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN},
    "torch": {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN},
}


@dataclass
class ModelConfig:
    cell: str = "lstm"  #: "lstm", "gru" or "rnn" (Elman, tanh)
    embedding_dim: int = 64
    hidden_size: int = 512
    layers: int = 2
    dropout: float = 0.3  #: between layers and before the head (see docs/decisions/lm-defaults.md)
    tie_weights: bool = False  #: share the embedding and head matrix (needs embedding_dim == hidden_size)
    implementation: str = "rnnkit"  #: "rnnkit" or "torch" (torch.nn's layer, for comparison)


class CharLanguageModel(nn.Module):
    """Next-character model over a vocabulary of ``vocab_size`` symbols.

    forward(tokens (B, T) int64, state=None) -> (logits (B, T, V), state), where ``state`` is the
    recurrent layer's torch-style state (``(h, c)`` of shape (L, B, H) for an LSTM, ``h`` else).
    """

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        if config.implementation not in _LAYERS:
            raise ValueError(f"model.implementation must be one of {tuple(_LAYERS)}; got "
                             f"{config.implementation!r}")
        if config.cell not in _LAYERS["rnnkit"]:
            raise ValueError(f"model.cell must be one of {tuple(_LAYERS['rnnkit'])}; got "
                             f"{config.cell!r}")
        check_model_sizes(config, widths=("embedding_dim", "hidden_size"), counts=("layers",))
        if not 0.0 <= config.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1); got {config.dropout}")
        if config.tie_weights and config.embedding_dim != config.hidden_size:
            raise ValueError(f"model.tie_weights needs embedding_dim == hidden_size; got "
                             f"{config.embedding_dim} and {config.hidden_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        layer = _LAYERS[config.implementation][config.cell]
        self.rnn = layer(config.embedding_dim, config.hidden_size, num_layers=config.layers,
                         dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)
        if config.implementation == "rnnkit":
            # The preset draws torch.nn's masks for seed parity; rnnkit's draw the same law in
            # a third of the time (8 of the ~165 ms bfloat16 step of the default model).
            self.rnn.stack.torch_masks = False
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)
        if config.tie_weights:
            self.head.weight = self.embedding.weight

    def streaming_parts(self) -> dict:
        """The model as embedding -> rnn -> head, for rnnkit.runtime.StreamingSession and export."""
        return {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}

    def forward(self, tokens: torch.Tensor, state=None):
        output, state = self.rnn(self.embedding(tokens), state)
        return self.head(self.dropout(output)), state
