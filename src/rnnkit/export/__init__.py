"""Export of trained models to deployment formats, each checked against the PyTorch model.

:func:`export_numpy` writes a bundle that runs on NumPy alone; :func:`export_onnx` an ONNX model
with state inputs and outputs (needs the ``export`` extra: onnx and onnxruntime); every export
returns an :class:`ExportReport` with the measured difference from PyTorch.
"""

from .check import TOLERANCE, ExportMismatchError, ExportReport
from .numpy_bundle import export_numpy
from .onnx_export import OnnxStreamer, export_onnx

__all__ = ["TOLERANCE", "ExportMismatchError", "ExportReport", "OnnxStreamer", "export_numpy",
           "export_onnx"]
