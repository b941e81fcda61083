"""Metrics of a run: one JSON object per line in ``metrics.jsonl``, and a PNG of the curves.

Records look like ``{"split": "train", "step": 100, "loss": 1.9, "lr": 0.002, ...}`` and
``{"split": "validation", "step": 500, "loss": 1.2, ...}``. A resumed run first drops the
records past the checkpoint it resumes from, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from pathlib import Path

log = logging.getLogger("rnnkit.training")


def perplexity_of_bits(bits: float) -> float:
    """2 ** bits, the perplexity of a model scoring ``bits`` per symbol; inf past float64's
    range (a diverged model's score), where ``2.0 ** bits`` raises OverflowError."""
    return math.inf if bits >= 1024 else 2.0 ** bits  # NaN stays NaN


def finite_or_null(value):
    """``value`` with every NaN and infinity (at any depth of dicts, lists and tuples) made
    None, for strict JSON: Python writes them as bare ``NaN``/``Infinity``, which other parsers
    (JavaScript's, jq) reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(inner) for inner in value]
    return value


class MetricsLog:
    """Appends records to a JSON-lines file, flushing each one (a crash loses nothing)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def truncate_after(self, step: int, *, train_record_pending: bool = False) -> None:
        """Drop records with ``step`` greater than ``step`` (resuming from that step).

        ``train_record_pending``: the checkpoint of ``step`` holds steps not yet logged (its
        window is not empty), so a training record of ``step`` in the file was written after
        that checkpoint (by a run killed before it saved again) and goes too: the resumed run
        writes it, and keeping it made the record appear twice."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _step_of(line) <= step
                and not (train_record_pending and _is_training_record_of(line, step))]
        # atomically: a full disk or a kill part-way must not cut the run's history short
        from .checkpoint import atomic_write

        atomic_write(self.path, "".join(line + "\n" for line in kept).encode("utf-8"))

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(finite_or_null(record), allow_nan=False) + "\n")

    def read(self) -> list[dict]:
        """Every intact record (a line torn by a crash is left out)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            record = _parse(line)
            if record is not None:
                records.append(record)
        return records


def _parse(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _is_training_record_of(line: str, step: int) -> bool:
    record = _parse(line)
    return record is not None and record.get("split") == "train" and record.get("step") == step


def _step_of(line: str) -> int:
    record = _parse(line)
    if record is None or not isinstance(record.get("step", 0), int):
        return 1 << 62  # a torn last line from a crash: drop it
    return record.get("step", 0)


@functools.lru_cache(maxsize=None)
def _say_once(message: str) -> None:
    """Once per process: an ensemble or a backtest trains (and plots) several times."""
    log.info("%s", message)


def plot_curves(records: list[dict], path: str | os.PathLike, *, title: str = "",
                unit: str = "loss") -> Path | None:
    """Training and validation loss against step, saved as a PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never opens a window
        from matplotlib import pyplot
    except ImportError:
        _say_once("matplotlib is not installed, so no plot of the curves was written; "
                  "pip install 'rnnkit[plot]' adds it")
        return None
    figure, axes = pyplot.subplots(figsize=(7, 4), dpi=110)
    for split, style in (("train", dict(alpha=0.6, linewidth=1)),
                         ("validation", dict(marker="o", markersize=3, linewidth=1.5))):
        points = [(r["step"], math.nan if r[unit] is None else r[unit])  # None: written NaN/inf
                  for r in records if r.get("split") == split and unit in r]
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, label=split, **style)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel(unit)
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend()
    else:  # stopped before its first record (Ctrl-C early on)
        axes.text(0.5, 0.5, "no records yet", ha="center", va="center",
                  transform=axes.transAxes)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = save_figure(figure, path)  # atomic: a resumed run's plot is replaced, never torn
    pyplot.close(figure)
    return path


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write a matplotlib ``Figure`` as a PNG that replaces ``path`` atomically.

    Rendered into memory first, so an interrupted save never leaves a half-written picture
    where a previous good one was."""
    import io

    from .checkpoint import atomic_write

    buffer = io.BytesIO()
    # the mark lets a later call tell its own picture from a user's file at the same path
    figure.savefig(buffer, format="png", metadata={"Software": PICTURE_MARK})
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path


#: the PNG "Software" text every picture rnnkit writes carries (see :func:`drawn_by_rnnkit`)
PICTURE_MARK = "rnnkit"


def drawn_by_rnnkit(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PNG file that :func:`save_figure` wrote (its Software text chunk
    says rnnkit): the only kind of file a picture may replace."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return (head.startswith(b"\x89PNG\r\n\x1a\n")
            and b"tEXtSoftware\x00" + PICTURE_MARK.encode() in head)
