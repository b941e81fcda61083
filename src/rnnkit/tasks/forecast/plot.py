"""The forecast picture: history, the held-out truth, the forecast and its interval, as a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnkit.errors import MissingExtraError
from rnnkit.training.metrics import save_figure


def plot_forecast(time, history: np.ndarray, actual: np.ndarray | None, forecast: dict,
                  path: str | os.PathLike, *, baselines: dict | None = None,
                  column_names: list[str] | None = None, title: str = "",
                  interval: float | None = None) -> Path:
    """One panel per target column; written atomically.

    time: (N + H,) stamps of the history rows then the forecast rows; history (N, C);
    actual (H, C) or None (a forecast past the data's end); forecast {"point", "lower",
    "upper"} each (H, C); baselines {name: (H, C)} drawn dashed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError('plotting the forecast needs matplotlib; install it with: '
                          'pip install "rnnkit[plot]"') from None
    history = np.asarray(history).reshape(len(history), -1)
    columns = history.shape[1]
    n = len(history)
    past, future = np.asarray(time[:n]), np.asarray(time[n:])
    names = column_names or [f"column {i}" for i in range(columns)]
    figure = Figure(figsize=(9, 3.2 * columns), dpi=110)
    FigureCanvasAgg(figure)  # Agg only: no pyplot, no window, no global backend change
    for column in range(columns):
        axes = figure.add_subplot(columns, 1, column + 1)
        axes.plot(past, history[:, column], color="0.3", linewidth=1, label="history")
        if actual is not None:
            axes.plot(future, np.asarray(actual).reshape(len(future), -1)[:, column],
                      color="black", linewidth=1.5, marker=".", label="held out")
        point = forecast["point"].reshape(len(future), -1)[:, column]
        axes.plot(future, point, color="tab:blue", linewidth=2, label="forecast")
        lower = forecast["lower"].reshape(len(future), -1)[:, column]
        upper = forecast["upper"].reshape(len(future), -1)[:, column]
        if np.isfinite(lower).all() and np.isfinite(upper).all():
            label = f"{interval:.0%} interval" if interval else "interval"
            axes.fill_between(future, lower, upper, color="tab:blue", alpha=0.2, label=label)
        colors = ("tab:orange", "tab:green", "tab:red", "tab:purple")
        for (name, values), color in zip((baselines or {}).items(), colors):
            axes.plot(future, np.asarray(values).reshape(len(future), -1)[:, column],
                      linestyle="--", linewidth=1, color=color, label=name)
        axes.set_ylabel(names[column])
        axes.grid(alpha=0.3)
        if column == 0:
            axes.legend(fontsize=8, ncol=3)
            if title:
                axes.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)
