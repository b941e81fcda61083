"""JapaneseVowels with the default ``rnnkit classify train`` recipe, three seeds, official split.

Runs the defaults once per seed (each a full ``train_classifier`` run in its own temporary run
folder: validation carve, training, best checkpoint, test scoring), one after the other on this
machine, then prints test accuracy, macro-F1 and minutes per seed and their mean beside the
published bars (1-NN DTW 0.949, MLP 0.976, ResNet 0.992, FCN 0.993).

    .venv/bin/python benchmarks/bench_classify.py                    # seeds 0 1 2
    .venv/bin/python benchmarks/bench_classify.py --seeds 0 1 2 3 4 --set model.pooling=max
Writes benchmarks/results/classify.json and classify.txt (the table).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys
import tempfile

import torch

from rnnkit.tasks.classify.task import ClassifyConfig, published_bars, train_classifier
from rnnkit.training import atomic_write, config_to_dict, resolve_config

RESULTS = pathlib.Path(__file__).parent / "results"
TARGET = 0.98


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS / "classify.json"))
    args = parser.parse_args()

    default = resolve_config(ClassifyConfig, overrides=args.overrides)
    rows, result = [], None
    for seed in args.seeds:
        config = resolve_config(ClassifyConfig, overrides=[
            *args.overrides, f"train.seed={seed}", "train.progress=false"])
        with tempfile.TemporaryDirectory() as run_dir:
            print(f"seed {seed}: training ...", flush=True)
            result = train_classifier(config, run_dir, notify=lambda line: None)
        rows.append({"seed": seed, "test_accuracy": result["test"]["accuracy"],
                     "test_macro_f1": result["test"]["macro_f1"],
                     "validation_loss": result["validation"]["loss"],
                     "status": result["status"], "steps": result["steps"],
                     "epochs": result["epochs"], "best_step": result["best_step"],
                     "train_minutes": result["train_seconds"] / 60,
                     "run_minutes": result["seconds"] / 60})
    accuracy = statistics.mean(r["test_accuracy"] for r in rows)
    macro_f1 = statistics.mean(r["test_macro_f1"] for r in rows)
    bars = published_bars(default.data.data) or {}
    command = " ".join(["benchmarks/bench_classify.py", *sys.argv[1:]])
    m = default.model
    lines = [
        f".venv/bin/python {command}",
        f"(defaults: {'Bi' if m.bidirectional else ''}{m.cell.upper()} H={m.hidden_size} "
        f"x{m.layers}, {m.pooling} pooling, dropout {m.dropout}, input noise "
        f"{default.data.noise}, validation fraction {default.data.validation_fraction}, batch "
        f"{default.data.batch_size}, {default.train.optimizer} {default.train.learning_rate:g}, "
        f"{default.train.max_epochs:g} epochs" + (f" or {default.train.max_steps} steps"
                                                   if default.train.max_steps else "")
        + ", cosine)",
        f"{result['sources']['test']}: {result['split']['train']} train / "
        f"{result['split']['validation']} validation / {result['split']['test']} test, "
        f"{torch.get_num_threads()} threads available, {default.threads} used",
        f"{'seed':>4} {'test acc':>9} {'macro-F1':>9} {'epochs':>7} {'train min':>10} "
        f"{'run min':>8}",
    ]
    lines += [f"{r['seed']:>4d} {r['test_accuracy']:>9.4f} {r['test_macro_f1']:>9.4f} "
              f"{r['epochs']:>7.1f} {r['train_minutes']:>10.2f} {r['run_minutes']:>8.2f}"
              for r in rows]
    lines.append(f"{'mean':>4} {accuracy:>9.4f} {macro_f1:>9.4f}   (target >= {TARGET}: "
                 f"{'met' if accuracy >= TARGET else 'NOT met'})")
    if bars:
        lines.append("published test accuracy: " + ", ".join(f"{k} {v:.3f}"
                                                            for k, v in bars.items()))
    text = "\n".join(lines)
    print("\n" + text)
    report = {
        "benchmark": "sequence classification, default recipe, official split",
        "data": default.data.data, "config": config_to_dict(default), "split": result["split"],
        "results": rows, "mean_test_accuracy": accuracy, "mean_test_macro_f1": macro_f1,
        "target_accuracy": TARGET, "published_bars": bars,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
    }
    out = pathlib.Path(args.out)
    atomic_write(out, json.dumps(report, indent=2), parents=True)
    atomic_write(out.with_suffix(".txt"), text + "\n", parents=True)
    print(f"wrote {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
