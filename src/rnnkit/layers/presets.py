"""``rnnkit.RNN``, ``rnnkit.LSTM``, ``rnnkit.GRU``: drop-in replacements for torch.nn.

Same constructor arguments, same ``forward(input, hx)`` contract (tensor or PackedSequence,
batched or unbatched), same output shapes and the same ``state_dict`` keys and gate order, so
``rnnkit.LSTM(...).load_state_dict(torch.nn.LSTM(...).state_dict())`` computes the same function.
Extras: ``backend=`` in the constructor and ``lengths=`` in forward.

Inside, a preset is a :class:`Stacked` of :class:`Recurrent` or :class:`Bidirectional` layers.
Shapes use L (num_layers), D (2 if bidirectional else 1), B, T, I, H (hidden_size) and
H_out (proj_size or H).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..backends import check_backend_name
from ..cells import GRUCell, LSTMCell, RNNCell
from ..cells.base import check_state_tensor
from ..errors import check_flag, check_switch, checked_size, describe_container
from ..interop.torch_nn import torch_name_pairs
from .autocast import recurrence_outside_autocast
from .bidirectional import Bidirectional, BidirectionalState
from .checks import check_sequence_input, name_mismatched_parameters
from .masking import normalize_lengths, repack, unpack
from .recurrent import Recurrent
from .stacked import Stacked


class _TorchStyleRNN(nn.Module):
    """Shared body of the presets; subclasses fix the cell and the constructor signature."""

    mode: str

    def _build(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
               bidirectional, proj_size, device, dtype, backend, make_cell) -> None:
        # any integer type, stored as int (np.int64 from a shape; see checked_size)
        input_size = checked_size("input_size", input_size)
        hidden_size = checked_size("hidden_size", hidden_size)
        num_layers = checked_size("num_layers", num_layers)
        proj_size = checked_size("proj_size", proj_size, minimum=0)
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError(f"dropout must be a number in [0, 1]; got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} has no effect with num_layers=1: dropout is applied between "
                f"stacked layers only", stacklevel=3,
            )
        # as torch.nn's layers check them (bidirectional, unchecked there, may be 0 or 1)
        check_flag("bias", bias)
        check_flag("batch_first", batch_first)
        check_switch("bidirectional", bidirectional)
        check_backend_name(backend)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        # batch_first, dropout and backend live on the layers (see the properties below).
        directions = 2 if bidirectional else 1
        output_size = proj_size or hidden_size
        factory = {"device": device, "dtype": dtype}
        layers = []
        for index in range(num_layers):
            layer_input = input_size if index == 0 else directions * output_size
            if bidirectional:
                layers.append(Bidirectional(
                    make_cell(layer_input, **factory), make_cell(layer_input, **factory),
                    batch_first=batch_first, backend=backend,
                ))
            else:
                layers.append(Recurrent(make_cell(layer_input, **factory),
                                        batch_first=batch_first, backend=backend))
        # torch.nn's mask draws, so a seeded training-mode call gives torch.nn's result.
        self.stack = Stacked(layers, dropout=dropout, torch_masks=True)
        self._name_pairs = torch_name_pairs(self.stack)
        self._torch_to_nested = {t: n for n, t in self._name_pairs}
        self.register_state_dict_post_hook(_state_dict_to_torch_names)
        self.register_load_state_dict_pre_hook(_state_dict_from_torch_names)
        self.register_load_state_dict_post_hook(_report_torch_names)

    # -- torch.nn compatibility -------------------------------------------------------------
    # torch's flat parameter names (weight_ih_l0, ...) are aliases of the cells' parameters: read,
    # assigned and deleted on the cell that owns them, so that code written for torch.nn (and
    # torch.func.functional_call, which deletes and re-sets each named tensor) reaches the
    # parameter the kernels read.
    def _torch_alias(self, name: str):
        """(cell, attribute) behind torch's parameter name ``name``, or None for other names."""
        nested = self.__dict__.get("_torch_to_nested", {}).get(name)
        if nested is None:
            return None
        owner, _, leaf = nested.rpartition(".")
        return self.get_submodule(owner), leaf

    def torch_parameter_owner(self, name: str) -> tuple[nn.Module, str]:
        """(module, attribute) that owns the parameter torch.nn calls ``name``.

        For torch utilities that need the parameter in a module's ``_parameters`` under the
        given name, which the presets' torch names (aliases) are not:
        ``register_parametrization(*lstm.torch_parameter_owner("weight_hh_l0"), P)`` is
        ``register_parametrization(lstm, "weight_hh_l0", P)`` of a torch.nn.LSTM.
        """
        alias = self._torch_alias(name)
        if alias is None:
            names = [t for _, t in self._name_pairs]
            raise KeyError(f"{type(self).__name__} has no parameter {name!r}; torch's names "
                           f"here: {', '.join(names)}")
        return alias

    def named_torch_parameters(self, prefix: str = "") -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) pairs under the names torch.nn's ``named_parameters()`` gives
        (``weight_hh_l0``; ``weight_hh_l0_orig`` after prune;
        ``parametrizations.weight_hh_l0.original`` under a parametrization), the same
        Parameter objects as :meth:`parameters`, in torch.nn's order. Where utilities have
        moved weights, torch.nn orders those by when each utility was applied, which the
        cells do not record: they come here in the layer's weight order (and in
        ``parameters()`` with their cell's), so an optimizer state_dict carried between the
        two lines up only where the utilities were applied in that order.

        ``named_parameters()`` itself keeps the nested modules' names
        (``stack.layers.0.cell.weight_hh``), which torch.export and ``get_parameter`` need;
        code that picks parameters by torch name (``name.startswith("bias")`` in an
        initialization loop) walks this instead.
        """
        named = dict(self.named_parameters())
        _state_dict_to_torch_names(self, named, "", {})  # the renaming state_dict() applies
        for name, parameter in named.items():
            yield prefix + name, parameter

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            alias = self._torch_alias(name)
            if alias is None:
                raise
            return getattr(*alias)

    def __setattr__(self, name: str, value) -> None:
        alias = self._torch_alias(name)
        if alias is None:
            super().__setattr__(name, value)
            return
        cell, leaf = alias
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            # A plain tensor takes the parameter's place, as torch.func.functional_call makes it
            # do in torch.nn's modules by writing their _parameters (which an alias cannot
            # offer); torch.nn itself refuses `module.weight_hh_l0 = tensor` with a TypeError.
            cell._parameters[leaf] = value
        else:
            setattr(cell, leaf, value)

    def __delattr__(self, name: str) -> None:
        alias = self._torch_alias(name)
        if alias is None:
            super().__delattr__(name)
        else:
            delattr(*alias)

    def register_parameter(self, name: str, param) -> None:
        # torch.nn.utils.prune moves a weight to ``<name>_orig`` by registering that first and
        # then deleting ``<name>`` from the module's own _parameters, where an alias is not: it
        # failed with a bare KeyError after leaving the cell's weight registered here a second
        # time (an extra state_dict key). Refuse before anything changes, naming the route that
        # works.
        if name.endswith("_orig") and self._torch_alias(name[:-len("_orig")]) is not None:
            torch_name = name[:-len("_orig")]
            raise ValueError(
                f"{torch_name!r} of an rnnkit {type(self).__name__} lives in its cell, so "
                f"torch.nn.utils.prune cannot reparametrize it on the preset; prune its owner: "
                f"prune.l1_unstructured(*model.torch_parameter_owner({torch_name!r}), amount=...)")
        super().register_parameter(name, param)

    # torch.nn reads batch_first and dropout at every call, so code may change them after
    # construction (dropout off for fine-tuning, a model switched to batch_first). The layers
    # hold them here, and these properties keep the preset and its layers one setting.
    @property
    def batch_first(self) -> bool:
        return self.stack.batch_first

    @batch_first.setter
    def batch_first(self, value: bool) -> None:
        check_flag("batch_first", value)  # bool("False") is True
        for layer in self._recurrent_layers():
            layer.batch_first = value

    @property
    def dropout(self) -> float:
        return self.stack.dropout

    @dropout.setter
    def dropout(self, value: float) -> None:
        self.stack.dropout = value  # checked there

    @property
    def backend(self) -> str:
        return next(self._recurrent_layers()).backend

    @backend.setter
    def backend(self, value: str) -> None:
        check_backend_name(value)
        for layer in self._recurrent_layers():
            layer.backend = value

    def _recurrent_layers(self):
        return (m for m in self.stack.modules() if isinstance(m, Recurrent))

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Parameters grouped per layer and direction, as ``torch.nn.RNNBase.all_weights``."""
        # getattr, not get_parameter: a parametrized weight is its computed value, as in
        # torch.nn (get_parameter finds no parameter of that name then)
        return [[getattr(self, name) for name in group] for group in self._all_weights]

    # named_parameters() keeps the cells' nested names (stack.layers.0.cell.weight_ih): torch
    # (export, get_parameter, per-module walks) requires them to agree with each submodule's
    # own _parameters. torch.nn's names and order are here, and in state_dict().
    @property
    def _flat_weights_names(self) -> list[str]:
        """torch.nn.RNNBase's list of parameter names, layer-major then direction."""
        return [torch_name for _, torch_name in self._name_pairs]

    @property
    def _all_weights(self) -> list[list[str]]:
        """torch.nn.RNNBase's names grouped per layer and direction."""
        groups: dict[str, list[str]] = {}
        for name in self._flat_weights_names:
            groups.setdefault(name.split("_", 2)[-1], []).append(name)
        return list(groups.values())

    @property
    def _flat_weights(self) -> list[torch.Tensor]:
        """The weights in ``_flat_weights_names``' order (a parametrized one computed)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def reset_parameters(self) -> None:
        """torch.nn's initialization, every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in
        torch.nn's order (the same seed gives the same weights)."""
        for cell in self._cells():
            cell.reset_parameters()

    def flatten_parameters(self) -> None:
        """No-op, kept so code written for torch.nn (cuDNN weight flattening) runs unchanged."""

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _cells(self):
        """Cells in torch's state order: layer-major, then direction."""
        for layer in self.stack.layers:
            if isinstance(layer, Bidirectional):
                yield layer.forward_layer.cell
                yield layer.backward_layer.cell
            else:
                yield layer.cell

    # -- forward -------------------------------------------------------------------------
    @name_mismatched_parameters
    @recurrence_outside_autocast
    def forward(self, input, hx=None, *, lengths=None):
        """Same contract as torch.nn; ``lengths`` (extra) gives valid lengths of a padded batch.

        input: (T, B, I), or (B, T, I) if batch_first, or unbatched (T, I), or a PackedSequence.
        hx: h_0 (L*D, B, H_out) (for LSTM the tuple (h_0, c_0) with c_0 (L*D, B, H)), or None.
        lengths: (B,) ints in 1..T or a boolean mask shaped like the input's first two dims.
        Returns output (T, B, D*H_out) (or batch-first, or packed like the input) and h_n (or
        (h_n, c_n) for LSTM). Outputs past a sequence's length are zero and h_n is each
        sequence's state at its own last step.
        """
        stack = self._modules["stack"]  # not self.stack: nn.Module's __getattr__ costs ~0.5 us
        batch_first = stack._modules["layers"][0].batch_first  # the layers hold the setting
        packing = None
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths= cannot be combined with a PackedSequence input; "
                                 "the packed batch already carries its lengths")
            input, packing = unpack(input, batch_first)
            lengths = packing.lengths
        first_cell = stack._first_cell()
        check_sequence_input(input, self.input_size, first_cell.weight_ih, batch_first,
                             ranks=(2, 3))
        unbatched = input.dim() == 2
        if unbatched:
            if lengths is not None:
                raise ValueError(f"lengths= needs a batched 3-D input; got a 2-D unbatched input "
                                 f"of shape {tuple(input.shape)}: add a batch dimension")
            input = input.unsqueeze(0 if batch_first else 1)
        batch_axis = 0 if batch_first else 1
        batch, steps = input.size(batch_axis), input.size(1 - batch_axis)
        if lengths is not None:
            lengths = normalize_lengths(lengths, batch_size=batch, steps=steps,
                                        batch_first=batch_first, device=input.device)
        states = self._states_from_hx(hx, input, batch, unbatched)
        output, finals = stack._forward(input, states, lengths)
        hidden = self._hx_from_states(finals, unbatched)
        if packing is not None:
            return repack(output, packing, batch_first), hidden
        if unbatched:
            output = output.squeeze(batch_axis)
        return output, hidden

    def _state_widths(self) -> dict[str, int]:
        return next(self._cells()).state_sizes()

    def _states_from_hx(self, hx, x: torch.Tensor, batch: int, unbatched: bool):
        """torch's hx -> one cell state (or BidirectionalState) per layer."""
        if hx is None:
            return None
        widths = self._state_widths()
        fields = list(widths)
        if len(fields) == 1:
            tensors = [hx]
        elif isinstance(hx, (tuple, list)) and len(hx) == len(fields):
            tensors = list(hx)
        else:
            raise TypeError(
                f"hx must be a tuple (h_0, c_0) of 2 tensors; got {describe_container(hx)}"
            )
        rows = self.num_layers * self._directions
        for position, (field, tensor) in enumerate(zip(fields, tensors)):
            name = "hx" if len(fields) == 1 else f"hx[{position}] ({field}_0)"
            shape = (rows, widths[field]) if unbatched else (rows, batch, widths[field])
            check_state_tensor(name, tensor, shape, x)
        if unbatched:
            tensors = [t.unsqueeze(1) for t in tensors]
        cells = list(self._cells())
        per_direction = [cell.state_type(*(t[row] for t in tensors)) for row, cell in enumerate(cells)]
        if not self.bidirectional:
            return per_direction
        return [BidirectionalState(per_direction[2 * i], per_direction[2 * i + 1])
                for i in range(self.num_layers)]

    def _hx_from_states(self, finals, unbatched: bool):
        """Per-layer final states -> torch's h_n (or (h_n, c_n))."""
        # torch.stack copies even for one layer: h_n must not be a view (an unsqueeze would be
        # ~1 us cheaper), since training loops call h_n.detach_(), which views refuse.
        flat = []
        for final in finals:
            flat.extend(final if isinstance(final, BidirectionalState) else [final])
        stacked = [torch.stack(field_values) for field_values in zip(*flat)]
        if unbatched:
            stacked = [t.squeeze(1) for t in stacked]
        return stacked[0] if len(stacked) == 1 else tuple(stacked)

    def extra_repr(self) -> str:
        # torch.nn's order and defaults (proj_size first; nonlinearity is not shown, as there),
        # then rnnkit's own setting
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(proj_size=0, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, backend="auto")
        for key, default in defaults.items():
            value = getattr(self, key)
            if value != default:
                text += f", {key}={value!r}"
        return text

    def __repr__(self) -> str:
        # One line, as torch.nn's: the stack inside (layers, cells) is how this runs, not what
        # the user configured, and would fill a printed model with a tree per layer.
        return f"{type(self).__name__}({self.extra_repr()})"


