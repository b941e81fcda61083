"""``Stacked``: deep recurrent networks, layer l's output feeding layer l+1."""

from __future__ import annotations

import numbers
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..cells.base import RecurrentCell
from ..errors import check_flag
from .autocast import recurrence_outside_autocast
from .bidirectional import Bidirectional
from .checks import check_layer_call, name_mismatched_parameters
from .dropout import dropout as rnnkit_dropout
from .masking import valid_steps
from .recurrent import Recurrent


class Stacked(nn.Module):
    """A stack of Recurrent or Bidirectional layers.

    ``x_{l+1} = layer_l(dropout(x_l))``, with dropout applied between layers only (not to the
    stack's input or output) and only in training, as torch.nn. With ``residual=True`` every layer
    after the first adds its input to its output, ``x_{l+1} = layer_l(dropout(x_l)) + x_l``
    (Wu et al. 2016), which needs equal input and output widths there.

    The dropout masks are drawn by :func:`rnnkit.layers.dropout.dropout` (torch's Bernoulli
    distribution at about a third of ``bernoulli_``'s cost on CPU). ``torch_masks=True`` draws
    them with ``F.dropout`` instead, the op and order of torch.nn's stacked layers, so that a
    seeded training-mode call reproduces torch.nn's exactly (except with a PackedSequence,
    whose masks torch.nn draws over the packed rows only); the drop-in presets (``rnnkit.LSTM``
    etc.) set it. The flag is a plain attribute and may be changed later.

    forward(x, states=None, *, lengths=None) -> (output, list of per-layer final states)
    """

    def __init__(self, layers: Sequence[nn.Module], *, dropout: float = 0.0, residual: bool = False,
                 torch_masks: bool = False):
        super().__init__()
        if isinstance(layers, nn.Module) and not hasattr(layers, "__iter__"):
            # one layer: "'Recurrent' object is not iterable"
            raise TypeError(f"layers must be a list of layers; got one {type(layers).__name__} "
                            f"(pass [layer])")
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one Recurrent or Bidirectional layer; got 0")
        _check_dropout(dropout)
        check_flag("residual", residual)
        check_flag("torch_masks", torch_masks)
        for index, layer in enumerate(layers):
            if not isinstance(layer, (Recurrent, Bidirectional)):
                hint = (" (wrap a cell in rnnkit.Recurrent)" if isinstance(layer, RecurrentCell)
                        else "")
                raise TypeError(f"layers[{index}] must be a Recurrent or Bidirectional layer; "
                                f"got {type(layer).__name__}{hint}")
        for index in range(1, len(layers)):
            below, above = layers[index - 1], layers[index]
            if above.input_size != below.output_size:
                raise ValueError(
                    f"layer {index} takes input_size={above.input_size} but layer {index - 1} "
                    f"outputs {below.output_size}"
                )
            if residual and above.input_size != above.output_size:
                raise ValueError(
                    f"residual=True needs layer {index} to keep its width; it maps "
                    f"{above.input_size} -> {above.output_size}"
                )
            if above.batch_first != layers[0].batch_first:
                raise ValueError("all layers of a Stacked must agree on batch_first")
        self.layers = nn.ModuleList(layers)
        self._dropout = float(dropout)
        self.residual = bool(residual)
        self.torch_masks = bool(torch_masks)

    # torch.nn code changes dropout after construction (off for fine-tuning): checked here as
    # in the constructor, since -0.5 turned dropout off and "x" failed in float()
    @property
    def dropout(self) -> float:
        """Probability of zeroing each input of layers 1..L-1 in training."""
        return self._dropout

    @dropout.setter
    def dropout(self, value: float) -> None:
        _check_dropout(value)
        self._dropout = float(value)

    def __setstate__(self, state: dict) -> None:
        # a Stacked pickled before dropout became a property kept it under its plain name
        if "dropout" in state and "_dropout" not in state:
            state = dict(state)
            state["_dropout"] = state.pop("dropout")
        super().__setstate__(state)

    @property
    def batch_first(self) -> bool:
        return self.layers[0].batch_first

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    def _first_cell(self):
        # Through _modules: ModuleList indexing and hasattr on a Module cost ~6 us per call,
        # which shows in a batch-1 forward of ~100 us.
        layer = next(iter(self._modules["layers"]._modules.values()))
        modules = layer._modules
        return modules["cell"] if "cell" in modules else layer.forward_layer.cell

    @name_mismatched_parameters
    @recurrence_outside_autocast
    def forward(self, x: torch.Tensor, states=None, *, lengths=None):
        lengths = check_layer_call(x, self.input_size, self._first_cell().weight_ih,
                                   self.batch_first, lengths)
        if states is not None:
            if not isinstance(states, (list, tuple)) or len(states) != len(self.layers):
                raise ValueError(
                    f"states must be a list with one state per layer ({len(self.layers)}); "
                    f"got {type(states).__name__} of length {len(states)}"
                    if isinstance(states, (list, tuple)) else
                    f"states must be a list with one state per layer; got {type(states).__name__}"
                )
            states = [layer.check_state(s, x, f"states[{i}]")
                      for i, (layer, s) in enumerate(zip(self.layers, states))]
        return self._forward(x, states, lengths)

    def _forward(self, x: torch.Tensor, states, lengths):
        # Outputs past each sequence's end must stay zero, so the skip path is masked there too.
        skip_mask = None
        if self.residual and lengths is not None and len(self.layers) > 1:
            skip_mask = valid_steps(lengths, x.size(1 if self.batch_first else 0), self.batch_first)
            skip_mask = skip_mask.unsqueeze(-1).to(x.dtype)
        finals = []
        for index, layer in enumerate(self._modules["layers"]):
            layer_input = x
            if index > 0 and self.dropout > 0.0 and self.training:
                if not self.torch_masks:
                    layer_input = rnnkit_dropout(x, self.dropout, training=True)
                elif self.batch_first:
                    # torch.nn draws the mask over time-major memory; a bidirectional layer's
                    # batch-first output is batch-major in memory, so draw on a time-major copy
                    layer_input = F.dropout(x.transpose(0, 1).contiguous(), self.dropout,
                                            training=True).transpose(0, 1)
                else:
                    layer_input = F.dropout(x, self.dropout, training=True)
            output, final = layer._forward(layer_input, None if states is None else states[index],
                                           lengths)
            if self.residual and index > 0:
                x = output + (x if skip_mask is None else x * skip_mask)
            else:
                x = output
            finals.append(final)
        return x, finals

    def extra_repr(self) -> str:
        parts = []
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.residual:
            parts.append("residual=True")
        return ", ".join(parts)


def _check_dropout(value) -> None:
    """Any real number in [0, 1], as torch.nn takes (np.float32 from a config); a ValueError
    either way, as torch.nn's."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not 0.0 <= value <= 1.0):
        raise ValueError(f"dropout must be a number in [0, 1]; got {value!r}")
