"""Data: generated tasks now; text corpora, time series and tokenizers as they land."""

from .synthetic import adding_problem

__all__ = ["adding_problem"]