def _parametrized_names(module, torch_name: str, nested: str) -> tuple[str, str]:
    """Key prefixes of a parametrized parameter: torch.nn's (``parametrizations.weight_hh_l0.``)
    and the cell's (``stack.layers.0.cell.parametrizations.weight_hh.``), holding ``original``
    and each parametrization's own state."""
    owner, _, leaf = nested.rpartition(".")
    return f"parametrizations.{torch_name}.", f"{owner}.parametrizations.{leaf}."


#: suffixes torch.nn.utils adds to a weight's name when it re-registers the weight: prune
#: (``_orig`` and the ``_mask`` buffer), the older weight_norm (``_g``, ``_v``) and
#: spectral_norm (``_orig`` and the ``_u``, ``_v`` buffers)
_UTILITY_SUFFIXES = ("_orig", "_mask", "_g", "_v", "_u")


def _state_dict_to_torch_names(module, state_dict, prefix, local_metadata) -> None:
    # Pop and re-insert every key in torch's order so the result matches torch.nn's: plain
    # parameters first; then what a hook-based utility (prune, the older weight_norm)
    # registered on the module itself, parameters before buffers; last the parametrized
    # weights, which torch.nn keeps in a child module. Within the last two, torch.nn goes by
    # when each utility was applied, which is not recorded: the layer's weight order here.
    renamed = []  # (nested, torch name) of the weights not in state_dict under their own name
    for nested, torch_name in module._name_pairs:
        if prefix + nested in state_dict:
            state_dict[prefix + torch_name] = state_dict.pop(prefix + nested)
        else:  # e.g. after register_parametrization(*torch_parameter_owner(torch_name), ...)
            renamed.append((nested, torch_name))
    for buffers in (False, True):
        for nested, torch_name in renamed:
            owner_name, _, leaf = nested.rpartition(".")
            owner = module.get_submodule(owner_name)
            held = owner._buffers if buffers else owner._parameters
            for name in list(held):  # in the order the utility registered them
                suffix = name[len(leaf):]
                if (name.startswith(leaf) and suffix in _UTILITY_SUFFIXES
                        and prefix + nested + suffix in state_dict):
                    state_dict[prefix + torch_name + suffix] = state_dict.pop(
                        prefix + nested + suffix)
    for nested, torch_name in renamed:
        torch_prefix, cell_prefix = _parametrized_names(module, torch_name, nested)
        for key in [k for k in state_dict if k.startswith(prefix + cell_prefix)]:
            rest = key[len(prefix + cell_prefix):]
            state_dict[prefix + torch_prefix + rest] = state_dict.pop(key)


