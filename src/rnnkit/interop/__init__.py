"""Converters between weight layouts: torch.nn today; ONNX and others later."""

from .torch_nn import from_torch, to_torch, torch_name_pairs

__all__ = ["from_torch", "to_torch", "torch_name_pairs"]
