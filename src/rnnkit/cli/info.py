"""`rnnkit info`: what this installation can do here."""

from __future__ import annotations

import platform
import sys

import torch

import rnnkit
from rnnkit.backends import backend_report


def collect_info() -> dict:
    """Versions, threads, CPU features and which backends are usable (and why not)."""
    import numpy

    return {
        "rnnkit": rnnkit.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": torch.backends.mkl.is_available(),
        "onednn": torch.backends.mkldnn.is_available(),
        "cuda": torch.cuda.is_available(),
        "backends": [
            {"name": name, "usable": usable, "detail": detail}
            for name, usable, detail in backend_report()
        ],
    }


def format_info(info: dict) -> str:
    lines = [f"{key:16s} {info[key]}" for key in info if key != "backends"]
    lines.append("backends:")
    for backend in info["backends"]:
        mark = "usable" if backend["usable"] else "not usable"
        lines.append(f"  {backend['name']:12s} {mark:11s} {backend['detail']}")
    return "\n".join(lines)
