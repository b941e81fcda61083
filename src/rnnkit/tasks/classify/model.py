"""The sequence classifier: recurrent encoder over valid steps -> pooling -> linear head.

Shapes: B sequences, T padded steps, C input channels, H hidden size, D = 2 if bidirectional
else 1, K classes. ``lengths`` (B,) holds each sequence's number of valid steps ``n_b``; the
mask ``m_{b,t} = [t < n_b]``.

    o_{b,t} = RNN(x_b)_t                       (B, T, D*H); zero for t >= n_b (masked steps)
    last:      z_b = [h_fwd(b, n_b - 1) ; h_bwd(b, 0)]            each sequence's own final
               state (the backward direction ends at step 0 after reading n_b - 1 .. 0)
    mean:      z_b = sum_t m_{b,t} o_{b,t} / n_b
    max:       z_b = max_{t < n_b} o_{b,t}                          (per feature)
    attention: e_{b,t} = v^T tanh(W o_{b,t} + c),  a_{b,t} = softmax_t(e_{b,t} | m_{b,t}),
               z_b = sum_t a_{b,t} o_{b,t}                          (additive attention)
    logits_b = U dropout(z_b) + u                                   (B, K)

Padding never reaches the logits: the recurrent layer freezes each state after step n_b - 1
(and reverses each sequence within its length), and every pooling reads only masked steps.
``implementation="torch"`` runs torch.nn's layer of the same cell on a PackedSequence instead,
with the same state_dict, for comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.layers.dropout import Dropout
from rnnkit.training.config import check_model_sizes

_LAYERS = {
    "rnnkit": {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN},
    "torch": {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN},
}
POOLINGS = ("last", "mean", "max", "attention")


@dataclass
class ModelConfig:
    cell: str = "gru"  #: "gru", "lstm" or "rnn" (Elman, tanh)
    hidden_size: int = 128  #: H per direction
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.5  #: between stacked layers and on the pooled features before the head
    pooling: str = "mean"  #: "last", "mean", "max" or "attention"
    attention_size: int = 64  #: width of the additive attention's hidden layer
    implementation: str = "rnnkit"  #: "rnnkit" or "torch" (torch.nn's layer, for comparison)

    def check(self) -> None:
        for name, allowed in (("implementation", tuple(_LAYERS)),
                              ("cell", tuple(_LAYERS["rnnkit"])), ("pooling", POOLINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.{name} must be one of {allowed}; got "
                                 f"{getattr(self, name)!r}")
        check_model_sizes(self, widths=("hidden_size", "attention_size"), counts=("layers",))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1); got {self.dropout}")


def valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) bool, True at the valid steps ``t < lengths[b]``."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


class SequenceClassifier(nn.Module):
    """forward(x (B, T, C) float, lengths (B,) int64) -> logits (B, K); see the module doc."""

    def __init__(self, input_size: int, num_classes: int, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        if input_size < 1 or num_classes < 2:
            raise ValueError(f"a classifier needs >= 1 input channel and >= 2 classes; got "
                             f"{input_size} and {num_classes}")
        self.config = config
        self.input_size, self.num_classes = input_size, num_classes
        layer = _LAYERS[config.implementation][config.cell]
        self.rnn = layer(input_size, config.hidden_size, num_layers=config.layers,
                         dropout=config.dropout if config.layers > 1 else 0.0,
                         bidirectional=config.bidirectional, batch_first=True)
        features = (2 if config.bidirectional else 1) * config.hidden_size
        if config.pooling == "attention":
            self.attention = nn.Sequential(nn.Linear(features, config.attention_size), nn.Tanh(),
                                           nn.Linear(config.attention_size, 1, bias=False))
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(features, num_classes)

    def streaming_parts(self) -> dict:
        """The model as rnn -> head over each step's output, for streaming and export.

        Only a unidirectional model with pooling="last" is one: its logits after step t are the
        class scores of the sequence so far. Other poolings need the whole sequence.
        """
        from rnnkit.runtime import UnsupportedModelError

        if self.config.bidirectional or self.config.pooling != "last":
            raise UnsupportedModelError(
                f"this classifier (bidirectional={self.config.bidirectional}, pooling="
                f"{self.config.pooling!r}) needs whole sequences; only a unidirectional model "
                f"with pooling='last' runs step by step (train with --no-bidirectional "
                f"--pooling last)")
        return {"rnn": self.rnn, "head": self.head}

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor):
        """Outputs (B, T, D*H), zero past each length, and h_n (L*D, B, H)."""
        if self.config.implementation == "rnnkit":
            output, state = self.rnn(x, lengths=lengths)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            output, state = self.rnn(packed)
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.size(1))
        return output, state[0] if isinstance(state, tuple) else state

    def pool(self, output: torch.Tensor, h_n: torch.Tensor, lengths: torch.Tensor):
        """Pooled features (B, D*H) from the outputs (B, T, D*H) and h_n (L*D, B, H)."""
        pooling = self.config.pooling
        if pooling == "last":
            directions = 2 if self.config.bidirectional else 1
            return torch.cat(list(h_n[-directions:]), dim=-1)  # last layer, fwd then bwd
        mask = valid_mask(lengths, output.size(1)).unsqueeze(-1)  # (B, T, 1)
        if pooling == "mean":
            return (output * mask).sum(dim=1) / lengths.to(output.dtype)[:, None]
        if pooling == "max":
            return output.masked_fill(~mask, float("-inf")).amax(dim=1)
        scores = self.attention(output).masked_fill(~mask, float("-inf"))  # (B, T, 1)
        weights = torch.softmax(scores, dim=1)
        return (weights * output).sum(dim=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ValueError(f"x must have shape (B, T, {self.input_size}); got "
                             f"{tuple(x.shape)}")
        if lengths.shape != (x.size(0),):
            raise ValueError(f"lengths must have shape ({x.size(0)},), one per sequence; got "
                             f"{tuple(lengths.shape)}")
        lengths = lengths.to(device=x.device, dtype=torch.int64)
        output, h_n = self._encode(x, lengths)
        return self.head(self.dropout(self.pool(output, h_n, lengths)))
