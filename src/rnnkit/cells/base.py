"""What every recurrent cell provides: the contract that layers and backends rely on.

A cell is split in two parts, which is what lets backends run it fast:

* ``project_input(x)``: the part that does not depend on the state,
  ``gates_x = x @ W_ih^T + b_ih``. Layers call it once for all time steps (one large GEMM).
* ``step(gates_x_t, state)``: the sequential part, one time step, delegating to the cell's pure
  step function (the only place its gate math is written).

States are ``NamedTuple`` s whose first field is always ``h``, the step's output.
Shapes use B (batch), T (time), I (input features), H (hidden size), G (gate width, a multiple of H).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from ..errors import (
    DtypeMismatchError, ShapeMismatchError, check_floating, check_matches_parameters,
    check_switch, checked_size, describe, describe_container,
)


class RecurrentCell(nn.Module):
    """Base class for the parameter module of one cell family.

    Subclasses set ``state_type`` and ``gate_count`` and implement :meth:`step`. Parameter names
    and layouts follow torch.nn: ``weight_ih`` (G, I), ``weight_hh`` (G, H_out), ``bias_ih`` (G),
    ``bias_hh`` (G), with G = ``gate_count`` * H.
    """

    state_type: type[NamedTuple]
    gate_count: int

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        recurrent_input_size: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not hasattr(self, "gate_count") or not hasattr(self, "state_type"):
            # RecurrentCell itself: "'RecurrentCell' object has no attribute 'gate_count'"
            raise TypeError(f"{type(self).__name__} must set state_type and gate_count (and "
                            f"implement step): RecurrentCell is the base of cells such as "
                            f"rnnkit.LSTMCell, not one itself")
        input_size = checked_size("input_size", input_size)
        hidden_size = checked_size("hidden_size", hidden_size)
        check_switch("bias", bias)
        factory = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gates = self.gate_count * hidden_size
        recurrent_input_size = hidden_size if recurrent_input_size is None else recurrent_input_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gates, recurrent_input_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gates, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def __prepare_scriptable__(self):
        # torch.jit.script calls this on every submodule before compiling: without it, a layer
        # failed deep inside TorchScript's frontend ("keyword-only arguments with defaults",
        # "Lambda aren't supported") without saying that TorchScript is not supported.
        raise TypeError(f"torch.jit.script cannot compile rnnkit's {type(self).__name__} "
                        f"(TorchScript, which torch has deprecated, is not supported); use "
                        f"torch.compile, or torch.export for a graph to save")

    # -- initialization ---------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """torch.nn's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    # -- the cell contract -----------------------------------------------------------------
    @property
    def output_size(self) -> int:
        """Width of ``state.h``, the step's output."""
        return self.hidden_size

    def state_sizes(self) -> dict[str, int]:
        """Feature width of each state field, in field order."""
        return {field: self.hidden_size for field in self.state_type._fields}

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> NamedTuple:
        """All-zero state of shape (B, width) per field."""
        # 2.5, "2" and True reached torch.zeros ("zeros() takes 1 positional argument"); a
        # symbolic size (torch.export with a dynamic batch) is the traced input's own
        if not isinstance(batch_size, torch.SymInt):
            batch_size = checked_size("batch_size", batch_size, minimum=0)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise DtypeMismatchError(f"dtype must be a floating torch.dtype (the state is added "
                                     f"to floating gates); got {dtype}")
        dtype = dtype or self.weight_hh.dtype
        device = device or self.weight_hh.device
        return self.state_type(
            *(torch.zeros(batch_size, width, dtype=dtype, device=device)
              for width in self.state_sizes().values())
        )

    def zero_state_like(self, x: torch.Tensor, batch_size: int) -> NamedTuple:
        """:meth:`initial_state` in ``x``'s dtype and device, for a layer to pass straight to a
        backend, which never writes to it: fields of equal width share one zero tensor, and
        ``new_zeros`` skips the keyword parsing of ``torch.zeros(..., dtype=, device=)``. Each
        allocation saved is ~1 us of a batch-1 layer call of ~70 us."""
        widths = self.state_sizes().values()
        zeros = {width: x.new_zeros(batch_size, width) for width in set(widths)}
        return self.state_type(*[zeros[width] for width in widths])

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W_ih^T + b_ih``: (..., I) -> (..., G). Independent of the state.

        Layers call it once for all steps, on (T, B, I) or (B, T, I) as suits them (a
        batch-first layer may hand it a time-major copy), so an override must treat every
        (..., I) row on its own."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, gates_x_t: torch.Tensor, state: NamedTuple) -> NamedTuple:
        """One time step: (B, G) projected input and the state -> the next state."""
        raise NotImplementedError

    def check_step(self, gates_x_t: torch.Tensor, state: NamedTuple) -> None:
        """What rnnkit's cells' :meth:`step` checks, per step in the reference backend too, so
        only what is cheap (about a microsecond, 2% of a batch-1 LSTM step of H = 64 there)
        and would otherwise be silently wrong or unreadable: the raw input in place of the projected gates broadcast to a plausible
        state when I was 1 or G, and a tensor state failed with "'Tensor' object has no
        attribute 'h'". (A state of another batch fails in the step's product, naming the
        sizes.)"""
        if torch._C._get_tracing_state() is not None:
            return  # torch.jit.trace: the sizes would become constants, with a warning each
        if not isinstance(gates_x_t, torch.Tensor) \
                or gates_x_t.shape[-1] != self.gate_count * self.hidden_size:
            got = (f"shape {tuple(gates_x_t.shape)}" if isinstance(gates_x_t, torch.Tensor)
                   else type(gates_x_t).__name__)
            raise ShapeMismatchError(f"gates_x_t must be the projected input (B, G) with G = "
                                     f"{self.gate_count * self.hidden_size} "
                                     f"(cell.project_input(x)); got {got}")
        if type(state) is not self.state_type and not isinstance(state, tuple):
            raise TypeError(f"state must be a {self.state_type.__name__} (cell.initial_state("
                            f"batch) makes one); got {type(state).__name__}")

    # -- torch.nn.*Cell compatible forward ------------------------------------------------------
    def forward(self, input: torch.Tensor, hx=None):
        """Drop-in for ``torch.nn.RNNCell/GRUCell/LSTMCell.forward``.

        ``input`` is (B, I) or unbatched (I); ``hx`` is the state in torch's form (a tensor, or the
        tuple (h, c) for LSTM), or None for zeros. Returns the next state in the same form.
        Inside an autocast region the step runs in the parameters' dtype, as the layers do
        (:mod:`rnnkit.layers.autocast`): floating inputs are cast to it, so a bfloat16 input or
        state is taken, and the state does not lose precision at every step.
        """
        if torch._C._is_any_autocast_enabled() and isinstance(input, torch.Tensor):
            device = input.device.type
            if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
                dtype = self.weight_ih.dtype
                cast = lambda t: (t.to(dtype) if isinstance(t, torch.Tensor)  # noqa: E731
                                  and t.is_floating_point() else t)
                hx = tuple(map(cast, hx)) if isinstance(hx, (tuple, list)) else cast(hx)
                with torch.autocast(device, enabled=False):
                    return self._step_torch_style(cast(input), hx)
        return self._step_torch_style(input, hx)

    def _step_torch_style(self, input: torch.Tensor, hx):
        """:meth:`forward` outside autocast."""
        check_floating("input", input)
        if input.dim() not in (1, 2):
            raise ValueError(
                f"input must be 1-D (I) unbatched or 2-D (B, I); got {input.dim()}-D tensor of "
                f"shape {describe(input)}"
            )
        if input.size(-1) != self.input_size:
            raise ShapeMismatchError(
                f"input.size(-1) must equal input_size={self.input_size}; got {input.size(-1)}"
            )
        check_matches_parameters(input, self.weight_ih)
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            state = self.initial_state(x.size(0), dtype=x.dtype, device=x.device)
        else:
            state = self._state_from_torch(hx, x, unbatched)
        new_state = self.step(self.project_input(x), state)
        if unbatched:
            new_state = self.state_type(*(s.squeeze(0) for s in new_state))
        return self._state_to_torch(new_state)

    def _state_from_torch(self, hx, x: torch.Tensor, unbatched: bool) -> NamedTuple:
        """torch's hx form -> NamedTuple state, checking shape, dtype and device."""
        fields = self.state_type._fields
        tensors = (hx,) if len(fields) == 1 else hx
        if len(fields) > 1 and (not isinstance(hx, (tuple, list)) or len(hx) != len(fields)):
            raise TypeError(
                f"hx must be a tuple {tuple(fields)} of {len(fields)} tensors; got "
                f"{describe_container(hx)}"
            )
        checked = []
        for field, tensor, width in zip(fields, tensors, self.state_sizes().values()):
            name = "hx" if len(fields) == 1 else f"hx[{fields.index(field)}] ({field})"
            expected = (width,) if unbatched else (x.size(0), width)
            check_state_tensor(name, tensor, expected, x)
            checked.append(tensor.unsqueeze(0) if unbatched else tensor)
        return self.state_type(*checked)

    def _state_to_torch(self, state: NamedTuple):
        return state[0] if len(state) == 1 else tuple(state)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        return text


