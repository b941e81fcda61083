"""Per-step latency at batch 1: every way rnnkit runs a trained model one step at a time.

For LSTM and GRU with H in {16, 32, 64, 128} (input size = H, one layer, no head), side by
side in one run:

* ``session``   rnnkit.runtime.StreamingSession.step from Python (native engine);
* ``c``         the exported C99 step function, timed inside the generated test program
                compiled with -O3 -march=native; ``c_O2`` the same source at portable -O2;
* ``numpy``     the exported NumPy runtime's step;
* ``onnx``      onnxruntime (one intra-op thread) on the exported ONNX model, T=1 per call;
* ``torch``     a torch.nn.LSTM/GRU call on one step with the state passed back in (what a
                PyTorch user writes), under torch.inference_mode.

Medians of several repeats of many calls, in microseconds per step; the ratios in the table are
torch / each. Targets (issue 6): session <= 2 us and C <= 1 us at H = 32 (LSTM). Every export
is checked against the PyTorch model before it is timed (``max_abs_diff_vs_eager``).

    .venv/bin/python benchmarks/bench_latency.py            # the full grid, about 2 minutes
    .venv/bin/python benchmarks/bench_latency.py --quick    # H = 32 only
Writes benchmarks/results/latency.json and prints a table (also saved as latency.txt).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

import rnnkit
from rnnkit.export import OnnxStreamer, export_c, export_numpy, export_onnx
from rnnkit.export.c_build import time_c_step
from rnnkit.runtime import StreamingSession
from rnnkit.training import atomic_write

LAYERS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
TORCH_LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
RESULTS = pathlib.Path(__file__).parent / "results"


def per_call_us(function, calls: int, repeats: int = 7) -> float:
    """Median over ``repeats`` of the mean time of ``calls`` calls, in microseconds."""
    function()  # warm caches and lazy initialization
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def _load_numpy_runtime(folder: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"runtime_{folder.name}", folder / "rnnkit_numpy_runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder)


def bench_point(kind: str, hidden: int, work: pathlib.Path, quick: bool) -> dict:
    torch.manual_seed(0)
    model = LAYERS[kind](hidden, hidden, batch_first=True)
    x = torch.randn(hidden)
    calls = 2000 if quick else 5000
    timings = {}

    session = StreamingSession(model)
    step = session.step
    timings["session"] = per_call_us(lambda: step(x), calls * 10)

    folder = work / f"{kind}{hidden}"
    # Each export checks itself against the eager model (and raises past its limit): timings
    # of an export that computes something else would mean nothing.
    checked = {"c": export_c(model, folder / "c", name="model")}
    timings["c"] = time_c_step(folder / "c", "model") / 1000.0
    timings["c_O2"] = time_c_step(folder / "c", "model", flags=("-std=c99", "-O2")) / 1000.0

    checked["numpy"] = export_numpy(model, folder / "numpy")
    numpy_model = _load_numpy_runtime(folder / "numpy")
    numpy_state = [numpy_model.initial_state(1)]
    x_numpy = x.numpy().reshape(1, hidden)

    def numpy_step():
        _, numpy_state[0] = numpy_model.step(x_numpy, numpy_state[0])

    timings["numpy"] = per_call_us(numpy_step, calls)

    checked["onnx"] = export_onnx(model, folder / "onnx")
    streamer = OnnxStreamer(folder / "onnx", threads=1)
    x_onnx = x.numpy().reshape(1, 1, hidden)
    timings["onnx"] = per_call_us(lambda: streamer(x_onnx), calls)

    reference = TORCH_LAYERS[kind](hidden, hidden, batch_first=True)
    reference.load_state_dict(model.state_dict())
    x_torch = x.reshape(1, 1, hidden)
    torch_state = [None]

    def torch_step():
        _, torch_state[0] = reference(x_torch, torch_state[0])

    with torch.inference_mode():
        timings["torch"] = per_call_us(torch_step, calls // 2)
    return {"cell": kind, "hidden": hidden, "us_per_step": timings,
            "max_abs_diff_vs_eager": {name: report.max_abs_diff for name, report in checked.items()}}


def format_table(rows: list[dict]) -> str:
    engines = ("session", "c", "c_O2", "numpy", "onnx", "torch")
    lines = [f"{'cell':5s} {'H':>4s} " + " ".join(f"{name:>9s}" for name in engines)
             + "   torch/session  torch/c",
             "-" * 102]
    for row in rows:
        t = row["us_per_step"]
        lines.append(f"{row['cell']:5s} {row['hidden']:4d} "
                     + " ".join(f"{t[name]:9.2f}" for name in engines)
                     + f"   {t['torch'] / t['session']:12.0f}x {t['torch'] / t['c']:7.0f}x")
    lines.append("us per step, batch 1, input size = H, medians; one thread everywhere")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="H = 32 only, fewer calls")
    parser.add_argument("--out", default=str(RESULTS / "latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = (32,) if args.quick else (16, 32, 64, 128)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for kind in LAYERS:
            for hidden in sizes:
                rows.append(bench_point(kind, hidden, pathlib.Path(work), args.quick))
                print(f"{kind} H={hidden}: " + ", ".join(
                    f"{name} {value:.2f} us" for name, value in rows[-1]["us_per_step"].items()),
                    flush=True)
    table = format_table(rows)
    print(table)
    out = pathlib.Path(args.out)
    atomic_write(out, json.dumps({
        "benchmark": "per-step latency, batch 1", "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "numpy": np.__version__, "rows": rows}, indent=2) + "\n",
        parents=True)
    atomic_write(out.with_suffix(".txt"), table + "\n", parents=True)


if __name__ == "__main__":
    main()
