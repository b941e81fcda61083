"""Character LM on the King James Bible: rnnkit's layer vs torch.nn's, same wall time.

Trains the default ``rnnkit train lm`` configuration twice for the same time budget, once with
rnnkit's recurrent layer and once with torch.nn's layer of the same cell (everything else equal:
data order, initial weights, optimizer, schedule), one after the other on this machine, then
reports test bits per character (static, and under dynamic evaluation when the config has it
on, as by default), optimizer steps and characters per second of each, beside the compressor
bars.

    .venv/bin/python benchmarks/bench_lm.py                 # 15 minutes each (the issue's target)
    .venv/bin/python benchmarks/bench_lm.py --minutes 3     # a quick look
Writes benchmarks/results/lm.json and prints a table. Other settings: --set key=value as for
``rnnkit train lm`` (e.g. --set model.cell=gru).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import tempfile

import torch

from rnnkit.data.text import load_corpus
from rnnkit.tasks.lm.model import CharLanguageModel
from rnnkit.tasks.lm.task import LMConfig, compressor_bars, train_lm
from rnnkit.training import atomic_write, config_to_dict, resolve_config

RESULTS = pathlib.Path(__file__).parent / "results"


def check_same_start(config: LMConfig, vocab_size: int = 68) -> float:
    """The two layers start from the same weights and compute the same function: the models
    train_lm builds for each implementation (same seed) must have equal state dicts and, in
    float32 eval mode, logits within 1e-4. Returns the largest logit difference."""
    models = []
    for implementation in ("rnnkit", "torch"):
        model_config = resolve_config(LMConfig, overrides=[
            f"model.{k}={v}" for k, v in config_to_dict(config)["model"].items()
            if k != "implementation"] + [f"model.implementation={implementation}"]).model
        torch.manual_seed(config.train.seed)  # as train_lm does before building its model
        models.append(CharLanguageModel(vocab_size, model_config).eval())
    ours, theirs = models
    mismatched = [k for k, v in theirs.state_dict().items()
                  if not torch.equal(ours.state_dict()[k], v)]
    if mismatched:
        raise SystemExit(f"the two models start from different weights ({mismatched[0]}); the "
                         f"comparison would not be like for like")
    tokens = torch.randint(0, vocab_size, (4, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (ours(tokens)[0] - theirs(tokens)[0]).abs().max().item()
    if not gap <= 1e-4:
        raise SystemExit(f"rnnkit's and torch.nn's models disagree by {gap:.3g} on the same "
                         f"weights; refusing to time them")
    return gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="budget of each run")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS / "lm.json"))
    args = parser.parse_args()

    default = resolve_config(LMConfig, overrides=args.overrides)
    # rnnkit's layer, torch.nn's layer of the same cell, and torch.nn.LSTM (the usual choice).
    runs = [("rnnkit", default.model.cell), ("torch", default.model.cell)]
    gap = check_same_start(default)
    print(f"same initial weights; float32 logits agree within {gap:.2g}")
    if default.model.cell != "lstm":
        runs.append(("torch", "lstm"))
    rows = []
    for implementation, cell in runs:
        config = resolve_config(LMConfig, overrides=[
            *args.overrides, f"train.minutes={args.minutes}", "train.progress=false",
            f"model.implementation={implementation}", f"model.cell={cell}"])
        with tempfile.TemporaryDirectory() as run_dir:
            print(f"training with {implementation}'s {config.model.cell.upper()} for "
                  f"{args.minutes:g} min ...", flush=True)
            result = train_lm(config, run_dir, notify=lambda line: None)
        rows.append({
            "implementation": implementation, "cell": cell, "test_bpc": result["test"]["bpc"],
            "test_dynamic_bpc": result["test"].get("dynamic", {}).get("bpc"),
            "validation_bpc": result["validation"]["bpc"], "steps": result["steps"],
            "epochs": result["epochs"], "train_seconds": result["train_seconds"],
            "characters_per_second": result["steps"] * config.data.batch_size
            * config.data.window / max(result["train_seconds"], 1e-9),
        })
    bars = compressor_bars(load_corpus(config.data.corpus).text)
    report = {
        "benchmark": "character LM, same wall time", "minutes": args.minutes,
        # what the runs shared: the last run's config with its own layer settings left out
        "config": {**config_to_dict(config), "model": {
            k: v for k, v in config_to_dict(config)["model"].items()
            if k not in ("implementation", "cell")}},
        "precision": config.train.resolved_precision(), "start_logit_gap": gap,
        "split": result["split"],
        "corpus": result["corpus"], "compressors_bpc": bars, "results": rows,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
    }
    atomic_write(pathlib.Path(args.out), json.dumps(report, indent=2), parents=True)
    print(f"\nH={config.model.hidden_size} x{config.model.layers}, "
          f"batch {config.data.batch_size} x window {config.data.window}, {args.minutes:g} min "
          f"each, {torch.get_num_threads()} threads, {config.train.resolved_precision()}")
    print(f"{'layer':<14} {'test bpc':>9} {'dynamic':>8} {'valid bpc':>10} {'steps':>7} "
          f"{'epochs':>7} {'chars/s':>9}")
    for row in rows:
        name = f"{row['implementation']}.{row['cell'].upper()}"
        dynamic = row["test_dynamic_bpc"]
        dynamic = "-" if dynamic is None else f"{dynamic:.3f}"
        print(f"{name:<14} {row['test_bpc']:>9.3f} {dynamic:>8} {row['validation_bpc']:>10.3f} "
              f"{row['steps']:>7d} {row['epochs']:>7.2f} {row['characters_per_second']:>9,.0f}")
    print("bars (whole corpus): " + ", ".join(f"{k} {v:.2f}" for k, v in bars.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
