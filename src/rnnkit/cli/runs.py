"""What every `rnnkit ... train` command does before training: the run folder and the config.

A new run gets ``--out`` (or a new ``runs/<task>-<time>``, ``-2`` appended when two runs
start in the same second) and refuses a folder that already holds
checkpoints; ``--resume DIR`` continues the run in DIR, starting from the config saved in its
checkpoint, with this command's flags applied on top. A folder another process is training in
is refused either way (:mod:`rnnkit.training.run_lock`).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path


def interrupted_status(result: dict) -> int:
    """The exit status of a training command a signal stopped (after saving): 128 + its
    number, as a shell reports a process that signal ended (130 Ctrl-C, 143 SIGTERM)."""
    from rnnkit.training.trainer import RunInterrupted

    return RunInterrupted(result.get("stop_signal")).exit_status


def add_run_flags(parser, task: str) -> None:
    """The flags every `train` command shares: config file, overrides, run folder, output."""
    parser.add_argument("--config", metavar="FILE", help="JSON or TOML config file")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        dest="overrides", help="override a config key (repeatable)")
    parser.add_argument("--out", metavar="DIR", help=f"run folder (default runs/{task}-<time>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last "
                        "intact checkpoint (flags given here override its config)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def flag_overrides(args, flags: dict[str, str], extra: list[str] = ()) -> list[str]:
    """Config overrides from the named flags that were given (``flags``: attribute -> key),
    then ``extra`` (the command's own rules), then --no-progress, then the user's --set."""
    import json

    overrides = [f"{key}={json.dumps(getattr(args, flag))}" for flag, key in flags.items()
                 if getattr(args, flag) is not None]
    overrides += list(extra)
    if args.no_progress:
        overrides.append("train.progress=false")
    return overrides + list(args.overrides)


def run_outputs() -> tuple[str, ...]:
    """What a run writes in its folder besides checkpoints/ and metrics.jsonl (the curves, the
    confusion matrix, the forecast's picture and table, residual quantiles and backtest folds),
    none of which a new run may replace in a folder that already holds them. Imported here,
    not at the top: the tasks load torch, which ``rnnkit --help`` does without."""
    from rnnkit.tasks.classify.task import CONFUSION_FILE
    from rnnkit.tasks.forecast.fitting import RESIDUALS_FILE
    from rnnkit.tasks.forecast.task import BACKTEST_FOLDER, FORECAST_PICTURE, HOLDOUT_FILE
    from rnnkit.training.trainer import CURVES_FILE

    return (CURVES_FILE, CONFUSION_FILE, FORECAST_PICTURE, HOLDOUT_FILE, RESIDUALS_FILE,
            BACKTEST_FOLDER)

#: the command that trains (and resumes) each task's runs
TRAIN_COMMANDS = {"lm": "rnnkit train lm", "classify": "rnnkit classify train",
                  "forecast": "rnnkit forecast train"}


def resolve_run(args, config_class, task: str, overrides: list[str]):
    """(config, run_dir) from ``args.out``, ``args.resume`` and ``args.config``."""
    from rnnkit.training import check_run_folder_free, load_checkpoint, resolve_config
    from rnnkit.training.checkpoint import CHECKPOINTS, INDEX, META, enclosing_run, reading_record

    base = None
    if args.resume == "":  # an empty path would start a new run without a word
        raise ValueError("--resume is empty; name the folder of the run to continue")
    if args.resume:
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ValueError("--resume continues a run in its own folder; drop --out")
        run_dir = Path(args.resume)
        check_run_folder_free(run_dir)  # still training: resuming would truncate its metrics
        # the folder to name instead, from the resolved path (the parent of "." is ".")
        if (run_dir / META).exists():
            # one checkpoint of a run: training would start a new run inside it
            raise ValueError(f"--resume takes a run folder, and {run_dir} is one of its "
                             f"checkpoints; use --resume {run_dir.resolve().parent.parent}")
        if (run_dir / INDEX).exists() or any(p.is_dir() for p in run_dir.glob("step-*")):
            # the checkpoints folder of a run: training would nest a new run inside it
            raise ValueError(f"--resume takes a run folder, and {run_dir} holds its "
                             f"checkpoints; use --resume {run_dir.resolve().parent}")
        if not (run_dir / CHECKPOINTS).is_dir():
            raise ValueError(f"--resume takes the --out folder of an earlier `{TRAIN_COMMANDS[task]}`"
                             f", and {run_dir} holds no run")
        checkpoint = load_checkpoint(args.resume)
        with reading_record(checkpoint.path):
            base = dict(checkpoint.meta["config"])
            other = checkpoint.meta.get("task")
            if other == task:  # the saved config alone: its errors are the record's, not the flags'
                resolve_config(config_class, base=base)
        if other != task:
            continue_with = (f"; continue it with {TRAIN_COMMANDS[other]} --resume {run_dir}"
                             if other in TRAIN_COMMANDS else "")
            raise ValueError(f"{run_dir} holds a {other!r} run, not a {task!r} one"
                             f"{continue_with}")
    else:
        if args.out == "":
            raise ValueError("--out is empty; name a folder, or leave --out out for "
                             "runs/<task>-<time>")
        run_dir = Path(args.out) if args.out is not None else _claim_run_folder(args, task)
        if run_dir.exists() and not run_dir.is_dir():
            raise ValueError(f"--out must be a folder, and {run_dir} is a file; choose another "
                             f"--out")
        # the same --out given to a run that is training now: say so (its folder may not hold
        # a checkpoint yet, and the checks below would call it an earlier run's)
        check_run_folder_free(run_dir)
        enclosing = enclosing_run(run_dir)
        if enclosing is not None:
            # a new run inside another's folders could not be resumed or told apart from it
            raise ValueError(f"--out {run_dir} is inside the run {enclosing}; choose a folder "
                             f"outside it")
        if (run_dir / "checkpoints").exists():
            raise ValueError(f"{run_dir} already holds a run; continue it with --resume "
                             f"{run_dir} or choose another --out")
        if (run_dir / "metrics.jsonl").exists():
            # a run that stopped before its first checkpoint (a NaN, an error): its metrics
            # would be mixed with the new run's
            raise ValueError(f"{run_dir} holds the metrics of an earlier run that left no "
                             f"checkpoint; choose another --out or delete {run_dir}")
        taken = [name for name in run_outputs() if (run_dir / name).exists()]
        if taken:  # a user's folder (--out .): the run would replace these files
            raise ValueError(f"--out {run_dir} holds {', '.join(taken)}, which a run writes; "
                             f"choose a new or empty folder")
        from rnnkit.cli.export import _earlier_export

        if run_dir.is_dir() and _earlier_export(run_dir) is not None:
            # export refuses a run's folder; a run in an export's folder would leave one that
            # neither command can write to again
            raise ValueError(f"--out {run_dir} holds an rnnkit export, whose files the run "
                             f"would mix with; choose a new or empty folder")
    config = resolve_config(config_class, base=base, file=args.config, overrides=overrides)
    return config, run_dir


def _claim_run_folder(args, task: str) -> Path:
    """A new ``runs/<task>-<time>`` folder, made here so that two runs started in the same
    second cannot both take it (the second gets ``-2``). ``args.claimed_run_dir`` records it
    for :func:`release_claimed_run_folder`."""
    base = f"runs/{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    for number in itertools.count(1):
        candidate = Path(base if number == 1 else f"{base}-{number}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        args.claimed_run_dir = candidate
        return candidate


def release_claimed_run_folder(args) -> None:
    """Remove the folder :func:`resolve_run` made for a run that failed before writing to it
    (bad data, a config error), so that no empty run folders are left behind."""
    # (a task's run lock removes its own file when the run wrote nothing: see run_lock)
    claimed = getattr(args, "claimed_run_dir", None)
    if claimed is not None and claimed.is_dir() and not any(claimed.iterdir()):
        claimed.rmdir()


def printer(args):
    """Where progress lines go: stderr when stdout carries the --json result, else stdout."""
    import sys

    return (lambda line: print(line, file=sys.stderr)) if args.json else print


def json_text(value) -> str:
    """``value`` as strict JSON (indented): NaN and infinities become null. Python's json writes
    them as bare ``NaN``/``Infinity``, which other parsers (JavaScript's, jq) reject, and a
    result can hold them legitimately (MASE of a series that repeats at its season)."""
    import json

    from rnnkit.training.metrics import finite_or_null

    return json.dumps(finite_or_null(value), indent=2, allow_nan=False)
