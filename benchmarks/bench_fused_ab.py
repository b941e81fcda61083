"""A/B of two fused-backend choices, each toggled at run time and measured interleaved in one
process (so machine drift hits both sides alike):

* ``cache``: the large-buffer cache (``rnnkit.backends.fused.set_buffer_cache_limit``) on vs
  off, training steps of each cell at B = 64 and 16;
* ``inloop``: LSTM inference with the input projection inside the time loop
  (``rnnkit::lstm_inference``, forced on) vs one projection GEMM then the scan, over H and B;
  the table says which one the shipped rule picks at each point;
* ``engine``: the dense engine (``rnnkit.backends.fused.set_dense_engine``) "mkl" vs "packed",
  training and inference steps of each cell; the table says which one the host rule picks;
* ``bf16``: under CPU bfloat16 autocast, the recurrent products in bfloat16 (AMX tiles, or
  AVX512-BF16 dot products; forced on) vs the float32 GEMM, both after the bfloat16 input projection, over B
  and H; the table says which one the shipped rule (``bf16_products_pay``) picks;
* ``lstm-route``: under the same autocast, a plain LSTM layer on the fused kernels (bfloat16
  projection, then tile products where ``bf16_products_pay``, float32 state) vs oneDNN's
  bfloat16 LSTM (what torch.nn.LSTM runs), training and inference; the table says which one
  ships (``fused_lstm_pays_bf16(batch, hidden, training)``: the fused kernels where it says
  they pay, oneDNN otherwise);
* ``onednn-route``: float32 LSTM inference on the fused kernels vs oneDNN's LSTM (the route of
  ``rnnkit.backends.onednn``, forced both ways), over H, B and short to long T (``--hidden``,
  ``--batch``, ``--steps`` set that grid); the table says which one ships
  (``onednn_inference_pays``);
* ``fold``: LSTM and Elman layers with b_ih added in the recurrence (forced at every size) vs
  in the input projection, training and inference; the table says which one the shipped rule
  (``folds_input_bias``) picks, and "in-loop" where LSTM inference projects inside its time
  loop, which the fold does not touch.

    .venv/bin/python benchmarks/bench_fused_ab.py              # all seven, about 20 minutes
    .venv/bin/python benchmarks/bench_fused_ab.py --only engine --threads 2
    .venv/bin/python benchmarks/bench_fused_ab.py --only onednn-route --hidden 128,160,192,224 \
        --batch 12,16,32,64 --steps 64,100
Writes benchmarks/results/fused_ab.json and prints a table (median ms, ratio = B side / A side,
so > 1 means the A side is faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import time

import torch

import rnnkit
from rnnkit.backends import BACKENDS
from rnnkit.backends import fused
from rnnkit.training import atomic_write

LAYERS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


def sides_agree(output, switch, tolerance: float) -> float:
    """The largest |A - B| of ``output()`` (a tensor) on the two sides; a SystemExit past
    ``tolerance``: a side that is faster because it computes something else is no result."""
    results = []
    for side in (True, False):
        switch(side)
        with torch.no_grad():
            results.append(output().float())
    difference = (results[0] - results[1]).abs().max().item() if results[0].numel() else 0.0
    if not difference <= tolerance:  # also NaN
        raise SystemExit(f"the two sides disagree by {difference:.3g} (> {tolerance:g}); "
                         f"the comparison would be of different computations")
    return difference


#: |A - B| allowed on outputs of size <= 1: float32 sides differ by summation order only;
#: a bfloat16 side by its rounding (8 significant bits) over 100 steps
FLOAT32_AGREEMENT, BF16_AGREEMENT = 1e-4, 0.1


def interleaved(run_a, run_b, switch, repeats: int, sample_seconds: float = 0.02) -> tuple[float, float]:
    """Median seconds per call of run_a and run_b; switch(True/False) selects the side. A
    sample is as many back-to-back calls as take about ``sample_seconds`` (at least 3): with
    3 calls of ~0.2 ms, two identical sides differed by up to 15%."""
    switch(True)
    run_a()
    start = time.perf_counter()
    run_a()
    calls = max(3, round(sample_seconds / max(time.perf_counter() - start, 1e-6)))
    samples = {True: [], False: []}
    for repeat in range(repeats):
        # alternate which side goes first, so that neither always runs right after a switch
        pair = ((True, run_a), (False, run_b))
        for side, run in pair if repeat % 2 == 0 else pair[::-1]:
            switch(side)
            run()  # one untimed call after switching
            start = time.perf_counter()
            for _ in range(calls):
                run()
            samples[side].append((time.perf_counter() - start) / calls)
    return statistics.median(samples[True]), statistics.median(samples[False])


def training_and_inference(model, x) -> tuple:
    """("train", a forward and backward of ``model`` on x) and ("infer", a forward under
    no_grad): the two float32 calls the engine and fold A/Bs time."""
    def train():
        output, _ = model(x)
        output.sum().backward()

    def infer():
        with torch.no_grad():
            model(x)

    return ("train", train), ("infer", infer)


def cache_rows(repeats: int) -> list[dict]:
    def switch(on: bool) -> None:
        fused.set_buffer_cache_limit((1 << 30) if on else 0)

    rows = []
    for kind, layer in LAYERS.items():
        for batch, hidden in ((64, 64), (64, 256), (16, 128)):
            model = layer(hidden, hidden, backend="fused")
            x = torch.randn(100, batch, hidden, requires_grad=True)

            def train():
                output, _ = model(x)
                output.sum().backward()

            on, off = interleaved(train, train, switch, repeats)
            rows.append({"test": "cache", "cell": kind, "B": batch, "H": hidden,
                         "A (cache on) ms": on * 1e3, "B (cache off) ms": off * 1e3,
                         "ratio": off / on, "max |A-B|": sides_agree(
                             lambda: model(x)[0], switch, FLOAT32_AGREEMENT)})
    switch(True)
    return rows


def inloop_rows(repeats: int) -> list[dict]:
    """In-loop projection forced on (the shipped rule's limits lifted) vs project + scan; the
    ``shipped`` column says which side the shipped rule picks at that point."""
    from rnnkit.backends.fused import backend as fused_backend

    limits = (fused_backend._MIN_ROWS_PER_THREAD_IN_LOOP, fused_backend._MAX_WEIGHT_BYTES_IN_LOOP)
    shipped_weight_limit = fused_backend._l2_cache_bytes() if limits[1] is None else limits[1]
    shipped = BACKENDS["fused"]
    two_step = dataclasses.replace(shipped, run_without_grad=None)

    def switch(in_loop: bool) -> None:
        BACKENDS["fused"] = shipped if in_loop else two_step

    rows = []
    try:
        fused_backend._MIN_ROWS_PER_THREAD_IN_LOOP = 1
        fused_backend._MAX_WEIGHT_BYTES_IN_LOOP = float("inf")
        for hidden in (64, 128, 256, 512):
            for batch in (4, 16, 64):
                model = rnnkit.LSTM(hidden, hidden, backend="fused")
                x = torch.randn(100, batch, hidden)

                def infer():
                    with torch.no_grad():
                        model(x)

                in_loop, separate = interleaved(infer, infer, switch, repeats)
                difference = sides_agree(lambda: model(x)[0], switch, FLOAT32_AGREEMENT)
                weight_bytes = 4 * hidden * 2 * hidden * 4
                picks = (batch >= limits[0] * torch.get_num_threads()
                         and weight_bytes < shipped_weight_limit)
                rows.append({"test": "inloop", "cell": "lstm", "B": batch, "H": hidden,
                             "A (in-loop) ms": in_loop * 1e3,
                             "B (project + scan) ms": separate * 1e3, "ratio": separate / in_loop,
                             "max |A-B|": difference,
                             "shipped": "in-loop" if picks else "project + scan"})
    finally:
        BACKENDS["fused"] = shipped
        fused_backend._MIN_ROWS_PER_THREAD_IN_LOOP, fused_backend._MAX_WEIGHT_BYTES_IN_LOOP = limits
    return rows


def engine_rows(repeats: int) -> list[dict]:
    """The large dense products on MKL (A) vs the packed GEMM + oneDNN (B), through the layers."""
    host = fused.host_dense_engine()

    def switch(mkl: bool) -> None:
        fused.set_dense_engine("mkl" if mkl else "packed")

    rows = []
    try:
        for kind, layer in LAYERS.items():
            for batch, hidden in ((1, 128), (16, 64), (16, 256), (64, 128), (64, 256), (16, 512)):
                model = layer(hidden, hidden, backend="fused")
                x = torch.randn(100, batch, hidden, requires_grad=True)
                difference = sides_agree(lambda: model(x)[0], switch, FLOAT32_AGREEMENT)
                for mode, run in training_and_inference(model, x):
                    mkl, packed = interleaved(run, run, switch, repeats)
                    rows.append({"test": f"engine-{mode}", "cell": kind, "B": batch, "H": hidden,
                                 "A (mkl) ms": mkl * 1e3, "B (packed) ms": packed * 1e3,
                                 "ratio": packed / mkl, "max |A-B|": difference,
                                 "shipped": host})
    finally:
        fused.set_dense_engine("auto")
    return rows


def bf16_rows(repeats: int) -> list[dict]:
    """bfloat16 products forced on (A) vs the float32 recurrent GEMM (B), under autocast."""
    from rnnkit.backends.fused import backend as fused_backend

    if not fused.bf16_products_kernel():
        print("bf16: skipped, no bfloat16 product kernel (AMX or AVX512-BF16) is usable here")
        return []
    names = ("_MIN_ROWS_BF16", "_MIN_WIDTH_BF16", "_LARGE_WEIGHT_BF16")
    limits = tuple(getattr(fused_backend, name) for name in names)

    def set_limits(values) -> None:
        for name, value in zip(names, values):
            setattr(fused_backend, name, value)

    shipped = BACKENDS["fused"]
    float32_products = dataclasses.replace(shipped, run_bf16_products=None)
    bf16_kind = "bf16 tiles" if fused.amx_bf16_usable() else "bf16 dots"  # AVX512-BF16

    def switch(tiles: bool) -> None:
        BACKENDS["fused"] = shipped if tiles else float32_products

    rows = []
    try:
        set_limits((1, 1, 0))  # the tiles forced on
        for kind, layer in LAYERS.items():
            for hidden in (64, 128, 256, 512):
                for batch in (1, 4, 16, 64):
                    options = {"proj_size": hidden // 2} if kind == "lstm" else {}
                    model = layer(hidden, hidden, **options)
                    x = torch.randn(100, batch, hidden, requires_grad=True)

                    def train():
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            output, _ = model(x)
                        output.float().sum().backward()

                    def infer():
                        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                            model(x)

                    set_limits(limits)
                    cell = next(m for m in model.modules() if hasattr(m, "weight_hh"))
                    picks = fused_backend.bf16_products_pay(
                        batch, cell.weight_hh.size(1), fused_backend.recurrent_weight_values(cell))
                    set_limits((1, 1, 0))

                    def output():
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            return model(x)[0]

                    difference = sides_agree(output, switch, BF16_AGREEMENT)
                    for mode, run in (("train", train), ("infer", infer)):
                        tiles, full = interleaved(run, run, switch, repeats)
                        rows.append({"test": f"bf16-{mode}", "cell": kind + ("-proj" if options else ""),
                                     "B": batch, "H": hidden, "A (bf16) ms": tiles * 1e3,
                                     "B (float32) ms": full * 1e3, "ratio": full / tiles,
                                     "max |A-B|": difference,
                                     "shipped": bf16_kind if picks else "float32"})
    finally:
        BACKENDS["fused"] = shipped
        set_limits(limits)
    return rows


def lstm_route_rows(repeats: int) -> list[dict]:
    """A plain LSTM layer under autocast: the fused kernels forced (A) vs oneDNN's bf16 LSTM (B)."""
    import sys

    if not fused.bf16_products_kernel():
        print("lstm-route: skipped, no bfloat16 product kernel (AMX or AVX512-BF16) is usable here")
        return []
    scan_module = sys.modules["rnnkit.backends.scan"]
    shipped = scan_module.fused_lstm_pays_bf16

    def switch(on_fused: bool) -> None:
        scan_module.fused_lstm_pays_bf16 = lambda batch, hidden, training: on_fused

    rows = []
    try:
        for hidden in (64, 128, 256, 512):
            for batch, steps in ((1, 100), (4, 100), (16, 100), (32, 64), (64, 100)):
                model = rnnkit.LSTM(hidden, hidden)
                x = torch.randn(steps, batch, hidden, requires_grad=True)

                def train():
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        output, _ = model(x)
                    output.float().sum().backward()

                def infer():
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                        model(x)

                def output():
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return model(x)[0]

                difference = sides_agree(output, switch, BF16_AGREEMENT)
                for mode, run in (("train", train), ("infer", infer)):
                    on_fused, on_onednn = interleaved(run, run, switch, repeats)
                    ships = shipped(batch, hidden, mode == "train")
                    rows.append({"test": f"lstm-{mode}", "cell": f"lstm T{steps}", "B": batch,
                                 "H": hidden, "A (fused) ms": on_fused * 1e3,
                                 "B (oneDNN) ms": on_onednn * 1e3,
                                 "ratio": on_onednn / on_fused, "max |A-B|": difference,
                                 "shipped": "fused" if ships else "oneDNN"})
    finally:
        scan_module.fused_lstm_pays_bf16 = shipped
    return rows


def fold_rows(repeats: int) -> list[dict]:
    """b_ih added in the recurrence with b_hh (A, forced at every size) vs in the projection
    (B); ``shipped`` says which one ``folds_input_bias`` picks at that size."""
    from rnnkit.backends.fused import backend as fused_backend

    shipped_limit = fused_backend._MIN_GATE_VALUES_TO_FOLD_BIAS

    def switch(fold: bool) -> None:
        fused_backend._MIN_GATE_VALUES_TO_FOLD_BIAS = 0 if fold else float("inf")

    rows = []
    try:
        for kind in ("lstm", "rnn"):
            for batch, hidden in ((1, 32), (16, 64), (16, 128), (64, 128), (16, 256), (64, 256),
                                  (16, 512)):
                model = LAYERS[kind](hidden, hidden, backend="fused")
                cell = model.stack.layers[0].cell
                x = torch.randn(100, batch, hidden, requires_grad=True)
                difference = sides_agree(lambda: model(x)[0], switch, FLOAT32_AGREEMENT)
                fused_backend._MIN_GATE_VALUES_TO_FOLD_BIAS = shipped_limit
                folds = fused_backend.folds_input_bias(cell, x)
                in_loop = fused_backend.projects_in_loop(cell, x)
                for mode, run in training_and_inference(model, x):
                    fold, unfolded = interleaved(run, run, switch, repeats)
                    shipped = ("in-loop" if mode == "infer" and in_loop
                               else "fold" if folds else "bias")
                    rows.append({"test": f"fold-{mode}", "cell": kind, "B": batch, "H": hidden,
                                 "A (fold) ms": fold * 1e3, "B (bias) ms": unfolded * 1e3,
                                 "ratio": unfolded / fold, "max |A-B|": difference,
                                 "shipped": shipped})
    finally:
        fused_backend._MIN_GATE_VALUES_TO_FOLD_BIAS = shipped_limit
    return rows


def onednn_route_rows(repeats: int, hiddens=(256, 384, 512), batches=(8, 16, 32, 64),
                      step_counts=(1, 4, 8, 16, 64)) -> list[dict]:
    """Float32 LSTM inference: the fused kernels (A) vs oneDNN's LSTM (B), the route forced."""
    import sys

    from rnnkit.backends.onednn import onednn_inference_pays

    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        print("onednn-route: skipped, this torch has no oneDNN")
        return []
    scan_module = sys.modules["rnnkit.backends.scan"]
    shipped = scan_module.onednn_inference_pays

    def switch(on_fused: bool) -> None:
        scan_module.onednn_inference_pays = lambda *args: not on_fused

    rows = []
    try:
        for hidden in hiddens:
            for batch in batches:
                for steps in step_counts:
                    model = rnnkit.LSTM(hidden, hidden)
                    x = torch.randn(steps, batch, hidden)

                    def infer():
                        with torch.no_grad():
                            model(x)

                    on_fused, on_onednn = interleaved(infer, infer, switch, repeats)
                    ships = onednn_inference_pays(model.stack.layers[0].cell, x, None, False)
                    rows.append({"test": "onednn-route", "cell": f"lstm T{steps}", "B": batch,
                                 "H": hidden, "A (fused) ms": on_fused * 1e3,
                                 "B (oneDNN) ms": on_onednn * 1e3,
                                 "ratio": on_onednn / on_fused,
                                 "max |A-B|": sides_agree(lambda: model(x)[0], switch,
                                                          FLOAT32_AGREEMENT),
                                 "shipped": "oneDNN" if ships else "fused"})
    finally:
        scan_module.onednn_inference_pays = shipped
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--only", choices=["cache", "inloop", "engine", "bf16", "lstm-route",
                                           "onednn-route", "fold"])
    parser.add_argument("--hidden", default="256,384,512", help="onednn-route: hidden sizes")
    parser.add_argument("--batch", default="8,16,32,64", help="onednn-route: batch sizes")
    parser.add_argument("--steps", default="1,4,8,16,64", help="onednn-route: sequence lengths")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds (>= 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "fused_ab.json"))
    args = parser.parse_args()
    grid = {}
    for name in ("hidden", "batch", "steps"):
        try:
            grid[name] = tuple(int(value) for value in getattr(args, name).split(","))
        except ValueError:
            parser.error(f"--{name} takes whole numbers separated by commas, as 128,256; got "
                         f"{getattr(args, name)!r}")
        if min(grid[name]) < 1:
            parser.error(f"--{name} values must be >= 1; got {getattr(args, name)!r}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1 (each side's median needs a round); got "
                     f"{args.repeats}")
    error = fused.fused_unavailable()
    if error is not None:
        raise SystemExit(f"the fused backend is not usable here: {error}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    if args.only in (None, "cache"):
        rows += cache_rows(args.repeats)
    if args.only in (None, "inloop"):
        rows += inloop_rows(args.repeats)
    if args.only in (None, "engine"):
        rows += engine_rows(args.repeats)
    if args.only in (None, "bf16"):
        rows += bf16_rows(args.repeats)
    if args.only in (None, "lstm-route"):
        rows += lstm_route_rows(args.repeats)
    if args.only in (None, "onednn-route"):
        rows += onednn_route_rows(args.repeats, grid["hidden"], grid["batch"], grid["steps"])
    if args.only in (None, "fold"):
        rows += fold_rows(args.repeats)
    print(f"{'test':12} {'cell':9} {'B':>3} {'H':>4} | {'A ms':>9} {'B ms':>9} | ratio B/A | "
          f"max |A-B| | shipped")
    for row in rows:
        a, b = (value for key, value in row.items() if key.endswith("ms"))
        print(f"{row['test']:12} {row['cell']:9} {row['B']:3d} {row['H']:4d} | {a:9.2f} {b:9.2f} | "
              f"{row['ratio']:9.2f} | {row['max |A-B|']:9.1e} | {row.get('shipped', 'cache on')}")
    atomic_write(pathlib.Path(args.out), json.dumps(
        {"threads": args.threads, "torch": torch.__version__, "rows": rows}, indent=1),
        parents=True)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