def _state_dict_from_torch_names(module, state_dict, prefix, local_metadata, strict,
                                 missing_keys, unexpected_keys, error_msgs) -> None:
    for nested, torch_name in module._name_pairs:
        if prefix + torch_name in state_dict:
            state_dict[prefix + nested] = state_dict.pop(prefix + torch_name)
        for suffix in _UTILITY_SUFFIXES:
            if prefix + torch_name + suffix in state_dict:
                state_dict[prefix + nested + suffix] = state_dict.pop(prefix + torch_name + suffix)
        torch_prefix, cell_prefix = _parametrized_names(module, torch_name, nested)
        for key in [k for k in state_dict if k.startswith(prefix + torch_prefix)]:
            rest = key[len(prefix + torch_prefix):]
            state_dict[prefix + cell_prefix + rest] = state_dict.pop(key)
    # for _report_torch_names, which torch calls without the prefix or the error messages
    module._loading = (prefix, error_msgs)


def _report_torch_names(module, incompatible_keys) -> None:
    """Name missing keys and size mismatches as torch.nn would (weight_ih_l0, not
    stack.layers.0.cell.weight_ih): the user's state_dict uses torch's names."""
    prefix, error_msgs = module.__dict__.pop("_loading", ("", []))
    renames = {prefix + nested + suffix: prefix + torch_name + suffix
               for nested, torch_name in module._name_pairs
               for suffix in ("", *_UTILITY_SUFFIXES)}
    prefix_renames = [tuple(prefix + p for p in reversed(_parametrized_names(module, t, n)))
                      for n, t in module._name_pairs]  # (cell prefix, torch prefix)

    def torch_key(key: str) -> str:
        if key in renames:
            return renames[key]
        for cell_prefix, torch_prefix in prefix_renames:
            if key.startswith(cell_prefix):
                return torch_prefix + key[len(cell_prefix):]
        return key

    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [torch_key(key) for key in keys]
    for index, message in enumerate(error_msgs):
        for nested, torch_name in renames.items():
            message = message.replace(f" {nested}: ", f" {torch_name}: ")
        for cell_prefix, torch_prefix in prefix_renames:
            message = message.replace(f" {cell_prefix}", f" {torch_prefix}")
        error_msgs[index] = message


