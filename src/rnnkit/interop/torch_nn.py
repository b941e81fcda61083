"""Converters between rnnkit layers and torch.nn recurrent modules.

rnnkit presets store each cell's parameters under nested names
(``stack.layers.1.backward_layer.cell.weight_hh``); torch.nn names them flat
(``weight_hh_l1_reverse``). The tensors themselves have the same layout and gate order, so
conversion is a renaming plus a copy. This module is the only place that knows the mapping.
"""

from __future__ import annotations

import torch
from torch import nn

from ..backends import check_backend_name
from ..cells import GRUCell, LSTMCell, RNNCell

_TORCH_LAYERS = (nn.RNN, nn.LSTM, nn.GRU)
_TORCH_CELLS = (nn.RNNCell, nn.LSTMCell, nn.GRUCell)


def torch_name_pairs(stack) -> list[tuple[str, str]]:
    """(rnnkit name relative to the preset, torch.nn name) for every parameter, in torch order.

    ``stack`` is a preset's :class:`~rnnkit.layers.Stacked` whose layers are Recurrent (one
    direction) or Bidirectional.
    """
    pairs = []
    for index, layer in enumerate(stack.layers):
        if hasattr(layer, "cell"):
            directions = [("cell", "", layer.cell)]
        else:
            directions = [("forward_layer.cell", "", layer.forward_layer.cell),
                          ("backward_layer.cell", "_reverse", layer.backward_layer.cell)]
        for path, suffix, cell in directions:
            for name, _ in cell.named_parameters(recurse=False):
                pairs.append((f"stack.layers.{index}.{path}.{name}", f"{name}_l{index}{suffix}"))
    return pairs


def from_torch(module: nn.Module, *, backend: str = "auto") -> nn.Module:
    """A new rnnkit module computing the same function as a torch.nn RNN/LSTM/GRU or cell.

    The weights are copied (not shared), on the same device and dtype.
    """
    import rnnkit  # the presets live in rnnkit.layers, which imports this module

    if not isinstance(module, _TORCH_LAYERS + _TORCH_CELLS):
        raise TypeError(f"from_torch converts torch.nn RNN/LSTM/GRU and their cells; got "
                        f"{type(module).__name__}")
    check_backend_name(backend)
    if isinstance(module, _TORCH_CELLS) and backend != "auto":
        # a cell steps in Python whatever the backend; it was accepted and ignored, "bogus" too
        raise ValueError(f"backend applies to layers; a cell ({type(module).__name__}) has "
                         f"none, so leave backend out")
    factory = _factory(module, "from_torch", _TORCH_LAYERS + _TORCH_CELLS)
    if isinstance(module, _TORCH_LAYERS):
        common = dict(num_layers=module.num_layers, bias=module.bias,
                      batch_first=module.batch_first, dropout=module.dropout,
                      bidirectional=module.bidirectional, backend=backend, **factory)
        if isinstance(module, nn.LSTM):
            converted = rnnkit.LSTM(module.input_size, module.hidden_size,
                                    proj_size=module.proj_size, **common)
        elif isinstance(module, nn.GRU):
            converted = rnnkit.GRU(module.input_size, module.hidden_size, **common)
        else:
            converted = rnnkit.RNN(module.input_size, module.hidden_size,
                                   nonlinearity=module.nonlinearity, **common)
    elif isinstance(module, _TORCH_CELLS):
        if isinstance(module, nn.LSTMCell):
            converted = LSTMCell(module.input_size, module.hidden_size, module.bias, **factory)
        elif isinstance(module, nn.GRUCell):
            converted = GRUCell(module.input_size, module.hidden_size, module.bias, **factory)
        else:
            converted = RNNCell(module.input_size, module.hidden_size, module.bias,
                                module.nonlinearity, **factory)
    _load(converted, module, "from_torch")
    _copy_training_flags(module, converted)
    return converted


def to_torch(module: nn.Module) -> nn.Module:
    """A new torch.nn module computing the same function as an rnnkit preset or cell."""
    import rnnkit

    if not isinstance(module, (rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, RNNCell, LSTMCell, GRUCell)):
        raise TypeError(f"to_torch converts rnnkit RNN/LSTM/GRU and their cells; got "
                        f"{type(module).__name__}")
    factory = _factory(module, "to_torch",
                       (rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, RNNCell, LSTMCell, GRUCell))
    if isinstance(module, (rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU)):
        common = dict(num_layers=module.num_layers, bias=module.bias,
                      batch_first=module.batch_first, dropout=module.dropout,
                      bidirectional=module.bidirectional, **factory)
        if isinstance(module, rnnkit.LSTM):
            converted = nn.LSTM(module.input_size, module.hidden_size,
                                proj_size=module.proj_size, **common)
        elif isinstance(module, rnnkit.GRU):
            converted = nn.GRU(module.input_size, module.hidden_size, **common)
        else:
            kinds = sorted({cell.nonlinearity for cell in module._cells()})
            if len(kinds) > 1:  # one cell's set by hand: torch.nn.RNN has one for all layers
                raise ValueError(f"the cells of this RNN use different nonlinearities "
                                 f"({', '.join(kinds)}), and torch.nn.RNN has one; set "
                                 f"module.nonlinearity to give every cell the same")
            converted = nn.RNN(module.input_size, module.hidden_size,
                               nonlinearity=kinds[0], **common)
    else:
        if isinstance(module, LSTMCell):
            if module.proj_size:
                raise ValueError("torch.nn.LSTMCell has no projection; an rnnkit LSTMCell with "
                                 "proj_size > 0 cannot be converted")
            converted = nn.LSTMCell(module.input_size, module.hidden_size, module.bias, **factory)
        elif isinstance(module, GRUCell):
            converted = nn.GRUCell(module.input_size, module.hidden_size, module.bias, **factory)
        else:
            converted = nn.RNNCell(module.input_size, module.hidden_size, module.bias,
                                   module.nonlinearity, **factory)
    with torch.no_grad():
        _load(converted, module, "to_torch")
    _copy_training_flags(module, converted)
    return converted


