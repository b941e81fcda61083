"""``StreamingGraph``: a trained model as the plain list of operations a step needs.

Every deployment path (the streaming session, the NumPy, ONNX and C99 exports) reads this one
description instead of the many module types a user may have built, so each supports the same
models and names unsupported parts the same way. A graph is

    x_t ──[embedding]──> layer 0 ──> layer 1 ──> ... ──> layer L-1 ──> head ops ──> y_t

* ``embedding``: optional (V, E) table; the input is then a token id per step instead of a
  (I,) feature vector.
* ``layers``: unidirectional recurrent layers (:class:`LayerSpec`), each an LSTM (optionally with
  projection), GRU or Elman (tanh/relu) cell with torch's parameter layout and gate order. With
  ``residual`` a layer adds its input to its output (``Stacked(residual=True)``).
* ``head``: :class:`HeadOp` s applied to the top layer's output: ``linear`` (y = x W^T + b) and
  the activations ``relu``, ``tanh`` and ``sigmoid``. Dropout and Identity are dropped
  (inference).

Weights are float32 CPU snapshots: later changes to the model do not reach a built graph.
Build one with :func:`streaming_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, cell_class
from ..layers import GRU, LSTM, RNN, Bidirectional, Recurrent, Stacked

#: gates per cell kind, in torch's order
GATE_ORDERS = {"lstm": "i,f,g,o", "gru": "r,z,n", "rnn_tanh": "h", "rnn_relu": "h"}
HEAD_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_SKIPPED = (nn.Dropout, nn.Identity)
_TORCH_KINDS = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}


class UnsupportedModelError(ValueError):
    """A model (or one of its layers) that cannot run step by step or be exported."""


@dataclass(frozen=True)
class LayerSpec:
    """One recurrent layer: ``kind`` in lstm, gru, rnn_tanh, rnn_relu; G = gates * H.

    weight_ih (G, I), weight_hh (G, P), bias_ih / bias_hh (G) or None, weight_hr (P, H) for an
    LSTM with projection (else None). P = ``output_size`` (proj_size or H).
    """

    name: str
    kind: str
    input_size: int
    hidden_size: int
    output_size: int
    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: torch.Tensor | None
    bias_hh: torch.Tensor | None
    weight_hr: torch.Tensor | None = None
    residual: bool = False

    def state_sizes(self) -> dict[str, int]:
        """Width of each state field: ``{"h": P}`` plus ``"c": H`` for an LSTM."""
        return {"h": self.output_size, "c": self.hidden_size} if self.kind == "lstm" else {
            "h": self.output_size}


@dataclass(frozen=True)
class HeadOp:
    """``kind`` is ``linear`` (weight (O, I), bias (O) or None) or an activation name."""

    name: str
    kind: str
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None


@dataclass(frozen=True)
class StreamingGraph:
    layers: tuple[LayerSpec, ...]
    head: tuple[HeadOp, ...] = ()
    embedding: torch.Tensor | None = None
    #: the source modules (embedding, rnn, head), for :meth:`eager_forward` checks
    modules: tuple = field(default=(None, None, None), compare=False, repr=False)

    @property
    def input_size(self) -> int:
        """Features per step of the recurrent input (the embedding width with an embedding)."""
        return self.layers[0].input_size

    @property
    def vocab_size(self) -> int | None:
        return None if self.embedding is None else int(self.embedding.shape[0])

    @property
    def output_size(self) -> int:
        for op in reversed(self.head):
            if op.kind == "linear":
                return int(op.weight.shape[0])
        return self.layers[-1].output_size

    @torch.no_grad()
    def eager_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The source modules' outputs (B, T, O) for inputs (B, T, I), or token ids (B, T).

        Runs the original PyTorch modules in eval mode (restored afterwards): the oracle that
        exports are checked against. The graph holds float32 snapshots, so a model of another
        dtype (float64, bfloat16) runs as its float32 copy: the model the export computes.
        """
        embedding, rnn, head = (_as_float32(m) for m in self.modules)
        modules = [m for m in (embedding, rnn, head) if m is not None]
        modes = [(m, m.training) for m in modules]
        try:
            for module in modules:
                module.eval()
            x = embedding(inputs) if embedding is not None else inputs
            if isinstance(rnn, RecurrentCell):
                state, outputs = None, []
                for t in range(x.shape[1]):
                    state = rnn(x[:, t], state)  # (h, c) for an LSTM cell, h for the others
                    outputs.append(state[0] if isinstance(state, tuple) else state)
                y = torch.stack(outputs, dim=1)
            else:
                batch_first = getattr(rnn, "batch_first", True)
                y = rnn(x if batch_first else x.transpose(0, 1))[0]
                y = y if batch_first else y.transpose(0, 1)
            return (head(y) if head is not None else y).float()
        finally:
            for module, training in modes:
                module.train(training)


