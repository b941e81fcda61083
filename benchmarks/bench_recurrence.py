"""rnnkit fused vs torch.nn (and vs the reference backend): training and inference speed.

Measured interleaved in one run, medians of repeats, on the grid of issue 3:
H in {32, 64, 128, 256, 512}, B in {1, 16, 64}, T=100 (and T=500 for a few points), with 1 and
2 threads; plus the batch-1 single-step latency from Python for H in {16, 32, 64, 128, 256}.
Achieved GFLOP/s (the model's multiply-adds x 2, backward counted as twice the forward) is
reported against the FMA peak measured on this machine in the same run. Before a point is
timed, rnnkit's output and input gradient are compared with torch.nn's on the same weights
(``max_abs_diff_vs_torch`` in the JSON; the run stops past 1e-3). Where ``backend="auto"``
runs an LSTM's inference on oneDNN's LSTM instead of the fused kernels (rnnkit.backends.onednn)
that is timed too, as the "x auto" column (``speedup_vs_torch_auto``).

    .venv/bin/python benchmarks/bench_recurrence.py            # full grid, a few minutes
    .venv/bin/python benchmarks/bench_recurrence.py --quick    # a few points
    .venv/bin/python benchmarks/bench_recurrence.py --steps 1,4,16 --batch 16,64 \
        --hidden 64,128,256 --threads 2 --no-single-step      # short calls
Writes benchmarks/results/recurrence.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import torch

import rnnkit
from rnnkit.backends.fused import FusedStepper
from rnnkit.backends.fused.build import load_error
from rnnkit.backends.onednn import onednn_inference_pays
from rnnkit.training import atomic_write

TORCH_LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
RNNKIT_LAYERS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
#: float32, summed over 100 steps of H up to 512: rounding reaches ~1e-5, a wrong kernel ~1e-1
AGREEMENT_LIMIT = 1e-3


def cpu_name() -> str:
    """The CPU's model name and family (results from different hosts differ by 2x; say which
    one ran): "AMD EPYC (family 26, model 2)" on Linux, the platform's word elsewhere."""
    fields = {}
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def forward_flops(kind: str, steps: int, batch: int, hidden: int) -> float:
    """Multiply-adds x 2 of one forward pass (input projection + recurrence), input size = H."""
    return 2.0 * steps * batch * GATES[kind] * hidden * (hidden + hidden)