def _load(converted: nn.Module, module: nn.Module, what: str) -> None:
    """Copy ``module``'s state into ``converted``; state the target has no place for (a
    buffer or submodule a user registered) is a one-line error, not torch's list of keys."""
    extra = sorted(set(module.state_dict()) - set(converted.state_dict()))
    if extra:
        raise TypeError(f"{what} cannot convert {type(module).__name__}: it holds state the "
                        f"converted module has no place for ({', '.join(extra)}); convert a "
                        f"module without it")
    converted.load_state_dict(module.state_dict())


def _factory(module: nn.Module, what: str, kinds: tuple[type, ...]) -> dict:
    """The device and dtype of ``module``'s weights. Refuses what the converted module would
    not reproduce, each in one line naming the way out: weights that are computed
    (parametrizations, the older weight_norm and spectral_norm, prune), hooks, weights tied
    to each other, and a subclass of ``kinds`` that overrides ``forward``."""
    from torch.nn.utils import parametrize

    from torch.nn.utils.prune import BasePruningMethod
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    for name, sub in module.named_modules():
        where = name or type(module).__name__
        if parametrize.is_parametrized(sub):
            raise TypeError(f"{what} cannot convert a module with parametrizations (on "
                            f"{where}); convert it first and then parametrize the result, or "
                            f"remove them with torch.nn.utils.parametrize."
                            f"remove_parametrizations")
        # the older hook-based forms (weight_g/weight_v, weight_orig keys) failed later in
        # load_state_dict with a multi-line error
        if any(isinstance(hook, (WeightNorm, SpectralNorm))
               for hook in sub._forward_pre_hooks.values()):
            raise TypeError(f"{what} cannot convert a module with torch.nn.utils.weight_norm "
                            f"or spectral_norm (on {where}); convert it first and then apply "
                            f"them, or remove them with torch.nn.utils.remove_weight_norm / "
                            f"remove_spectral_norm")
        if any(isinstance(hook, BasePruningMethod) for hook in sub._forward_pre_hooks.values()):
            raise TypeError(f"{what} cannot convert a pruned module (on {where}); make the "
                            f"pruning permanent with torch.nn.utils.prune.remove first, or "
                            f"convert it first and then prune the result")
        hooks = (sub._forward_hooks, sub._forward_pre_hooks, sub._backward_hooks,
                 sub._backward_pre_hooks)
        if any(hooks):
            raise TypeError(f"{what} cannot carry hooks over (on {where}), and the converted "
                            f"module would run without them; convert first, then register "
                            f"them on the result")
    for name, parameter in module.named_parameters():
        # hooks on a weight itself (register_hook, register_post_accumulate_grad_hook) stay
        # with that Parameter, which the converted module does not have
        if getattr(parameter, "_backward_hooks", None) or \
                getattr(parameter, "_post_accumulate_grad_hooks", None):
            raise TypeError(f"{what} cannot carry the gradient hooks registered on {name} "
                            f"over, and the converted module would run without them; convert "
                            f"first, then register them on the result's weight")
    shared = _tied_parameters(module)
    if shared:
        raise TypeError(f"{what} cannot convert a module whose weights {shared[0]} and "
                        f"{shared[1]} are one tensor (tied): the converted module would "
                        f"untie them; tie them again on the result")
    base = next(kind for kind in kinds if isinstance(module, kind))
    if type(module).forward is not base.forward:  # a subclass may compute something else
        raise TypeError(f"{what} cannot convert {type(module).__name__}, a subclass of "
                        f"{base.__name__} with its own forward, which the converted module "
                        f"would not run; convert a plain {base.__name__}")
    kinds_held = {(p.device, p.dtype) for p in module.parameters()}
    if len(kinds_held) > 1:  # torch.nn refuses to run it too; the copy would take the first's
        shown = ", ".join(sorted(f"{dtype} on {device}" for device, dtype in kinds_held))
        raise TypeError(f"{what} cannot convert a module whose weights are of several dtypes or "
                        f"devices ({shown}); give them one first, e.g. module.float()")
    parameter = next(module.parameters())
    return {"device": parameter.device, "dtype": parameter.dtype}


def _tied_parameters(module: nn.Module) -> tuple[str, str] | None:
    """The names of the first two parameters of ``module`` that are one tensor, or two
    Parameters over the same memory (``nn.Parameter(other.data)``), or None."""
    seen: dict[object, str] = {}
    for name, parameter in module.named_parameters(remove_duplicate=False):
        keys = [id(parameter)]
        if parameter.device.type != "meta" and parameter.numel():  # meta tensors hold no memory
            keys.append(("memory", parameter.untyped_storage().data_ptr(),
                         parameter.storage_offset()))
        for key in keys:
            if key in seen:
                return seen[key], name
        for key in keys:
            seen[key] = name
    return None


def _copy_training_flags(source: nn.Module, converted: nn.Module) -> None:
    """Train/eval mode and each parameter's requires_grad (a frozen weight stays frozen), by
    the shared state_dict names."""
    converted.train(source.training)
    frozen = {name for name, value in source.state_dict(keep_vars=True).items()
              if isinstance(value, nn.Parameter) and not value.requires_grad}
    for name, value in converted.state_dict(keep_vars=True).items():
        if name in frozen:
            value.requires_grad_(False)