def _as_float32(module: nn.Module | None) -> nn.Module | None:
    """``module`` itself when all its floating tensors are float32 (or it has none), else a
    float32 copy (the original is left alone)."""
    if module is None:
        return None
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.dtype == torch.float32 for t in tensors if t.is_floating_point()):
        return module
    import copy

    return copy.deepcopy(module).float()


def _snapshot(tensor: torch.Tensor | None) -> torch.Tensor | None:
    if tensor is None:
        return None
    return tensor.detach().to("cpu", torch.float32).contiguous().clone()


def _cell_spec(cell: RecurrentCell, name: str, residual: bool = False) -> LayerSpec:
    family = cell_class(cell)  # a parametrized cell's weights are snapshotted as computed
    if family is LSTMCell:
        kind = "lstm"
    elif family is GRUCell:
        kind = "gru"
    elif family is RNNCell:
        kind = f"rnn_{cell.nonlinearity}"
    else:
        raise UnsupportedModelError(
            f"layer {name} is a {type(cell).__name__}; streaming and export support rnnkit's "
            f"LSTMCell, GRUCell and RNNCell")
    return LayerSpec(name, kind, cell.input_size, cell.hidden_size, cell.output_size,
                     _snapshot(cell.weight_ih), _snapshot(cell.weight_hh),
                     _snapshot(cell.bias_ih), _snapshot(cell.bias_hh),
                     _snapshot(getattr(cell, "weight_hr", None)), residual)


# A subclass may override forward (a LayerNorm after the layer, a temperature in the head),
# which the graph would not see: its numbers would be silently wrong. So classes are matched
# exactly, as cells are (cell_class), torch parametrizations' generated subclasses included.
_SUBCLASS_NOTE = " (not subclasses: a subclass may change forward, which streaming cannot see)"


def _exactly(module, *classes: type) -> bool:
    return cell_class(module) in classes


def _no_bidirectional(layer, name: str) -> None:
    if isinstance(layer, Bidirectional) or getattr(layer, "reverse", False):
        raise UnsupportedModelError(
            f"layer {name} runs backwards in time ({type(layer).__name__}): its output at step t "
            f"needs the inputs after t, so it cannot run step by step; use unidirectional layers "
            f"for streaming and export")


def _recurrent_specs(rnn, name: str) -> list[LayerSpec]:
    if isinstance(rnn, RecurrentCell):
        return [_cell_spec(rnn, name)]
    if _exactly(rnn, Recurrent):
        _no_bidirectional(rnn, name)
        return [_cell_spec(rnn.cell, f"{name}.cell")]
    if isinstance(rnn, Bidirectional):
        _no_bidirectional(rnn, name)
    if _exactly(rnn, LSTM, GRU, RNN):
        return _recurrent_specs(rnn.stack, f"{name}.stack")
    if _exactly(rnn, Stacked):
        specs = []
        for index, layer in enumerate(rnn.layers):
            _no_bidirectional(layer, f"{name}.layers.{index}")
            if not _exactly(layer, Recurrent):  # a subclass may change the forward
                return _recurrent_specs(layer, f"{name}.layers.{index}")  # raises
            spec = _cell_spec(layer.cell, f"{name}.layers.{index}.cell",
                              residual=rnn.residual and index > 0)
            specs.append(spec)
        return specs
    if _exactly(rnn, nn.LSTM, nn.GRU, nn.RNN):
        return _torch_layer_specs(rnn, name)
    if _exactly(rnn, nn.LSTMCell, nn.GRUCell, nn.RNNCell):
        raise UnsupportedModelError(
            f"{name} is a torch.nn.{type(rnn).__name__}; streaming and export take rnnkit's "
            f"cells: convert it with rnnkit.interop.from_torch (the same weights)")
    raise UnsupportedModelError(
        f"{name} is a {type(rnn).__module__}.{type(rnn).__qualname__}; streaming and export "
        f"support rnnkit.LSTM/GRU/RNN, Stacked, Recurrent, rnnkit cells and torch.nn.LSTM/GRU/RNN "
        f"themselves{_SUBCLASS_NOTE}")


