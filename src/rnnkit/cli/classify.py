"""`rnnkit classify train` and `rnnkit classify evaluate`: parse, call the library, print."""

from __future__ import annotations

import argparse
import sys

from .runs import add_run_flags, flag_overrides, interrupted_status, json_text, printer, resolve_run

# Friendly flags of `classify train` and the config keys they set.
_TRAIN_FLAGS = {
    "data": "data.data", "test": "data.test", "cell": "model.cell",
    "hidden": "model.hidden_size", "layers": "model.layers",
    "bidirectional": "model.bidirectional", "pooling": "model.pooling",
    "dropout": "model.dropout", "batch_size": "data.batch_size",
    "class_weights": "data.class_weights", "lr": "train.learning_rate",
    "minutes": "train.minutes", "epochs": "train.max_epochs", "steps": "train.max_steps",
    "seed": "train.seed",
}


def add_classify(commands) -> None:
    parser = commands.add_parser(
        "classify", help="sequence classification (train, evaluate)",
        description="Classify multivariate, variable-length sequences with a recurrent network.")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    _add_train(actions)
    _add_evaluate(actions)
    parser.set_defaults(handler=lambda args: (parser.print_help(sys.stderr), 2)[1])


def _add_train(actions) -> None:
    parser = actions.add_parser(
        "train", help="train a classifier (default: JapaneseVowels, a bidirectional GRU)",
        description="Train a sequence classifier on a UCR/UEA set bundled with aeon (by name) "
                    "or on .ts/.npz/.csv files; prints test accuracy and macro-F1 (beside the "
                    "published bars for JapaneseVowels) and writes confusion.png in the run "
                    "folder. Settings: the flags below, a --config file (JSON/TOML) and --set "
                    "key=value overrides (e.g. --set data.validation_fraction=0.2); the "
                    "resolved config is saved with each checkpoint.")
    parser.add_argument("--data", metavar="NAME|PATH",
                        help="a bundled set (default JapaneseVowels) or a .ts/.npz/.csv file")
    parser.add_argument("--test", metavar="PATH", help="test file (bundled sets: their "
                        "official test split; a file without --test: no test score)")
    parser.add_argument("--cell", choices=("gru", "lstm", "rnn"))
    parser.add_argument("--hidden", type=int, help="hidden size H per direction")
    parser.add_argument("--layers", type=int, help="stacked recurrent layers")
    parser.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                        help="read each sequence both ways (default on)")
    parser.add_argument("--pooling", choices=("last", "mean", "max", "attention"),
                        help="how the steps' outputs become one vector per sequence")
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--batch-size", type=int, help="sequences per optimizer step")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--minutes", type=float, help="time budget, a cap (default 5)")
    parser.add_argument("--epochs", type=float, help="passes over the training sequences")
    parser.add_argument("--steps", type=int, help="optimizer steps (alone: the only limit)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--class-weights", choices=("none", "balanced"),
                        help="balanced: weigh each class's loss by N / (K * N_k)")
    add_run_flags(parser, "classify")
    parser.set_defaults(handler=run_train)


def _overrides(args) -> list[str]:
    # --steps alone: train exactly that many steps (--minutes stays a cap on the epochs);
    # --epochs or --minutes without --steps: lift a step limit, so that --resume --epochs N
    # also continues a run that was limited by steps
    rules = []
    if args.steps is not None and args.minutes is None and args.epochs is None:
        rules += ["train.minutes=null", "train.max_epochs=null"]
    if args.steps is None and (args.epochs is not None or args.minutes is not None):
        rules.append("train.max_steps=null")
    return flag_overrides(args, _TRAIN_FLAGS, rules)


def run_train(args) -> int:
    from rnnkit.tasks.classify.task import ClassifyConfig, published_bars, train_classifier

    say = printer(args)
    config, run_dir = resolve_run(args, ClassifyConfig, "classify", _overrides(args))
    config.train.check()
    result = train_classifier(config, run_dir, resume=bool(args.resume), notify=say)
    if result["status"] == "interrupted":  # saved; the trainer said how to continue
        if args.json:
            print(json_text(result))
        return interrupted_status(result)
    # the published accuracies are on the set's own test split, not on another --test file
    result["bars"] = published_bars(config.data.data) if config.data.test is None else None
    test, validation = result["test"], result["validation"] or {}
    if test is not None:
        say(f"\ntest: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} on "
            f"{test['sequences']} sequences" + (f"  (confusion matrix: {result['confusion_png']})"
                                                if result["confusion_png"] else ""))
        if result["bars"]:
            say("  published test accuracy: " + ", ".join(f"{name} {value:.3f}" for name, value
                                                         in result["bars"].items()))
    else:
        say("\nno test split (a file without --test): validation scores only")
    # Without a validation part the model is checked (and chosen) on its training sequences.
    checked = "validation" if result["split"]["validation"] else "training-set check"
    say(f"  best {checked}: loss {validation.get('loss', float('nan')):.4f}, accuracy "
        f"{validation.get('accuracy', float('nan')):.4f} at step {result['best_step']}; "
        f"{result['status']} after {result['steps']} steps, {result['epochs']:.1f} epochs, "
        f"{result['train_seconds'] / 60:.2f} min")
    curves = f"  (curves: {result['curves']})" if result.get("curves") else ""
    say(f"  checkpoint {result['checkpoint']}{curves}")
    if args.json:
        print(json_text(result))
    return 0


def _add_evaluate(actions) -> None:
    parser = actions.add_parser(
        "evaluate", help="accuracy and macro-F1 of a trained classifier",
        description="Score a checkpoint on the test split of its data, or on another file or "
                    "bundled set: accuracy, macro-F1 and per-class precision/recall/F1.")
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder (--out of classify train) or one of its checkpoints")
    parser.add_argument("--data", metavar="NAME|PATH", help="score this file or bundled set "
                        "instead of the run's own test split")
    parser.add_argument("--split", choices=("test", "validation", "train"), default="test")
    parser.add_argument("--which", choices=("best", "last"), default="best",
                        help="which checkpoint of a run folder (default: best)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from rnnkit.tasks.classify.task import evaluate_classifier

    result = evaluate_classifier(args.checkpoint, data=args.data, split=args.split,
                                 which=args.which)
    if args.json:
        print(json_text(result))
        return 0
    print(f"{result['split']}: accuracy {result['accuracy']:.4f}, macro-F1 "
          f"{result['macro_f1']:.4f} on {result['sequences']} sequences of {result['data']}; "
          f"checkpoint {result['checkpoint']} (step {result['step']})")
    width = max(len(name) for name in result["per_class"])
    print(f"  {'class':<{width}} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>7}")
    for name, row in result["per_class"].items():
        print(f"  {name:<{width}} {row['precision']:>9.3f} {row['recall']:>7.3f} "
              f"{row['f1']:>6.3f} {row['support']:>7d}")
    return 0
