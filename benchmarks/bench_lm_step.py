"""Character LM training throughput: one optimizer step, rnnkit's layer vs torch.nn's.

The model of ``rnnkit train lm`` (embedding -> recurrent layer -> linear head) with the default
sizes, one step = forward, cross-entropy, backward, gradient clipping and AdamW on a batch of
B rows x T characters, for each cell with rnnkit's layer and with torch.nn's (same initial
weights, same batch). The two are timed interleaved in one process, medians of the repeats.
This is the speed half of ``bench_lm.py`` without the 15-minute runs. Before timing, both
models' loss on the batch with dropout off must agree (``start_loss`` in the JSON).

    .venv/bin/python benchmarks/bench_lm_step.py                 # lstm and gru, 2 threads
    .venv/bin/python benchmarks/bench_lm_step.py --threads 1 --cells lstm
    .venv/bin/python benchmarks/bench_lm_step.py --precision bf16   # under CPU bf16 autocast
Writes benchmarks/results/lm_step.json (lm_step-bf16.json with --precision bf16) and prints a
table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from rnnkit.tasks.lm.model import CharLanguageModel, ModelConfig
from rnnkit.training import atomic_write

RESULTS = pathlib.Path(__file__).parent / "results"
VOCABULARY = 68  # the King James Bible's characters
#: |loss difference| allowed between the two layers on the same weights and batch: float32
#: rounding, or bfloat16 products (8-bit mantissas) summed in different orders
LOSS_AGREEMENT = {"fp32": 1e-4, "bf16": 2e-2}


def make_step(cell: str, implementation: str, batch: torch.Tensor, precision: str):
    torch.manual_seed(0)
    model = CharLanguageModel(VOCABULARY, ModelConfig(cell=cell, implementation=implementation))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    inputs, targets = batch[:, :-1], batch[:, 1:].reshape(-1)

    def step() -> None:
        # The trainer's precision="bf16": the model under autocast, the loss in float32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits, _ = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, VOCABULARY).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    def evaluation_loss() -> float:
        """The loss without dropout (whose masks the two layers draw differently), computed
        with gradients on, as the timed step does: under bf16 autocast the layers take other
        kernels without them (oneDNN's LSTM where training takes the fused route)."""
        model.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits, _ = model(inputs)
        model.train()
        return F.cross_entropy(logits.reshape(-1, VOCABULARY).float(), targets).item()

    step.evaluation_loss = evaluation_loss
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--out", default=None, help="default results/lm_step[-bf16].json")
    args = parser.parse_args()
    if args.out is None:
        suffix = "" if args.precision == "fp32" else f"-{args.precision}"
        args.out = str(RESULTS / f"lm_step{suffix}.json")
    torch.set_num_threads(args.threads)
    batch = torch.randint(0, VOCABULARY, (args.batch_size, args.window + 1),
                          generator=torch.Generator().manual_seed(0))
    characters = args.batch_size * args.window

    rows = []
    print(f"B={args.batch_size} x T={args.window}, {args.threads} thread(s), H=512, E=64, "
          f"{args.precision}")
    print(f"{'cell':5s} {'rnnkit ms':>10s} {'torch ms':>9s} {'rnnkit chars/s':>15s} "
          f"{'torch chars/s':>14s} {'x':>6s}")
    for cell in args.cells.split(","):
        steps = {name: make_step(cell, name, batch, args.precision) for name in ("rnnkit", "torch")}
        # Both layers must compute the same model from the same weights: a speed-up of a
        # different computation would mean nothing.
        start_loss = {name: step.evaluation_loss() for name, step in steps.items()}
        difference = abs(start_loss["rnnkit"] - start_loss["torch"])
        if not difference <= LOSS_AGREEMENT[args.precision]:
            raise SystemExit(f"{cell}: rnnkit's loss {start_loss['rnnkit']:.6f} differs from "
                             f"torch.nn's {start_loss['torch']:.6f} before training; not timing "
                             f"different models")
        for step in steps.values():  # warm-up (and the kernel build on first use)
            for _ in range(3):
                step()
        samples = {name: [] for name in steps}
        for _ in range(args.repeats):  # interleaved: each repeat times both once
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                samples[name].append(time.perf_counter() - start)
        seconds = {name: statistics.median(values) for name, values in samples.items()}
        row = {"cell": cell, "seconds": seconds, "start_loss": start_loss,
               "characters_per_second": {k: characters / v for k, v in seconds.items()},
               "speedup_vs_torch": seconds["torch"] / seconds["rnnkit"]}
        rows.append(row)
        print(f"{cell:5s} {seconds['rnnkit'] * 1e3:10.1f} {seconds['torch'] * 1e3:9.1f} "
              f"{characters / seconds['rnnkit']:15,.0f} {characters / seconds['torch']:14,.0f} "
              f"{row['speedup_vs_torch']:6.2f}")
    out = pathlib.Path(args.out)
    atomic_write(out, json.dumps({
        "batch_size": args.batch_size, "window": args.window, "threads": args.threads,
        "precision": args.precision,
        "repeats": args.repeats, "torch": torch.__version__, "machine": platform.machine(),
        "rows": rows}, indent=2), parents=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