def _torch_layer_specs(rnn: nn.RNNBase, name: str) -> list[LayerSpec]:
    if rnn.bidirectional:
        raise UnsupportedModelError(
            f"layer {name} is a bidirectional {type(rnn).__name__}: its output at step t needs "
            f"the inputs after t, so it cannot run step by step; use bidirectional=False")
    kind = _TORCH_KINDS[rnn.mode]
    proj = getattr(rnn, "proj_size", 0)
    output_size = proj or rnn.hidden_size
    specs = []
    for k in range(rnn.num_layers):
        weight = lambda field: _snapshot(getattr(rnn, f"{field}_l{k}", None))  # noqa: E731
        specs.append(LayerSpec(
            f"{name} (layer {k})", kind, rnn.input_size if k == 0 else output_size,
            rnn.hidden_size, output_size, weight("weight_ih"), weight("weight_hh"),
            weight("bias_ih") if rnn.bias else None, weight("bias_hh") if rnn.bias else None,
            weight("weight_hr") if proj else None))
    return specs


def _head_ops(head, name: str) -> list[HeadOp]:
    if head is None or _exactly(head, *_SKIPPED):
        return []
    if _exactly(head, nn.Linear):
        return [HeadOp(name, "linear", _snapshot(head.weight), _snapshot(head.bias))]
    if type(head) in HEAD_ACTIVATIONS:
        return [HeadOp(name, HEAD_ACTIVATIONS[type(head)])]
    if _exactly(head, nn.Sequential):
        ops = []
        for child_name, child in head.named_children():
            ops.extend(_head_ops(child, f"{name}.{child_name}"))
        return ops
    raise UnsupportedModelError(
        f"head module {name} is a {type(head).__module__}.{type(head).__qualname__}; a head may "
        f"hold nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout and nn.Identity in an "
        f"nn.Sequential{_SUBCLASS_NOTE}")


def _embedding_table(embedding, name: str) -> torch.Tensor:
    if not _exactly(embedding, nn.Embedding):
        raise UnsupportedModelError(
            f"{name} is a {type(embedding).__qualname__}; the embedding must be a "
            f"torch.nn.Embedding{_SUBCLASS_NOTE}")
    if embedding.max_norm is not None:
        raise UnsupportedModelError(
            f"{name} has max_norm={embedding.max_norm}, which rescales rows at lookup time; "
            f"renormalize the table once and set max_norm=None before streaming or export")
    return _snapshot(embedding.weight)


def weights_as_a_forward_computes_them(module: nn.Module, name: str,
                                       children_called: bool = True) -> None:
    """Bring weights that forward pre-hooks compute up to date, and refuse the hooks a forward
    of ``module`` would run that the graph cannot carry.

    torch.nn.utils.prune, the hook-based weight_norm and spectral_norm keep the weight a
    forward uses as a plain attribute that their pre-hook recomputes at each call: after an
    optimizer step it still holds the values of the last forward. So those hooks are run here,
    as an eval-mode forward would run them (spectral_norm without a power iteration). Other
    hooks may change what a forward computes where the graph cannot see it, so they are
    refused where they run: on ``module`` itself, on every submodule when ``children_called``
    (an nn.Sequential head calls its children), and otherwise only the forward pre-hooks of
    cells, which rnnkit's layers run once per sequence (a layer never calls its submodules'
    forward, so their forward hooks never run and are left alone).
    """
    from torch.nn.modules import module as module_module
    from torch.nn.utils.prune import BasePruningMethod
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    if getattr(module_module, "_global_forward_hooks", None) or \
            getattr(module_module, "_global_forward_pre_hooks", None):
        raise UnsupportedModelError(
            "a global module forward hook is registered (torch.nn.modules.module."
            "register_module_forward_hook), which streaming and export cannot carry; remove it "
            "first")
    for child_name, child in module.named_modules():
        where = f"{name}.{child_name}" if child_name else name
        called = children_called or not child_name
        if child._forward_hooks and called:
            raise UnsupportedModelError(
                f"{where} has a forward hook, which may change its output where streaming and "
                f"export cannot see it; remove it (the handle's remove()) first, or fold what "
                f"it does into the model")
        for hook in list(child._forward_pre_hooks.values()):
            with torch.no_grad():
                if isinstance(hook, SpectralNorm):
                    setattr(child, hook.name, hook.compute_weight(child, do_power_iteration=False))
                elif isinstance(hook, (WeightNorm, BasePruningMethod)):
                    hook(child, ())  # sets the weight attribute; the inputs are not read
                elif called or isinstance(child, RecurrentCell):
                    raise UnsupportedModelError(
                        f"{where} has a forward pre-hook, which streaming and export cannot "
                        f"carry; remove it (the handle's remove()) first (prune, weight_norm "
                        f"and spectral_norm are supported)")


