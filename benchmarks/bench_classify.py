"""JapaneseVowels with the default ``rnnkit classify train`` recipe, three seeds, official split.

Runs the defaults once per seed (each a full ``train_classifier`` run in its own temporary run
folder: validation carve, training, best checkpoint, test scoring), and the same recipe with
torch.nn's layer of the same cell in place of rnnkit's (``model.implementation=torch``, same
seed, same data order), the two alternating on this machine so that both see the same load.
Prints test accuracy, macro-F1 and minutes per run, the means per implementation, and the
published bars (1-NN DTW 0.949, MLP 0.976, ResNet 0.992, FCN 0.993).

    .venv/bin/python benchmarks/bench_classify.py                    # seeds 0 1 2
    .venv/bin/python benchmarks/bench_classify.py --no-torch        # rnnkit only
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
    parser.add_argument("--no-torch", action="store_true", help="skip the torch.nn runs")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS / "classify.json"))
    args = parser.parse_args()

    default = resolve_config(ClassifyConfig, overrides=args.overrides)
    implementations = ["rnnkit"] + ([] if args.no_torch else ["torch"])
    rows, result = [], None
    for seed in args.seeds:
        for implementation in implementations:  # alternating: both see the machine's load
            config = resolve_config(ClassifyConfig, overrides=[
                *args.overrides, f"train.seed={seed}", "train.progress=false",
                f"model.implementation={implementation}"])
            with tempfile.TemporaryDirectory() as run_dir:
                print(f"{implementation} seed {seed}: training ...", flush=True)
                result = train_classifier(config, run_dir, notify=lambda line: None)
            rows.append({"implementation": implementation, "seed": seed,
                         "test_accuracy": result["test"]["accuracy"],
                         "test_macro_f1": result["test"]["macro_f1"],
                         "validation_loss": result["validation"]["loss"],
                         "status": result["status"], "steps": result["steps"],
                         "epochs": result["epochs"], "best_step": result["best_step"],
                         "train_minutes": result["train_seconds"] / 60,
                         "run_minutes": result["seconds"] / 60})
    means = {}
    for implementation in implementations:
        chosen = [r for r in rows if r["implementation"] == implementation]
        means[implementation] = {key: statistics.mean(r[key] for r in chosen)
                                 for key in ("test_accuracy", "test_macro_f1", "train_minutes")}
    accuracy = means["rnnkit"]["test_accuracy"]
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
        f"{'layer':<7}{'seed':>5} {'test acc':>9} {'macro-F1':>9} {'epochs':>7} "
        f"{'train min':>10} {'run min':>8}",
    ]
    lines += [f"{r['implementation']:<7}{r['seed']:>5d} {r['test_accuracy']:>9.4f} "
              f"{r['test_macro_f1']:>9.4f} {r['epochs']:>7.1f} {r['train_minutes']:>10.2f} "
              f"{r['run_minutes']:>8.2f}" for r in rows]
    for implementation, mean in means.items():
        lines.append(f"{implementation:<7}{'mean':>5} {mean['test_accuracy']:>9.4f} "
                     f"{mean['test_macro_f1']:>9.4f} {'':>7} {mean['train_minutes']:>10.2f}")
    lines.append(f"target: rnnkit mean test accuracy >= {TARGET}: "
                 f"{'met' if accuracy >= TARGET else 'NOT met'}")
    if "torch" in means:
        lines.append(f"training time, torch.nn / rnnkit: "
                     f"{means['torch']['train_minutes'] / means['rnnkit']['train_minutes']:.2f}x")
    if bars:
        lines.append("published test accuracy: " + ", ".join(f"{k} {v:.3f}"
                                                            for k, v in bars.items()))
    text = "\n".join(lines)
    print("\n" + text)
    report = {
        "benchmark": "sequence classification, default recipe, official split, rnnkit's "
                     "layer and torch.nn's",
        "data": default.data.data, "config": config_to_dict(default), "split": result["split"],
        "results": rows, "means": means, "mean_test_accuracy": accuracy,
        "mean_test_macro_f1": means["rnnkit"]["test_macro_f1"],
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
