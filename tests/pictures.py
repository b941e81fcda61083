"""Checks of the PNGs a run writes that hold with and without matplotlib (the plot extra): a run
without it trains and saves all the same, and writes no pictures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PLOTTING = importlib.util.find_spec("matplotlib") is not None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_picture(path) -> None:
    """A PNG at ``path`` where matplotlib is installed; nothing there where it is not."""
    if PLOTTING:
        assert Path(path).read_bytes()[:8] == PNG_SIGNATURE, path
    else:
        assert not Path(path).exists(), path
