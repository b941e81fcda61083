"""rnnkit's layers under CPU bfloat16 autocast against torch.nn's under the same autocast, and
against rnnkit with the bfloat16 paths turned off (``set_bf16_recurrence(False)``).

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` on a CPU with AMX-BF16 or AVX512-BF16,
an rnnkit LSTM layer (no projection, no lengths) runs oneDNN's bfloat16 LSTM (training: the
fused kernels where faster), and every other layer (GRU, Elman, LSTM with a projection) runs
its input projection in bfloat16 and, where they pay, its recurrent products as bfloat16
products (AMX tiles or AVX512-BF16 dot products) around a float32 state
(``rnnkit/backends/lowered.py``). torch.nn's layers under the same autocast: LSTM on the
same oneDNN primitive, GRU and RNN with every product, the recurrent ones too, in bfloat16.
One call is a training call (forward, backward of the output's sum) or an inference call
(no_grad) on (T, B, H) = (100, B, H) input. The three sides are timed interleaved, each sample
as many calls as take ~20 ms, the order rotating per repeat; medians. Before a point is timed,
each side's output under autocast is compared with torch.nn's float32 output
(``max_abs_error_vs_float32``; rnnkit's must be within max(0.05, 2x torch.nn's)).

    .venv/bin/python benchmarks/bench_autocast.py                # about 4 minutes
    .venv/bin/python benchmarks/bench_autocast.py --threads 1 --cells gru
Writes benchmarks/results/autocast.json and prints a table (x = torch.nn ms / rnnkit ms, so
> 1 means rnnkit under autocast is faster; "off" = rnnkit with the bfloat16 paths off).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import torch

from rnnkit.backends import lowered
from rnnkit.interop import from_torch
from rnnkit.training import atomic_write

RESULTS = pathlib.Path(__file__).parent / "results"
#: error of rnnkit's bfloat16 output (vs float32) always allowed, whatever torch.nn's is
BF16_ERROR_FLOOR = 0.05
CELLS = {
    # torch.nn layer and its options; rnnkit's is from_torch of it (the same weights)
    "lstm": (torch.nn.LSTM, {}),
    "lstm-proj": (torch.nn.LSTM, {"proj_size": "half"}),
    "gru": (torch.nn.GRU, {}),
    "rnn": (torch.nn.RNN, {}),
}


def timed_interleaved(sides: dict, repeats: int, sample_seconds: float = 0.02) -> dict:
    """Median seconds per call of each ``name -> (setup, run)``; ``setup()`` is called before
    a side's sample (it flips the global switch that side needs)."""
    calls = {}
    for name, (setup, run) in sides.items():
        setup()
        run()
        start = time.perf_counter()
        run()
        calls[name] = max(3, round(sample_seconds / max(time.perf_counter() - start, 1e-6)))
    samples = {name: [] for name in sides}
    names = list(sides)
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            setup, run = sides[name]
            setup()
            run()  # one untimed call after switching
            start = time.perf_counter()
            for _ in range(calls[name]):
                run()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def calls_for(layer: torch.nn.Module, x: torch.Tensor):
    def train() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, _ = layer(x)
        output.float().sum().backward()

    def infer() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x)

    return {"train": train, "infer": infer}


def error_vs_float32(ours: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> dict:
    """max |output under bfloat16 autocast - torch.nn's float32 output| for rnnkit's layer and
    for torch.nn's; rnnkit's must be of the same order (bfloat16 keeps 8 mantissa bits, so
    ~1e-2 on these tanh-bounded outputs), or its timings would be of a wrong computation.
    Checked with gradients on and under no_grad, as each is timed: the routes differ (an
    LSTM's training call may take the fused kernels where inference takes oneDNN's)."""
    with torch.no_grad():
        exact = reference(x)[0]
    errors = {}
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            for name, layer in (("rnnkit", ours), ("torch.nn", reference)):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    output = layer(x)[0]
                error = (output.detach().float() - exact).abs().max().item()
                errors[name] = max(errors.get(name, 0.0), error)
    limit = max(BF16_ERROR_FLOOR, 2 * errors["torch.nn"])
    if not errors["rnnkit"] <= limit:
        raise SystemExit(f"rnnkit under bfloat16 autocast is {errors['rnnkit']:.2e} from float32 "
                         f"(torch.nn: {errors['torch.nn']:.2e}, limit {limit:.2e}); not timing it")
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "autocast.json"))
    args = parser.parse_args()
    if not lowered.cpu_bf16_instructions():
        raise SystemExit("this CPU has neither AMX-BF16 nor AVX512-BF16: rnnkit keeps float32 "
                         "under CPU bfloat16 autocast here, so there is nothing to compare")
    torch.set_num_threads(args.threads)
    points = [(16, 128), (64, 128), (16, 256), (64, 256), (16, 512), (64, 512)]
    rows = []
    print(f"T = 100, {args.threads} thread(s), CPU bfloat16 autocast; median ms per call")
    print(f"{'cell':9} {'mode':5} {'B':>3} {'H':>4} | {'rnnkit':>8} {'torch.nn':>8} {'off':>8} | "
          f"{'x torch':>7} {'x off':>6}")

    def route(on: bool):
        return lambda: lowered.set_bf16_recurrence(on)

    try:
        for cell in args.cells.split(","):
            torch_type, options = CELLS[cell]
            for batch, hidden in points:
                kwargs = {k: hidden // 2 if v == "half" else v for k, v in options.items()}
                torch.manual_seed(0)
                reference = torch_type(hidden, hidden, **kwargs)
                ours = from_torch(reference)
                x = torch.randn(100, batch, hidden, requires_grad=True)
                errors = error_vs_float32(ours, reference, x)
                ours_calls, torch_calls = calls_for(ours, x), calls_for(reference, x)
                for mode in ("train", "infer"):
                    seconds = timed_interleaved({
                        "rnnkit": (route(True), ours_calls[mode]),
                        "torch.nn": (route(True), torch_calls[mode]),
                        "off": (route(False), ours_calls[mode]),
                    }, args.repeats)
                    row = {"cell": cell, "mode": mode, "B": batch, "H": hidden,
                           "ms": {k: v * 1e3 for k, v in seconds.items()},
                           "speedup_vs_torch": seconds["torch.nn"] / seconds["rnnkit"],
                           "speedup_vs_off": seconds["off"] / seconds["rnnkit"],
                           "max_abs_error_vs_float32": errors}
                    rows.append(row)
                    ms = row["ms"]
                    print(f"{cell:9} {mode:5} {batch:3d} {hidden:4d} | {ms['rnnkit']:8.2f} "
                          f"{ms['torch.nn']:8.2f} {ms['off']:8.2f} | "
                          f"{row['speedup_vs_torch']:7.2f} {row['speedup_vs_off']:6.2f}",
                          flush=True)
    finally:
        lowered.set_bf16_recurrence(True)
    out = pathlib.Path(args.out)
    atomic_write(out, json.dumps({"threads": args.threads, "T": 100, "torch": torch.__version__,
                               "machine": platform.processor() or platform.machine(),
                               "repeats": args.repeats, "rows": rows}, indent=1), parents=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