def median_time(function, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def calls_per_sample(function, target_seconds: float = 0.02) -> int:
    """How many back-to-back calls make one timing sample of about ``target_seconds``: a single
    sub-millisecond call is at the mercy of the timer and of one scheduler hiccup."""
    single = median_time(function, 3)
    return max(1, min(200, round(target_seconds / max(single, 1e-6))))


def time_per_call(function, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def agreement_with_torch(models, x) -> float:
    """Largest |rnnkit - torch.nn| over the outputs and the gradient of the input, and over
    the outputs under no_grad (the inference timings run other kernels there, e.g. the LSTM
    inference op), for every rnnkit contender: a speed-up is only worth reporting for a
    computation that agrees."""
    def run(model):
        x.grad = None
        output, _ = model(x)
        output.sum().backward()
        with torch.no_grad():
            inferred, _ = model(x)
        return output.detach(), x.grad.clone(), inferred

    expected = run(models["torch"])
    worst = 0.0
    for name, model in models.items():
        if name == "torch":
            continue
        for got, want in zip(run(model), expected):
            difference = (got - want).abs().max().item()
            if not difference <= AGREEMENT_LIMIT:  # also catches NaN
                raise SystemExit(f"{name} disagrees with torch.nn by {difference:.2e} (limit "
                                 f"{AGREEMENT_LIMIT:.0e}); timings of a wrong result mean nothing")
            worst = max(worst, difference)
    x.grad = None
    return worst


def bench_point(kind, hidden, batch, steps, threads, repeats, with_reference):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    reference_layer = TORCH_LAYERS[kind](hidden, hidden)
    models = {"torch": reference_layer}
    for backend in ("fused", "reference") if with_reference else ("fused",):
        model = RNNKIT_LAYERS[kind](hidden, hidden, backend=backend)
        model.load_state_dict(reference_layer.state_dict())
        models[backend] = model
    x = torch.randn(steps, batch, hidden, requires_grad=True)
    agreement = agreement_with_torch(models, x)
    # backend="auto" differs from "fused" in one place, LSTM inference it sends to oneDNN's
    # LSTM (rnnkit.backends.onednn): timed there as the "auto" side, in inference only
    auto = RNNKIT_LAYERS[kind](hidden, hidden)
    auto.load_state_dict(reference_layer.state_dict())
    auto_differs = kind == "lstm" and onednn_inference_pays(auto.stack.layers[0].cell, x, None,
                                                            False)

    def train(model):
        def run():
            output, _ = model(x)
            output.sum().backward()
        return run

    def infer(model):
        def run():
            with torch.no_grad():
                model(x)
        return run

    results = {"max_abs_diff_vs_torch": agreement}
    for mode, make in (("train", train), ("infer", infer)):
        timed = {**models, "auto": auto} if mode == "infer" and auto_differs else models
        runs = {name: make(model) for name, model in timed.items()}
        for run in runs.values():  # warm-up (and the fused build on first use)
            run()
        calls = {name: calls_per_sample(run) for name, run in runs.items()}
        samples = {name: [] for name in runs}
        for _ in range(repeats):  # interleaved: each repeat times every contender once
            for name, run in runs.items():
                samples[name].append(time_per_call(run, calls[name]))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        flops = forward_flops(kind, steps, batch, hidden) * (3.0 if mode == "train" else 1.0)
        results[mode] = {
            "seconds": medians,
            "speedup_vs_torch": medians["torch"] / medians["fused"],
            "fused_gflops": flops / medians["fused"] / 1e9,
        }
        if "reference" in medians:
            results[mode]["speedup_vs_reference"] = medians["reference"] / medians["fused"]
        if "auto" in medians:
            results[mode]["speedup_vs_torch_auto"] = medians["torch"] / medians["auto"]
    return results


def bench_single_step(kind, hidden, repeats=20000):
    """Batch-1 latency of one step from Python (us): rnnkit's FusedStepper vs a torch.nn cell
    call and an nn layer call with one time step (what a PyTorch user would write)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch_cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[kind](hidden, hidden)
    torch_layer = TORCH_LAYERS[kind](hidden, hidden)
    cell = {"lstm": rnnkit.LSTMCell, "gru": rnnkit.GRUCell, "rnn": rnnkit.RNNCell}[kind](hidden, hidden)
    cell.load_state_dict(torch_cell.state_dict())
    stepper = FusedStepper(cell)
    x = torch.randn(1, hidden)
    x_seq = x.unsqueeze(0)
    state = (torch.zeros(1, hidden), torch.zeros(1, hidden)) if kind == "lstm" else torch.zeros(1, hidden)
    calls = {
        "rnnkit_stepper": lambda: stepper.step(x),
        "torch_cell": lambda: torch_cell(x, state),
        "torch_layer": lambda: torch_layer(x_seq),
    }
    samples = {name: [] for name in calls}
    with torch.no_grad():
        for _ in range(5):  # interleaved rounds, median per contender
            for name, call in calls.items():
                count = repeats if name == "rnnkit_stepper" else repeats // 10
                for _ in range(count // 10):
                    call()
                start = time.perf_counter()
                for _ in range(count):
                    call()
                samples[name].append((time.perf_counter() - start) / count * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few grid points only")
    parser.add_argument("--repeats", type=int,
                        help="timing rounds per point (default 5, and 3 where H x B >= 8192)")
    parser.add_argument("--cells", default="gru,rnn,lstm")
    parser.add_argument("--hidden", help="comma-separated hidden sizes (default: the grid)")
    parser.add_argument("--batch", help="comma-separated batch sizes (default: the grid)")
    parser.add_argument("--threads", help="comma-separated thread counts (default: 1,2)")
    parser.add_argument("--steps", help="comma-separated sequence lengths T (default: 100, and "
                                        "500 for a few points of the full grid)")
    parser.add_argument("--no-single-step", action="store_true", help="skip the single-step table")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "recurrence.json"))
    args = parser.parse_args()
    error = load_error()
    if error:
        raise SystemExit(f"the fused backend is not usable here: {error}")
    # The best of several probes: a peak is what the cores can do, and a probe that another
    # process or a descheduled thread slowed (one run measured 117 GFLOP/s for 2 threads
    # against 230 in the next) would inflate every %peak of the run.
    def numbers(text, default):
        return tuple(int(v) for v in text.split(",")) if text else default

    hiddens = numbers(args.hidden, (64, 256) if args.quick else (32, 64, 128, 256, 512))
    batches = numbers(args.batch, (1, 16) if args.quick else (1, 16, 64))
    thread_counts = numbers(args.threads, (1,) if args.quick else (1, 2))
    # for every thread count timed (%peak divides by it), and 1 and 2 for the summary
    peak = {threads: max(torch.ops.rnnkit.fma_peak(20_000_000, threads) for _ in range(5)) / 1e9
            for threads in sorted({1, 2, *thread_counts})}
    lengths = numbers(args.steps, (100,))
    partial = args.quick or args.hidden or args.batch or args.steps
    rows = []
    simd_bits = torch.ops.rnnkit.simd_width()
    kernels = f"{simd_bits}-bit SIMD" if simd_bits else "portable loops"
    print(f"{cpu_name()}, fused kernels: {kernels}")
    print(f"FMA peak: {peak[1]:.0f} GFLOP/s (1 thread), {peak[2]:.0f} GFLOP/s (2 threads)")
    header = (f"{'cell':5s} {'thr':>3s} {'B':>3s} {'H':>4s} {'T':>4s} | "
              f"{'train ms torch':>14s} {'fused':>8s} {'x':>6s} {'%peak':>6s} | "
              f"{'infer ms torch':>14s} {'fused':>8s} {'x':>6s} {'x auto':>6s} | {'x ref':>6s}")
    print(header)
    print("-" * len(header))
    points = [(h, b, t) for t in lengths for h in hiddens for b in batches]
    if not partial:
        points += [(64, 16, 500), (256, 16, 500)]
    for kind in args.cells.split(","):
        for threads in thread_counts:
            for hidden, batch, steps in points:
                with_reference = hidden <= 128 and batch <= 16 and steps == 100
                # large points take long: fewer rounds, unless --repeats asks for a number
                repeats = args.repeats or (5 if hidden * batch < 8192 else 3)
                result = bench_point(kind, hidden, batch, steps, threads, repeats,
                                     with_reference)
                train, infer = result["train"], result["infer"]
                rows.append({"cell": kind, "threads": threads, "batch": batch, "hidden": hidden,
                             "steps": steps, "repeats": repeats, **result})
                ref = train.get("speedup_vs_reference")
                auto = infer.get("speedup_vs_torch_auto")
                print(f"{kind:5s} {threads:3d} {batch:3d} {hidden:4d} {steps:4d} | "
                      f"{train['seconds']['torch'] * 1e3:14.2f} {train['seconds']['fused'] * 1e3:8.2f} "
                      f"{train['speedup_vs_torch']:6.2f} {100 * train['fused_gflops'] / peak[threads]:5.0f}% | "
                      f"{infer['seconds']['torch'] * 1e3:14.2f} {infer['seconds']['fused'] * 1e3:8.2f} "
                      f"{infer['speedup_vs_torch']:6.2f} {'' if auto is None else f'{auto:6.2f}':>6s} | "
                      f"{'' if ref is None else f'{ref:6.1f}'}",
                      flush=True)
    steps_rows = []
    print("\nbatch-1 single step from Python (us, 1 thread)")
    print(f"{'cell':5s} {'H':>4s} {'rnnkit':>8s} {'torch cell':>11s} {'torch layer':>12s}")
    for kind in [] if args.no_single_step else args.cells.split(","):
        for hidden in (16, 32, 64, 128, 256):
            timing = bench_single_step(kind, hidden)
            steps_rows.append({"cell": kind, "hidden": hidden, **timing})
            print(f"{kind:5s} {hidden:4d} {timing['rnnkit_stepper']:8.2f} {timing['torch_cell']:11.1f} "
                  f"{timing['torch_layer']:12.1f}", flush=True)
    out = pathlib.Path(args.out)
    atomic_write(out, json.dumps({
        "machine": cpu_name(), "simd_bits": simd_bits, "torch": torch.__version__,
        "fma_peak_gflops": peak, "grid": rows, "single_step_us": steps_rows,
    }, indent=2), parents=True)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
