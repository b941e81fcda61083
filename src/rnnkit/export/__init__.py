"""Export of trained models to deployment formats: a NumPy-only runtime (more planned)."""

from .numpy_bundle import export_numpy

__all__ = ["export_numpy"]