class RNN(_TorchStyleRNN):
    """Elman RNN (tanh or ReLU), drop-in for ``torch.nn.RNN``; see :class:`rnnkit.cells.RNNCell`."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, backend: str = "auto") -> None:
        super().__init__()
        _refuse_projection(proj_size)
        self._build(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, 0, device, dtype, backend,
                    lambda i, **f: RNNCell(i, hidden_size, bias, nonlinearity, **f))

    # The cells hold the nonlinearity: an attribute of the preset's own, set after
    # construction, was what to_torch converted while the cells still computed the other one.
    @property
    def nonlinearity(self) -> str:
        """The cells' nonlinearity ("tanh" or "relu"); setting it sets every cell's."""
        return next(self._cells()).nonlinearity

    @nonlinearity.setter
    def nonlinearity(self, value: str) -> None:
        cells = list(self._cells())
        cells[0].nonlinearity = value  # checked there, before any cell changes
        for cell in cells[1:]:
            cell.nonlinearity = value

    @property
    def mode(self) -> str:
        """torch.nn.RNN's mode string for the nonlinearity."""
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"


class LSTM(_TorchStyleRNN):
    """LSTM, drop-in for ``torch.nn.LSTM`` (incl. ``proj_size``); see :class:`rnnkit.cells.LSTMCell`."""

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, backend: str = "auto") -> None:
        super().__init__()
        self._build(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, proj_size, device, dtype, backend,
                    lambda i, **f: LSTMCell(i, hidden_size, bias, proj_size=proj_size, **f))


class GRU(_TorchStyleRNN):
    """GRU, drop-in for ``torch.nn.GRU``; see :class:`rnnkit.cells.GRUCell`."""

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, backend: str = "auto") -> None:
        super().__init__()
        _refuse_projection(proj_size)
        self._build(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, 0, device, dtype, backend,
                    lambda i, **f: GRUCell(i, hidden_size, bias, **f))


def _refuse_projection(proj_size) -> None:
    """torch.nn.RNN and GRU take ``proj_size`` (in this position) only to refuse a non-zero one;
    so do these, so that positional arguments line up with torch.nn's."""
    if isinstance(proj_size, (str, torch.device)):
        raise TypeError(f"proj_size got {proj_size!r}: as in torch.nn, proj_size comes before "
                        f"device and dtype among the positional arguments; pass "
                        f"device={proj_size!r} by keyword")
    if checked_size("proj_size", proj_size, minimum=0):
        raise ValueError("proj_size is supported for LSTM only, not RNN or GRU; use "
                         "rnnkit.LSTM(..., proj_size=P) for a projected state")
