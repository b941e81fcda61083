"""What every export does last: run the exported model and compare it with PyTorch.

Each exporter feeds :func:`check_inputs` through its artifact (the NumPy runtime, onnxruntime,
the compiled C test program), compares with :meth:`StreamingGraph.eager_forward` and returns an
:class:`ExportReport`; an output y that differs by more than
``TOLERANCE + RELATIVE_TOLERANCE * |y|`` raises :class:`ExportMismatchError` rather than leaving
a silently wrong artifact unreported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..runtime.graph import StreamingGraph

#: largest difference from the PyTorch model accepted for a float32 export, per output y:
#: TOLERANCE + RELATIVE_TOLERANCE * |y|. The relative part is float32 rounding: logits near 10
#: (an ordinary trained language model) differ by ~1.5e-5 between two correct float32 orders of
#: summation, torch.nn.LSTM's among them (each ~1.3-1.6e-5 from a float64 run).
TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-5
LIMIT_TEXT = f"{TOLERANCE:g} + {RELATIVE_TOLERANCE:g} |y|"


class ExportMismatchError(RuntimeError):
    """An exported model whose outputs differ from the PyTorch model's by more than the limit."""


@dataclass(frozen=True)
class ExportReport:
    """Where an export went and how closely it matches the PyTorch model.

    max_abs_diff: largest |exported - eager| over the check inputs (all outputs and steps), or
    None when the check could not run here (``note`` says why, e.g. no C compiler).
    """

    format: str
    folder: Path
    files: tuple[str, ...]
    max_abs_diff: float | None
    note: str = ""

    def summary(self) -> str:
        """One line for people: format, folder and the measured difference."""
        if self.max_abs_diff is None:
            checked = f"not checked ({self.note})"
        else:
            checked = f"max |exported - PyTorch| = {self.max_abs_diff:.2e} (limit {LIMIT_TEXT})"
        return f"{self.format} export in {self.folder}: {checked}"


def check_inputs(graph: StreamingGraph, batch: int = 2, steps: int = 12,
                 seed: int = 0) -> torch.Tensor:
    """Random check inputs: float32 (B, T, I) features, or int64 (B, T) token ids with an embedding."""
    generator = torch.Generator().manual_seed(seed)
    if graph.embedding is not None:
        return torch.randint(0, graph.vocab_size, (batch, steps), generator=generator)
    return torch.randn(batch, steps, graph.input_size, generator=generator)


def expected_outputs(format_name: str, graph: StreamingGraph,
                     inputs: torch.Tensor) -> torch.Tensor:
    """The PyTorch model's outputs on the check inputs, refused if not finite: a comparison
    with inf or NaN says nothing (and the C check program cannot hold them)."""
    expected = graph.eager_forward(inputs)
    if not torch.isfinite(expected).all():
        raise ValueError(f"{format_name} export cannot be checked: the PyTorch model's own "
                         f"outputs on random normal inputs hold inf or NaN; fix its weights "
                         f"(NaN, or large enough to overflow float32) before exporting it")
    return expected


def compare(format_name: str, exported, expected) -> float:
    """max |exported - expected| (arrays or tensors of equal shape); raises where an output y
    differs by more than TOLERANCE + RELATIVE_TOLERANCE * |y| (or is NaN)."""
    exported = np.asarray(exported, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if exported.shape != expected.shape:
        raise ExportMismatchError(f"{format_name} export produced outputs of shape "
                                  f"{exported.shape}; PyTorch produced {expected.shape}")
    differences = np.abs(exported - expected)
    difference = float(np.max(differences)) if exported.size else 0.0
    within = differences <= TOLERANCE + RELATIVE_TOLERANCE * np.abs(expected)
    if not (np.all(within) and difference == difference):  # NaN compares False either way
        raise ExportMismatchError(
            f"{format_name} export differs from the PyTorch model by {difference:.3g} (limit "
            f"{LIMIT_TEXT}); a model with large weights can differ this much by float32 "
            f"rounding alone (compare its own float32 and float64 outputs): if so, export with "
            f"check=False, else please report this with the model's configuration")
    return difference
