"""Backends: how a cell runs over time. One entry point, :func:`scan`."""

from .reference import reference_scan
from .scan import (
    BACKENDS, Backend, backend_names, backend_report, check_backend_name, project_input, run_layer,
    scan, select_backend,
)

__all__ = [
    "BACKENDS", "Backend", "backend_names", "backend_report", "check_backend_name",
    "project_input", "reference_scan", "run_layer", "scan", "select_backend",
]
