"""Export of trained models to deployment formats, each checked against the PyTorch model.

:func:`export_numpy` writes a bundle that runs on NumPy alone; :func:`export_onnx` an ONNX model
with state inputs and outputs (needs the ``export`` extra: onnx and onnxruntime);
:func:`export_c` C99 source (weights as constants, a step function, no allocation, no libm)
compiled and run by its generated test program when a C compiler exists. Every export returns
an :class:`ExportReport` with the measured difference from PyTorch.
"""

from .c_code import export_c
from .check import RELATIVE_TOLERANCE, TOLERANCE, ExportMismatchError, ExportReport
from .numpy_bundle import export_numpy
from .onnx_export import OnnxStreamer, export_onnx

__all__ = ["RELATIVE_TOLERANCE", "TOLERANCE", "ExportMismatchError", "ExportReport",
           "OnnxStreamer", "export_c", "export_numpy", "export_onnx"]