def cell_class(cell) -> type:
    """The class whose step ``cell`` computes, for code with one kernel per cell class (the fused
    ops, streaming, export): ``type(cell)``, or for a cell with torch parametrizations
    (``torch.nn.utils.parametrize``: weight_norm, spectral_norm, orthogonal, ...) the class it was
    made from, since those swap in a subclass ``Parametrized<Class>`` that only computes the
    weights when they are read. Never isinstance: a user's subclass may change the step."""
    # parametrize keeps them in a submodule of this name: a dict lookup first, since
    # is_parametrized alone costs a caught AttributeError (~1.3 us) on every layer call.
    if "parametrizations" in cell._modules and parametrize.is_parametrized(cell):
        return type(cell).__bases__[0]
    return type(cell)


def check_cell_state(cell: RecurrentCell, state, batch: int, reference: torch.Tensor,
                     name: str = "state") -> NamedTuple:
    """A user's state for ``cell`` over a batch of ``batch``: the cell's fields, each (batch,
    width) in ``reference``'s dtype and device. Returns it as the cell's NamedTuple (a plain
    tuple of the right tensors is accepted, as torch.nn accepts (h, c))."""
    fields = cell.state_type._fields
    if not isinstance(state, tuple) or len(state) != len(fields):
        raise TypeError(f"{name} must be a {cell.state_type.__name__}{tuple(fields)} of "
                        f"{len(fields)} tensors; got {describe_container(state)}")
    for field, tensor, width in zip(fields, state, cell.state_sizes().values()):
        check_state_tensor(f"{name}.{field}", tensor, (batch, width), reference)
    return cell.state_type(*state)


def check_state_tensor(name: str, tensor, expected_shape: tuple, reference: torch.Tensor) -> None:
    """One state tensor must match ``expected_shape`` and the input's dtype and device."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a tensor; got {type(tensor).__name__}")
    if tuple(tensor.shape) != tuple(expected_shape):
        raise ShapeMismatchError(
            f"{name} must have shape {tuple(expected_shape)}; got {describe(tensor)}"
        )
    if tensor.dtype != reference.dtype:
        raise DtypeMismatchError(
            f"{name} dtype {tensor.dtype} does not match input dtype {reference.dtype}; "
            f"cast it with {name.split(' ')[0]}.to({reference.dtype})"
        )
    if tensor.device != reference.device:
        raise ValueError(
            f"{name} is on {tensor.device} but input is on {reference.device}; "
            f"move it with .to('{reference.device}')"
        )
