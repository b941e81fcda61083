"""`rnnkit export`: a trained run as ONNX, a NumPy bundle or C99 source, checked against PyTorch."""

from __future__ import annotations

import json
import shutil
import sys
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
                    "task's vocabulary or normalization is written beside it as task.json. (A C "
                    "export is written but not checked where no C compiler is found; a "
                    "warning says so.)")
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder (--out of a training run) or one checkpoint")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write: a new or empty one, or an earlier export's "
                             "(never a training run's)")
    parser.add_argument("--which", choices=("best", "last"), default="best")
    parser.add_argument("--name", default=None,
                        help="C only: prefix of the generated files and symbols "
                             "(default rnnkit_model)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_export, out_required=True)


def _load_task_model(path: str, which: str):
    """(model with streaming_parts(), task.json content) for a run's checkpoint."""
    from rnnkit.training import load_checkpoint

    task = load_checkpoint(path, which=which).meta.get("task")
    if task == "lm":
        from rnnkit.tasks.lm.task import load_lm

        loaded = load_lm(path, which=which)
        return loaded.model, {"task": "lm", **_exported_from(loaded),
                              "input": "token ids (one character each)",
                              "vocabulary": loaded.vocabulary.to_list(),
                              "output": "next-character logits"}
    if task == "classify":
        from rnnkit.tasks.classify.task import load_classifier

        loaded = load_classifier(path, which=which)
        return loaded.model, {"task": "classify", **_exported_from(loaded),
                              "input": "features normalized as (x - mean) / std per channel",
                              "normalization": loaded.normalizer.to_dict(),
                              # the CSV feature columns, in the order of the normalization
                              **({"channel_names": loaded.channel_names}
                                 if loaded.channel_names else {}),
                              "classes": loaded.class_names,
                              "output": "class logits of the sequence so far"}
    raise ValueError(f"{path} holds a {task!r} run; rnnkit export supports 'lm' and 'classify' "
                     f"runs (a forecast run's scaler, decoder and ensemble run only in Python: "
                     f"use rnnkit forecast predict)")


def _exported_from(loaded) -> dict:
    """Which checkpoint an export holds (``--which best`` takes the newest where none is
    recorded as best, so the step says what was exported)."""
    return {"checkpoint": str(Path(loaded.checkpoint).resolve()), "step": loaded.step}


def _earlier_export(folder: Path) -> dict | None:
    """The task.json of the rnnkit export ``folder`` holds, or None (so exporting into it
    again replaces only an export's files)."""
    try:
        info = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _library_export(folder)
    return info if isinstance(info, dict) and {"task", "input", "output"} <= info.keys() else None


#: an ONNX ModelProto's producer_name field (number 2, length 6) as rnnkit's exports write it
_ONNX_PRODUCER = b"\x12\x06rnnkit"


def _library_export(folder: Path) -> dict | None:
    """For a folder that export_numpy, export_onnx or export_c wrote from Python (no
    task.json): ``{"files": [...]}`` naming its files, so the CLI may replace that export as
    it replaces its own; None where anything else is there (a user's file, never touched).
    An export is known by its content, not only its file names: all three NumPy files, an
    ONNX model whose producer is rnnkit, or a C header that says export_c wrote it.
    """
    from rnnkit.export.c_code import c_file_names
    from rnnkit.export.numpy_bundle import FILES
    from rnnkit.export.onnx_export import MODEL_FILENAME

    if not folder.is_dir():
        return None
    # hidden temporary files of an export killed while staging (rnnkit.export.files) are no
    # one's: ignored here, as a user's __pycache__ is
    present = {path.name for path in folder.iterdir()
               if not (path.name.startswith(".") and path.name.endswith(".tmp"))} - {"__pycache__"}
    exports = [set(FILES)] if present == set(FILES) else []
    if present == {MODEL_FILENAME} and _written_by_rnnkit(folder / MODEL_FILENAME,
                                                           _ONNX_PRODUCER):
        exports.append(present)
    for stem in (Path(name).stem for name in present if name.endswith(".h")):
        marker = f"/* {stem}.h: a recurrent model exported by rnnkit.export.export_c".encode()
        if present <= set(c_file_names(stem)) and _written_by_rnnkit(folder / f"{stem}.h",
                                                                        marker, at_start=True):
            exports.append(present)
    return {"files": sorted(present)} if exports else None


def _written_by_rnnkit(path: Path, marker: bytes, at_start: bool = False) -> bool:
    try:
        head = path.read_bytes()[:4096]  # the ONNX producer and a header's first line
    except OSError:
        return False
    return head.startswith(marker) if at_start else marker in head



def _remove_files_left_by(earlier: dict | None, out: Path, kept: list[str]) -> None:
    """Remove the files of the earlier export in ``out`` that the new one did not replace (a
    model.onnx beside a new NumPy export would pass for part of it)."""
    listed = earlier.get("files", []) if earlier else []  # older exports listed none
    for name in listed:
        if isinstance(name, str) and name not in kept and Path(name).name == name:
            (out / name).unlink(missing_ok=True)


def _check_export_folder(out: Path, planned: tuple[str, ...]) -> None:
    """Refuse an --out whose files an export would overwrite: a file, a training run (or a
    folder inside one), a folder that is not an earlier export, or a user's file beside an
    earlier export that one of ``planned`` (the files this export writes) would replace."""
    from rnnkit.training.checkpoint import enclosing_run

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, and {out} is a file; choose another --out")
    run = enclosing_run(out, itself=True)
    if run is not None:
        raise ValueError(f"--out {out} is in the training run {run}, whose files the export "
                         f"would mix with or overwrite; choose a folder outside it")
    if out.is_dir() and any(out.iterdir()):
        earlier = _earlier_export(out)
        if earlier is None:
            raise ValueError(f"--out {out} already holds files that are not an rnnkit export; "
                             f"choose a new or empty folder")
        listed = earlier.get("files")  # older exports listed none: their folder is taken as is
        if isinstance(listed, list):
            # a user's file beside an export (notes, a README) that this export would replace;
            # other files (a __pycache__, a compiled test program) are left alone
            clash = [name for name in planned if (out / name).exists() and name not in listed]
            if clash:
                raise ValueError(f"--out {out} holds {', '.join(clash)}, which this export "
                                 f"would replace and the earlier export there did not write; "
                                 f"choose a new or empty folder")


def _files_written(form: str, name: str) -> tuple[str, ...]:
    """The files an export of format ``form`` writes (``name``: a C export's prefix)."""
    from rnnkit.export.c_code import c_file_names
    from rnnkit.export.numpy_bundle import FILES
    from rnnkit.export.onnx_export import MODEL_FILENAME

    return {"numpy": FILES, "onnx": (MODEL_FILENAME,)}.get(form) or c_file_names(name)


def run_export(args) -> int:
    from rnnkit.export import export_c, export_numpy, export_onnx
    from rnnkit.training import atomic_write

    if args.name is not None and args.format != "c":
        raise ValueError(f"--name names the files of a C export; --format {args.format} "
                         f"writes fixed file names, so leave --name out")
    if args.format == "c":
        from rnnkit.export.c_code import check_c_name

        # before anything is read or written (an earlier export's task.json would list the
        # files of a name that is then refused)
        check_c_name("rnnkit_model" if args.name is None else args.name, option="--name")
    out = Path(args.out)
    planned = _files_written(args.format, args.name or "rnnkit_model")
    _check_export_folder(out, planned)
    earlier = _earlier_export(out)
    model, task_info = _load_task_model(args.checkpoint, args.which)
    if earlier is not None and isinstance(earlier.get("files"), list):
        # list the files about to be written first: an export stopped part-way (Ctrl-C, a
        # failed check) leaves them listed, so the same command can be run again
        merged = {**earlier, "files": sorted({*earlier["files"], *planned})}
        atomic_write(out / "task.json", (json.dumps(merged, indent=2) + "\n").encode("utf-8"))
    was_new = not out.exists()
    was_empty = out.is_dir() and not any(out.iterdir())
    try:
        if args.format == "onnx":
            report = export_onnx(model, out)
        elif args.format == "numpy":
            report = export_numpy(model, out)
        else:
            report = export_c(model, out, name=args.name or "rnnkit_model")
    except BaseException:
        # a new or empty --out holds only what this export wrote: clear it, so the same
        # command can be run again (a folder of export files without task.json is refused)
        if earlier is not None and isinstance(earlier.get("files"), list):
            # list only the planned files this export did write: one it never wrote and a
            # user puts there later is the user's, never to be replaced or removed
            written = [name for name in planned if (out / name).exists()]
            kept = {**earlier, "files": sorted({*earlier["files"], *written})}
            atomic_write(out / "task.json", (json.dumps(kept, indent=2) + "\n").encode("utf-8"))
        if was_new:
            shutil.rmtree(out, ignore_errors=True)
        elif was_empty:
            for path in out.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        raise
    files = list(report.files) + ["task.json"]
    task_info["files"] = files
    atomic_write(out / "task.json", (json.dumps(task_info, indent=2) + "\n").encode("utf-8"))
    _remove_files_left_by(earlier, out, kept=files)
    if args.json:
        print(json.dumps({"format": report.format, "folder": str(report.folder),
                          "files": files, "max_abs_diff": report.max_abs_diff,
                          "note": report.note}, indent=2))
    else:
        print(report.summary())
        print("files: " + ", ".join(files))
    if report.max_abs_diff is None:
        print(f"warning: the export was not checked against the PyTorch model ({report.note})",
              file=sys.stderr)
    return 0
