"""Sequence classification: confusion matrices, accuracy, macro F1 and their plots."""