def streaming_graph(model, *, head=None, embedding=None) -> StreamingGraph:
    """Describe ``model`` (plus optional ``head`` and ``embedding``) as a :class:`StreamingGraph`.

    model: an rnnkit layer (``LSTM``/``GRU``/``RNN``, ``Stacked``, ``Recurrent``), an rnnkit
    cell, a ``torch.nn.LSTM/GRU/RNN``, or any module with a ``streaming_parts()`` method that
    returns ``{"rnn": ..., "head": ..., "embedding": ...}`` (how task models such as the
    character LM describe themselves). head: ``nn.Linear`` or an ``nn.Sequential`` of linear
    layers and ReLU/Tanh/Sigmoid. embedding: ``nn.Embedding`` (inputs become token ids).
    Raises :class:`UnsupportedModelError` naming the first part that cannot run step by step.
    """
    for what, part in (("model", model), ("head", head), ("embedding", embedding)):
        if (part is not None or what == "model") and not isinstance(part, nn.Module):
            raise TypeError(f"{what} must be an nn.Module; got {type(part).__name__} (load a "
                            f"state_dict or checkpoint into its module first)")
    if hasattr(model, "streaming_parts"):
        if head is not None or embedding is not None:
            raise ValueError(f"{type(model).__name__} describes its own head and embedding "
                             f"(streaming_parts()); do not pass head= or embedding= as well")
        parts = model.streaming_parts()
        rnn, head, embedding = parts["rnn"], parts.get("head"), parts.get("embedding")
        # model(x) runs the model's own hooks around its parts; the graph is built from the
        # parts alone, so such a hook would change the model's output but not the graph's
        for kind, hooks in (("forward hook", model._forward_hooks),
                            ("forward pre-hook", model._forward_pre_hooks)):
            if hooks:
                raise UnsupportedModelError(
                    f"the {type(model).__name__} has a {kind}, which may change its output "
                    f"where streaming and export cannot see it; remove it (the handle's "
                    f"remove()) first, or fold what it does into the model")
    else:
        rnn = model
    for what, part in (("rnn", rnn), ("head", head), ("embedding", embedding)):
        if part is not None and not isinstance(part, nn.Module):  # from streaming_parts()
            raise TypeError(f"streaming_parts()[{what!r}] must be an nn.Module; got "
                            f"{type(part).__name__}")
        if part is not None:
            # rnnkit's layers call no submodule's forward (the backends run the cells' math)
            weights_as_a_forward_computes_them(part, what, children_called=what != "rnn")
    layers = _recurrent_specs(rnn, "rnn")
    table = None if embedding is None else _embedding_table(embedding, "embedding")
    if table is not None and table.shape[1] != layers[0].input_size:
        raise UnsupportedModelError(
            f"the embedding has width {table.shape[1]} but the first layer takes "
            f"input_size={layers[0].input_size}; they must match")
    ops = _head_ops(head, "head")
    width = layers[-1].output_size
    for op in ops:
        if op.kind == "linear":
            if op.weight.shape[1] != width:
                raise UnsupportedModelError(
                    f"head module {op.name} takes {op.weight.shape[1]} features but receives "
                    f"{width}; its in_features must match")
            width = op.weight.shape[0]
    return StreamingGraph(tuple(layers), tuple(ops), table, (embedding, rnn, head))
