"""Classification metrics against scikit-learn and hand-worked examples, and the confusion PNG.

Oracles: sklearn.metrics (confusion_matrix, accuracy_score, f1_score with average="macro" over
the classes present, precision_recall_fscore_support) on random labels over several seeds,
with some classes left out on purpose; small examples worked by hand; the PNG signature.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from rnnkit.tasks.classify.metrics import (
    accuracy, classification_report, confusion_matrix, macro_f1, plot_confusion,
)

needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="scikit-learn is not installed")
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed")


def random_labels(seed: int, k: int = 6, n: int = 200):
    """Labels and noisy predictions; class k-1 never occurs, class k-2 is never predicted."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k - 1, size=n)
    predictions = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, size=n))
    predictions[predictions == k - 2] = 0
    return labels, predictions


@needs_sklearn
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_against_sklearn(seed):
    from sklearn import metrics as sk

    k = 6
    labels, predictions = random_labels(seed, k)
    present = sorted(set(labels.tolist()) | set(predictions.tolist()))
    matrix = confusion_matrix(labels, predictions, k)
    assert matrix.dtype == np.int64 and matrix.shape == (k, k)
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(labels, predictions,
                                                              labels=list(range(k))))
    assert accuracy(labels, predictions) == pytest.approx(sk.accuracy_score(labels, predictions))
    want = sk.f1_score(labels, predictions, average="macro", labels=present, zero_division=0)
    assert macro_f1(labels, predictions, k) == pytest.approx(want, rel=1e-12)

    names = [f"c{i}" for i in range(k)]
    report = classification_report(labels, predictions, names)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, predictions, labels=list(range(k)), zero_division=0)
    for i, name in enumerate(names):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision[i], rel=1e-12)
        assert row["recall"] == pytest.approx(recall[i], rel=1e-12)
        assert row["f1"] == pytest.approx(f1[i], rel=1e-12)
        assert row["support"] == support[i]
    assert report["macro_f1"] == pytest.approx(want, rel=1e-12)
    assert report["confusion"] == matrix.tolist()
    json.dumps(report)  # plain Python all the way down


def test_hand_example():
    # true:      0 0 0 1 1 2
    # predicted: 0 0 1 1 0 1
    labels, predictions = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 1]
    matrix = confusion_matrix(labels, predictions, 4)
    np.testing.assert_array_equal(matrix, [[2, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0],
                                           [0, 0, 0, 0]])
    assert accuracy(labels, predictions) == pytest.approx(3 / 6)
    # class 0: P = 2/3, R = 2/3, F1 = 2/3; class 1: P = 1/3, R = 1/2, F1 = 2*1/(3+2) = 0.4;
    # class 2: never predicted, F1 = 0; class 3: absent from both, left out of the mean.
    assert macro_f1(labels, predictions, 4) == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
    report = classification_report(labels, predictions, ["a", "b", "c", "d"])
    assert report["per_class"]["b"] == pytest.approx(
        {"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "support": 2})
    assert report["per_class"]["c"]["f1"] == 0.0 and report["per_class"]["d"]["support"] == 0
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["class_names"] == ["a", "b", "c", "d"]


def test_perfect_and_all_wrong():
    labels = np.array([0, 1, 2, 2])
    assert accuracy(labels, labels) == 1.0 and macro_f1(labels, labels, 3) == 1.0
    assert accuracy(labels, (labels + 1) % 3) == 0.0
    assert macro_f1(labels, (labels + 1) % 3, 3) == 0.0


@pytest.mark.parametrize("call, args, match", [
    (confusion_matrix, ([0, 1], [0, 3], 3), "outside 0..2"),
    (confusion_matrix, ([0, 1], [0], 2), "one prediction per label"),
    (confusion_matrix, ([0.0, 1.0], [0, 1], 2), "integer class indices"),
    (confusion_matrix, ([0, 1], [0, 1], 0), "positive integer"),
    (accuracy, ([], []), "empty"),
    (macro_f1, ([[0, 1]], [[0, 1]], 2), r"shape \(N,\)"),
    (classification_report, ([0, 1], [0, 1], ["a", "a"]), "duplicates"),
    # the report takes no num_classes: the message named only that
    (classification_report, ([0, 2], [0, 1], ["a", "b"]), r"outside 0..1; .*class_names"),
])
def test_errors_are_single_lines(call, args, match):
    with pytest.raises(ValueError, match=match) as info:
        call(*args)
    assert "\n" not in str(info.value)


@needs_matplotlib
def test_plot_confusion_writes_a_png(tmp_path):
    labels, predictions = random_labels(0, k=4)
    names = ["walk", "run", "sit", "stand"]
    matrix = confusion_matrix(labels, predictions, 4)
    path = tmp_path / "confusion.png"
    path.write_bytes(b"old")  # replaced whole, never left half-written
    assert plot_confusion(matrix, names, path, title="test") == path
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["confusion.png"]  # no temporary left
    with pytest.raises(ValueError, match="4 class names"):
        plot_confusion(matrix[:3, :3], names, tmp_path / "bad.png")


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "rnnkit\[plot\]"') as info:
        plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "c.png")
    assert "\n" not in str(info.value)
