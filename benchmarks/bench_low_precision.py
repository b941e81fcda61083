"""Layers with bfloat16 parameters (``layer.bfloat16()``, no autocast): rnnkit against torch.nn
in the same dtype, and against rnnkit's reference backend (what such a layer ran before
``rnnkit/backends/widened.py``: the step loop in bfloat16).

For each cell and point (B, T, H), with the same bfloat16 weights and input on all three sides:
- ``error``: the largest |output - float64 run of the same values|; 2^-9 ~ 0.0020 is the
  rounding of an output below 1 itself;
- ``infer_ms`` / ``train_ms``: median milliseconds per call (no_grad; forward and backward of
  the output's sum), the three sides timed interleaved, each sample as many calls as take
  ~20 ms, the order rotating per repeat.

    .venv/bin/python benchmarks/bench_low_precision.py               # about 5 minutes
    .venv/bin/python benchmarks/bench_low_precision.py --quick       # one small point
Writes benchmarks/results/low_precision.json and prints a table (x = torch.nn ms / rnnkit ms:
> 1 means rnnkit is faster).
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import platform

import torch

import rnnkit
from bench_autocast import timed_interleaved  # this folder (run as a script)
from rnnkit.training import atomic_write

RESULTS = pathlib.Path(__file__).parent / "results"
CELLS = {"lstm": (torch.nn.LSTM, rnnkit.LSTM), "gru": (torch.nn.GRU, rnnkit.GRU),
         "rnn": (torch.nn.RNN, rnnkit.RNN)}
#: (B, T, H), to show both sides of widened.widens: long calls it widens (H <= 256; 512 in
#: training), short ones it widens (from one step per 64 weight columns, I + H), calls it leaves
#: in bfloat16 (one step; H = 512 and B = 64 at H = 256 in inference)
POINTS = [(1, 100, 128), (16, 100, 128), (16, 100, 256), (16, 100, 512), (16, 4, 128),
          (16, 8, 256), (4, 16, 512), (64, 32, 256), (16, 1, 128)]
QUICK_POINTS = [(2, 40, 16)]


def median_ms(sides: dict, repeats: int) -> dict:
    """Median milliseconds per call of each ``name -> run``, timed interleaved as
    bench_autocast.py times its sides (nothing to switch between them here)."""
    seconds = timed_interleaved({name: (lambda: None, run) for name, run in sides.items()},
                                repeats)
    return {name: value * 1e3 for name, value in seconds.items()}


def measure(cell: str, batch: int, steps: int, hidden: int, repeats: int) -> dict:
    torch_class, rnnkit_class = CELLS[cell]
    torch.manual_seed(0)
    theirs = torch_class(hidden, hidden, batch_first=True).bfloat16()
    ours = rnnkit_class(hidden, hidden, batch_first=True)
    ours.load_state_dict(theirs.state_dict())
    ours = ours.bfloat16()
    reference = copy.deepcopy(ours)
    reference.backend = "reference"
    exact = copy.deepcopy(theirs).double()
    x = torch.randn(batch, steps, hidden).bfloat16()
    models = {"rnnkit": ours, "reference": reference, "torch.nn": theirs}
    with torch.no_grad():
        want = exact(x.double())[0]
        errors = {name: (model(x)[0].double() - want).abs().max().item()
                  for name, model in models.items()}

    def inference(model):
        def run():
            with torch.no_grad():
                model(x)
        return run

    def training(model):
        def run():
            model(x)[0].float().sum().backward()
        return run

    infer = median_ms({name: inference(model) for name, model in models.items()}, repeats)
    train = median_ms({name: training(model) for name, model in models.items()}, repeats)
    return {"cell": cell, "batch": batch, "steps": steps, "hidden": hidden, "error": errors,
            "infer_ms": infer, "train_ms": train}


def table(rows: list[dict]) -> str:
    header = (f"{'cell':5s} {'B':>3s} {'T':>4s} {'H':>4s} | {'error: rnnkit':>13s} {'ref':>7s} "
              f"{'torch':>7s} | {'infer ms: rnnkit':>16s} {'ref':>7s} {'torch':>7s} {'x':>5s} | "
              f"{'train ms: rnnkit':>16s} {'ref':>7s} {'torch':>7s} {'x':>5s}")
    lines = [header, "-" * len(header)]
    for row in rows:
        e, i, t = row["error"], row["infer_ms"], row["train_ms"]
        lines.append(
            f"{row['cell']:5s} {row['batch']:3d} {row['steps']:4d} {row['hidden']:4d} | "
            f"{e['rnnkit']:13.4f} {e['reference']:7.4f} {e['torch.nn']:7.4f} | "
            f"{i['rnnkit']:16.2f} {i['reference']:7.2f} {i['torch.nn']:7.2f} "
            f"{i['torch.nn'] / i['rnnkit']:5.2f} | {t['rnnkit']:16.2f} {t['reference']:7.2f} "
            f"{t['torch.nn']:7.2f} {t['torch.nn'] / t['rnnkit']:5.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small point (a smoke test)")
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "low_precision.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    points = QUICK_POINTS if args.quick else POINTS
    rows = [measure(cell, *point, repeats=2 if args.quick else args.repeats)
            for cell in args.cells for point in points]
    text = table(rows)
    print(text)
    machine = f"{platform.processor() or platform.machine()}, {args.threads} thread(s)"
    atomic_write(args.out, json.dumps({"machine": machine, "torch": torch.__version__,
                                       "rows": rows}, indent=1) + "\n")
    atomic_write(pathlib.Path(args.out).with_suffix(".txt"), text + "\n")


if __name__ == "__main__":
    main()
