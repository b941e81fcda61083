"""`rnnkit export`: a trained run as ONNX, a NumPy bundle or C99 source, checked against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

FORMATS = ("onnx", "numpy", "c")


def add_export(commands) -> None:
    parser = commands.add_parser(
        "export", help="export a trained model to ONNX, NumPy or C99",
        description="Export the model of a training run (rnnkit train lm, or rnnkit classify "
                    "train with --no-bidirectional --pooling last) for streaming deployment: "
                    "ONNX with state inputs/outputs, a NumPy-only bundle, or C99 source with a "
                    "step function and a generated test program. Every export is run on random "
                    "inputs and compared with the PyTorch model before success is reported; the "
                    "task's vocabulary or normalization is written beside it as task.json.")
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder (--out of a training run) or one checkpoint")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write: a new or empty one, or an earlier export's "
                             "(never a training run's)")
    parser.add_argument("--which", choices=("best", "last"), default="best")
    parser.add_argument("--name", default="rnnkit_model",
                        help="C only: prefix of the generated files and symbols")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_export)


def _load_task_model(path: str, which: str):
    """(model with streaming_parts(), task.json content) for a run's checkpoint."""
    from rnnkit.training import load_checkpoint

    task = load_checkpoint(path, which=which).meta.get("task")
    if task == "lm":
        from rnnkit.tasks.lm.task import load_lm

        loaded = load_lm(path, which=which)
        return loaded.model, {"task": "lm", "input": "token ids (one character each)",
                              "vocabulary": loaded.vocabulary.to_list(),
                              "output": "next-character logits"}
    if task == "classify":
        from rnnkit.tasks.classify.task import load_classifier

        loaded = load_classifier(path, which=which)
        return loaded.model, {"task": "classify",
                              "input": "features normalized as (x - mean) / std per channel",
                              "normalization": loaded.normalizer.to_dict(),
                              "classes": loaded.class_names,
                              "output": "class logits of the sequence so far"}
    raise ValueError(f"{path} holds a {task!r} run; rnnkit export supports 'lm' and 'classify' "
                     f"runs (a forecast run is an ensemble with its own scaler: export one member "
                     f"with rnnkit.export from Python)")


def _is_earlier_export(folder: Path) -> bool:
    """Whether ``folder`` holds the task.json an rnnkit export writes (so exporting into it
    again replaces only an export's files)."""
    try:
        info = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and {"task", "input", "output"} <= info.keys()


def _check_export_folder(out: Path) -> None:
    """Refuse an --out whose files an export would overwrite: a file, a training run (or a
    folder inside one), or a folder holding anything but an earlier export."""
    from rnnkit.training.checkpoint import enclosing_run

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, and {out} is a file; choose another --out")
    run = enclosing_run(out, itself=True)
    if run is not None:
        raise ValueError(f"--out {out} is in the training run {run}, whose files the export "
                         f"would mix with or overwrite; choose a folder outside it")
    if out.is_dir() and any(out.iterdir()) and not _is_earlier_export(out):
        raise ValueError(f"--out {out} already holds files that are not an rnnkit export; "
                         f"choose a new or empty folder")


def run_export(args) -> int:
    from rnnkit.export import export_c, export_numpy, export_onnx
    from rnnkit.training import atomic_write

    out = Path(args.out)
    _check_export_folder(out)
    model, task_info = _load_task_model(args.checkpoint, args.which)
    if args.format == "onnx":
        report = export_onnx(model, out)
    elif args.format == "numpy":
        report = export_numpy(model, out)
    else:
        report = export_c(model, out, name=args.name)
    atomic_write(out / "task.json", (json.dumps(task_info, indent=2) + "\n").encode("utf-8"))
    if args.json:
        print(json.dumps({"format": report.format, "folder": str(report.folder),
                          "files": list(report.files) + ["task.json"],
                          "max_abs_diff": report.max_abs_diff, "note": report.note}, indent=2))
    else:
        print(report.summary())
        print("files: " + ", ".join(list(report.files) + ["task.json"]))
    return 0
