"""Classification quality: confusion matrix, accuracy, macro F1, a report, and a PNG of it.

Labels and predictions are integer class indices ``0..K-1`` of shape (N,). The confusion
matrix ``M`` (K, K) counts ``M[i, j] = #{n : y_n = i, y_hat_n = j}`` (rows true, columns
predicted). From it, for class ``k``:

* ``precision_k = M[k, k] / sum_i M[i, k]`` (0 when the class is never predicted)
* ``recall_k    = M[k, k] / sum_j M[k, j]`` (0 when the class never occurs)
* ``f1_k        = 2 M[k, k] / (sum_i M[i, k] + sum_j M[k, j])``, the harmonic mean of the two
  (0 when the class is never predicted)
* ``accuracy    = trace(M) / N`` and ``macro_f1 = mean_k f1_k`` over the classes that occur in
  the labels or the predictions (a class absent from both says nothing about the model).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnkit.errors import MissingExtraError
from rnnkit.training.metrics import save_figure


def _indices(name: str, values, num_classes: int | None = None) -> np.ndarray:
    """``values`` as a non-empty int64 array (N,), checked to lie in ``0..num_classes-1``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (N,); got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one class index")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices; got dtype {array.dtype} "
                         f"(convert with .astype(int), or argmax the scores first)")
    array = array.astype(np.int64)
    if num_classes is not None and (array.min() < 0 or array.max() >= num_classes):
        bad = array[(array < 0) | (array >= num_classes)][0]
        raise ValueError(f"{name} contains class index {bad}, outside 0..{num_classes - 1}; "
                         f"pass num_classes (class_names, for a report) covering every "
                         f"class")
    return array


def _pair(labels, predictions, num_classes: int | None = None):
    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    labels = _indices("labels", labels, num_classes)
    predictions = _indices("predictions", predictions, num_classes)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels has {labels.size} entries but predictions has "
                         f"{predictions.size}; pass one prediction per label")
    return labels, predictions


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts ``M[true, predicted]``."""
    labels, predictions = _pair(labels, predictions, num_classes)
    k = int(num_classes)
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k).astype(np.int64)


def accuracy(labels, predictions) -> float:
    """Fraction of exact matches, ``mean_n [y_n = y_hat_n]``."""
    labels, predictions = _pair(labels, predictions)
    return float(np.mean(labels == predictions))


def _per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support (K,) of each class from a confusion matrix."""
    matrix = np.asarray(matrix, dtype=np.int64)
    hits = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)

    def ratio(top, bottom):
        return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)

    return {"precision": ratio(hits, predicted.astype(np.float64)),
            "recall": ratio(hits, actual.astype(np.float64)),
            "f1": ratio(2.0 * hits, (predicted + actual).astype(np.float64)),
            "support": actual, "present": (predicted + actual) > 0}


def _macro(per_class: dict) -> float:
    return float(np.mean(per_class["f1"][per_class["present"]]))


def macro_f1(labels, predictions, num_classes: int) -> float:
    """Mean F1 over the classes present in labels or predictions (see the module docstring)."""
    return _macro(_per_class(confusion_matrix(labels, predictions, num_classes)))


def classification_report(labels, predictions, class_names) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1/support and the confusion matrix.

    ``class_names[k]`` names class index ``k``; the result is plain JSON-ready Python:
    ``{"accuracy", "macro_f1", "per_class": {name: {"precision", "recall", "f1", "support"}},
    "class_names": [...], "confusion": [[...], ...]}`` (rows true, columns predicted).
    """
    names = [str(name) for name in class_names]
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates ({names}); pass one distinct name per "
                         f"class")
    matrix = confusion_matrix(labels, predictions, len(names))
    per_class = _per_class(matrix)
    return {
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "macro_f1": _macro(per_class),
        "per_class": {name: {"precision": float(per_class["precision"][k]),
                             "recall": float(per_class["recall"][k]),
                             "f1": float(per_class["f1"][k]),
                             "support": int(per_class["support"][k])}
                      for k, name in enumerate(names)},
        "class_names": names,
        "confusion": matrix.tolist(),
    }


def plot_confusion(matrix, class_names, path: str | os.PathLike, title: str = "") -> Path:
    """Save the confusion matrix as a PNG: counts in the cells, colours by row (recall).

    Each row is coloured by its share of the true class (``M[i, j] / sum_j M[i, j]``), so rare
    and common classes read alike; the written file replaces ``path`` atomically.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # an optional dependency: say how to get it
        raise MissingExtraError('plotting the confusion matrix needs matplotlib; install it with: '
                          'pip install "rnnkit[plot]"') from None
    counts = np.asarray(matrix)
    names = [str(name) for name in class_names]
    k = len(names)
    if counts.shape != (k, k):
        raise ValueError(f"matrix has shape {counts.shape} but there are {k} class names; "
                         f"pass a ({k}, {k}) matrix")
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)

    side = min(16.0, max(4.0, 0.45 * k + 2.5))
    figure = Figure(figsize=(side + 1.0, side), dpi=110)
    FigureCanvasAgg(figure)  # render with Agg; no pyplot, no global backend change
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 40:
        size = max(5.0, 10.0 - 0.15 * k)
        for i in range(k):
            for j in range(k):
                axes.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=size,
                          color="white" if shares[i, j] > 0.5 else "black")
    slanted = k > 6
    axes.set_xticks(range(k), names, rotation=45 if slanted else 0,
                    ha="right" if slanted else "center")
    axes.set_yticks(range(k), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if title:
        axes.set_title(title)
    figure.tight_layout()

    return save_figure(figure, path)
