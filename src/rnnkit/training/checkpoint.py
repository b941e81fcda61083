"""Checkpoints that survive crashes: safetensors tensors + JSON, written atomically.

Layout of a run directory's ``checkpoints/`` folder::

    checkpoints/
      index.json               {"last": "step-00001200", "best": "step-00001000", "steps": {...}}
      step-00001200/
        model.safetensors      the model's state_dict
        state.safetensors      every other tensor: optimizer moments, RNG states, carried state
        checkpoint.json        config, vocabulary, step, optimizer/scheduler structure, and the
                               SHA-256 of both tensor files

Why this is safe against a crash at any instant: a checkpoint is assembled in a hidden
temporary folder, every file is fsynced, and the folder is renamed into place in one step;
``index.json`` is replaced the same way (temp file, fsync, rename) only after that. A reader
verifies the checksums and, for ``which="last"``, falls back to the newest checkpoint that is
intact, so a half-written or damaged checkpoint is never loaded and never replaces a good one.
"""

from __future__ import annotations

import dataclasses

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.notices import warn_once

log = logging.getLogger("rnnkit.training")

CHECKPOINTS = "checkpoints"
INDEX = "index.json"
META = "checkpoint.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not fit the model."""


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _process_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it (and restore it at once)
    os.umask(mask)
    return mask


_UMASK = _process_umask()  # read once at import, before any threads of ours exist


def atomic_write(path: str | os.PathLike, data: bytes | str, *,
                 parents: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The bytes (a str is written as UTF-8) go to a temporary file in the same folder, are
    flushed and fsynced, and the file is renamed over ``path`` (``os.replace`` is atomic on
    POSIX and Windows). With ``parents`` a missing folder is created first (as
    ``mkdir(parents=True)``); without, it is an error naming the folder.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.is_dir():  # else the error would name the temporary file
        if path.parent.exists():
            raise NotADirectoryError(f"cannot write {path}: {path.parent} is a file, not a "
                                     f"folder")
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.is_dir():  # else os.replace fails naming the temporary file
        raise IsADirectoryError(f"cannot write {path}: it is a folder; name a file")
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    except OSError as error:  # it named the temporary file, which the user never asked for
        renamed = type(error)(f"cannot write {path} ({error.strerror}); choose a folder you "
                              f"can write to")
        renamed.errno = error.errno
        raise renamed from None
    try:
        # the descriptor is owned by the file object from here, so every failure below closes it
        with os.fdopen(handle, "wb") as file:
            # mkstemp makes the file private (0600); give it the mode a plain open() would (or
            # the replaced file's), so exports and checkpoints can be shared like any other file.
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK
            os.chmod(temporary, mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


@contextlib.contextmanager
def folder_for_writing(folder: str | os.PathLike):
    """Make ``folder`` (and missing parents) for the files the block writes into it; if the
    block fails (a full disk, a folder that cannot be written, a refused check), remove the
    folders this call made, with what was written there, so that a failed write leaves no
    empty or half-filled folder behind. A folder that existed before is not removed (what the
    block wrote into it stays). Yields the folder as a Path.

    Each missing level of the path is made in turn with ``exist_ok=False``, as
    ``mkdir(parents=True)`` would make it, and only the levels this call made are removed: a
    folder another process made first, even in the same instant, is never counted as this
    call's, and ``new/../x`` makes and removes both ``new`` and ``x``."""
    folder = Path(folder)
    levels = [*reversed(folder.parents), folder]
    made = []
    try:
        for level in levels:
            if level.exists() or level == level.parent:
                continue
            try:
                level.mkdir()
            except FileExistsError:
                continue
            made.append(level)
        folder.mkdir(parents=True, exist_ok=True)  # the usual errors for a file in the way
        yield folder
    except BaseException:
        for level in reversed(made):  # deepest first; ``new/../x`` made ``x`` outside ``new``
            shutil.rmtree(level, ignore_errors=True)
        raise


# --- nested structures (optimizer state, RNG state, carried hidden state) -> JSON + tensors ----

def flatten_tensors(value: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-able skeleton of ``value`` with each tensor moved into ``tensors``.

    Handles dicts (any key type), lists, tuples, NamedTuples and plain scalars, which covers
    torch optimizer and RNG states.
    """
    if isinstance(value, torch.Tensor):
        key = path or "tensor"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        # NamedTuples (e.g. LSTMState) are stored as their type name and fields; rebuilding them
        # needs the type, which the caller passes to unflatten_tensors.
        return {"__namedtuple__": type(value).__name__,
                "fields": [flatten_tensors(v, tensors, f"{path}.{name}")
                           for name, v in zip(value._fields, value)]}
    if isinstance(value, tuple):
        return {"__tuple__": [flatten_tensors(v, tensors, f"{path}.{i}")
                              for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [flatten_tensors(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {"__items__": [[key, flatten_tensors(v, tensors, f"{path}.{key}")]
                              for key, v in value.items()]}
    if isinstance(value, float) and not math.isfinite(value):
        # strict JSON has no inf or NaN (the best loss is inf before the first evaluation)
        # float() first: repr of a NumPy scalar is 'np.float64(inf)', which float() cannot read
        return {"__float__": repr(float(value))}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint ({path or 'value'})")


def unflatten_tensors(skeleton: Any, tensors: dict[str, torch.Tensor],
                      namedtuples: dict[str, type] | None = None) -> Any:
    """Inverse of :func:`flatten_tensors`; ``namedtuples`` maps type names to the types."""
    namedtuples = namedtuples or {}
    if isinstance(skeleton, list):
        return [unflatten_tensors(v, tensors, namedtuples) for v in skeleton]
    if isinstance(skeleton, dict):
        if "__float__" in skeleton:
            return float(skeleton["__float__"])
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__tuple__" in skeleton:
            return tuple(unflatten_tensors(v, tensors, namedtuples) for v in skeleton["__tuple__"])
        if "__namedtuple__" in skeleton:
            fields = [unflatten_tensors(v, tensors, namedtuples) for v in skeleton["fields"]]
            kind = namedtuples.get(skeleton["__namedtuple__"])
            return kind(*fields) if kind is not None else tuple(fields)
        if "__items__" in skeleton:
            return {key: unflatten_tensors(v, tensors, namedtuples)
                    for key, v in skeleton["__items__"]}
    return skeleton


# --- saving --------------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_digest(arrays) -> str:
    """sha256 of the NumPy arrays in ``arrays`` (None entries skipped), each with its dtype
    and shape: what a run records of its data, so that a resume can tell that the data
    changed under it (see the tasks' resume checks)."""
    digest = hashlib.sha256()
    for array in arrays:
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def _record_digest(record: dict) -> str:
    """sha256 of a checkpoint record's entries other than its checksums, in one canonical JSON
    form (sorted keys, no spaces), so that an edited record is caught like an edited tensor
    file: a changed config, vocabulary or training state would otherwise surface later as a
    traceback (weights that do not fit the model it describes) or load silently wrong."""
    body = {key: value for key, value in record.items() if key != "sha256"}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))


REPLACED = ".replaced"  # suffix of the old copy while a step is saved again
SET_ASIDE = ".skipped"  # suffix of an unreadable checkpoint that a resumed run set aside
PRUNED = ".pruned"  # suffix of an old checkpoint while it is deleted


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


_CHECKPOINT_NAME = re.compile(r"step-\d{8,}")


def checkpoint_folders(folder: Path) -> list[Path]:
    """The checkpoint folders in ``folder``, oldest first: named as :func:`checkpoint_name`
    names them. A user's ``step-00000010.bak`` copy or a ``step-notes`` folder is no
    checkpoint: pruning counted (and deleted) them, and a resume loaded the copy."""
    return sorted((p for p in folder.glob("step-*")
                   if _CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir()), key=checkpoint_step)


def saved_checkpoint(run_dir: str | os.PathLike, step: int) -> str | None:
    """The folder of the checkpoint of ``step`` in the run folder ``run_dir``, or None where
    none was saved at that step."""
    folder = Path(run_dir) / CHECKPOINTS / checkpoint_name(step)
    return str(folder) if (folder / META).is_file() else None


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint folder (or its aside copy, ``.step-N.replaced``); names sort
    as text only up to 8 digits."""
    return int(path.name.lstrip(".").split(".")[0][len("step-"):])


def set_aside_newer_checkpoints(run_dir: str | os.PathLike, step: int) -> list[tuple[Path, Path]]:
    """Rename every checkpoint of the run folder ``run_dir`` past ``step`` to
    ``<name>.skipped`` (``.skipped-2``, ... if taken) and return the (old, new) paths.

    A run resumed from ``step`` loaded its newest checkpoint that could be read, so any later
    one could not (damaged, or written by a newer rnnkit); training on saves those steps
    again, which would replace those folders, and pruning would delete them. Under their new names they are no checkpoints
    (:func:`checkpoint_folders`): nothing loads, replaces or prunes them, and the user keeps
    what was left of them. The index is rewritten to name only checkpoints that remain: the
    newest as last, and no best if the best was set aside (the resumed run marks its own)."""
    folder = Path(run_dir) / CHECKPOINTS
    moved = []
    for path in checkpoint_folders(folder):
        if checkpoint_step(path) <= step:
            continue
        target, copies = folder / f"{path.name}{SET_ASIDE}", 1
        while target.exists() or target.is_symlink():
            copies += 1
            target = folder / f"{path.name}{SET_ASIDE}-{copies}"
        os.replace(path, target)
        moved.append((path, target))
    if moved:
        _fsync_directory(folder)
        index = read_index(Path(run_dir))
        names = [old.name for old, _ in moved]
        remaining = checkpoint_folders(folder)
        index["last"] = remaining[-1].name if remaining else None
        if index.get("best") in names:
            index["best"] = None
        atomic_write(folder / INDEX, json.dumps(index, indent=1).encode("utf-8"))
    return moved


def read_index(run_dir: Path) -> dict:
    path = run_dir / CHECKPOINTS / INDEX
    if not path.is_file():
        return {"last": None, "best": None}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        index = None
    if not isinstance(index, dict):
        # A damaged index is rebuilt from the folders themselves (see _candidates).
        return {"last": None, "best": None}
    return index


def save_checkpoint(run_dir: str | os.PathLike, step: int, *, model_state: dict,
                    train_state: dict, meta: dict, best: bool = False,
                    keep_last: int = 3) -> Path:
    """Write checkpoint ``step-<step>`` atomically, update the index, prune old ones.

    ``model_state`` is a model ``state_dict``; ``train_state`` any nested structure of tensors
    and scalars (optimizer, RNG, carried state); ``meta`` JSON-able (config, vocabulary).
    ``keep_last`` newest checkpoints are kept, and the best one in any case.
    """
    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)

    from safetensors.torch import save as tensors_to_bytes

    # Tied weights share storage, which safetensors refuses; a copy per key is simplest.
    model_bytes = tensors_to_bytes({key: value.detach().cpu().contiguous().clone()
                                    for key, value in model_state.items()})
    state_tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_tensors(train_state, state_tensors)
    state_bytes = tensors_to_bytes(state_tensors)
    record = {"format": FORMAT_VERSION, "step": step, "meta": meta, "train_state": skeleton}
    # the digest of the record as it will read back (JSON turns every key into a string)
    record_digest = _record_digest(json.loads(json.dumps(record)))
    record["sha256"] = {MODEL_FILE: _sha256(model_bytes), STATE_FILE: _sha256(state_bytes),
                        META: record_digest}
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}."))
    try:
        # mkdtemp makes it private (0700); a checkpoint folder gets the umask's mode, as any
        # folder would, so that runs can be shared (atomic_write does the same for files)
        os.chmod(staging, 0o777 & ~_UMASK)
        for filename, data in ((MODEL_FILE, model_bytes), (STATE_FILE, state_bytes),
                               (META, json.dumps(record, indent=1).encode("utf-8"))):
            with open(staging / filename, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        _fsync_directory(staging)
        target = folder / name
        if target.exists():  # the same step saved again (e.g. Ctrl-C right after an eval):
            # move the old copy aside rather than delete it first, so a crash between the two
            # renames leaves that copy for loading (see _candidates), never no checkpoint
            aside = folder / f".{name}{REPLACED}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(target, aside)
        os.replace(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if error.filename is None:  # a write's (a full disk's) names no file: say which save
            raise _failed_save(error, folder, name) from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_directory(folder)

    index = read_index(run_dir)
    index["last"] = name
    if best:
        index["best"] = name
    atomic_write(folder / INDEX, json.dumps(index, indent=1).encode("utf-8"))
    _prune(folder, keep=max(1, keep_last), protect={index["last"], index.get("best")})
    return target


def _failed_save(error: OSError, folder: Path, name: str) -> OSError:
    """``error`` (no file named) as one line saying which save failed and what is left."""
    earlier = [p for p in checkpoint_folders(folder) if p.name != name]
    left = (f"the earlier checkpoints are kept; free space, then resume from {folder.parent}"
            if earlier else "the run has no checkpoint yet; free space and start it again")
    failed = OSError(f"could not save checkpoint {name} in {folder}: "
                     f"{error.strerror or error}; {left}")
    failed.errno = error.errno  # one argument: str() is the message, with no "[Errno N]"
    return failed


def check_checkpoint_folder(run_dir: str | os.PathLike, after_step: int = 0) -> None:
    """Refuse, before any training, a broken link where the run will save a checkpoint (a
    ``step-*`` name past ``after_step``, the step it starts from): no checkpoint loads from
    it, and a save of that step cannot replace it, so the run would fail at that save, after
    the training it was about to keep. Links at earlier steps are never written to."""
    folder = Path(run_dir) / CHECKPOINTS
    for entry in sorted(folder.glob("step-*")):
        step = entry.name[len("step-"):]
        if (entry.is_symlink() and not entry.exists() and step.isdigit()
                and int(step) > after_step):
            raise CheckpointError(f"{entry} is a broken link ({os.readlink(entry)!r} does not "
                                  f"exist), where this run saves its checkpoints; remove the "
                                  f"link or restore what it points to")


def mark_best(run_dir: str | os.PathLike, step: int) -> None:
    """Name checkpoint ``step-<step>`` the run's best in its index, if it exists and the index
    says otherwise (the index is rewritten atomically; the newest folder is recorded as last)."""
    folder = Path(run_dir) / CHECKPOINTS
    name = checkpoint_name(step)
    index = read_index(Path(run_dir))
    if index.get("best") == name or not (folder / name).is_dir():
        return
    newest = checkpoint_folders(folder)[-1].name
    index.update(best=name, last=newest)
    atomic_write(folder / INDEX, json.dumps(index, indent=1).encode("utf-8"))


def _prune(folder: Path, keep: int, protect: set) -> None:
    for aside in folder.glob(f".step-*{REPLACED}"):
        original = folder / aside.name[1:-len(REPLACED)]
        if aside.is_dir() and not original.exists():
            # a re-save of that step crashed between its renames: this is its only copy
            os.replace(aside, original)
    names = [p.name for p in checkpoint_folders(folder)]
    for old in names[:-keep]:
        if old not in protect:
            # hidden by one rename first: rmtree deletes file by file, and a crash part-way
            # left a step-* folder without its checkpoint.json for evaluate to trip on; a
            # hidden leftover is garbage that the loop below removes on the next save
            doomed = folder / f".{old}{PRUNED}"
            shutil.rmtree(doomed, ignore_errors=True)
            try:
                os.replace(folder / old, doomed)
            except OSError:  # as before, a checkpoint that cannot go stays; the save stands
                continue
            shutil.rmtree(doomed, ignore_errors=True)
    # Staging folders and index files of a crashed save are garbage.
    for stale in folder.glob(".step-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    for stale in folder.glob(f".{INDEX}.*.tmp"):
        stale.unlink(missing_ok=True)


# --- loading --------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """A verified checkpoint: where it is, its tensors and its JSON record."""

    path: Path
    step: int
    model_state: dict[str, torch.Tensor]
    train_state: Any
    meta: dict

    def load_model(self, model: torch.nn.Module) -> None:
        """``model.load_state_dict`` of these weights. Weights that do not fit the model (a
        setting changed since, a checkpoint of another rnnkit) are a one-line CheckpointError
        naming the checkpoint and the first mismatch, not torch's multi-line traceback."""
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as error:
            lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0]
            raise CheckpointError(f"checkpoint {self.path} does not fit this model "
                                  f"({detail})") from None
        # A NaN loss stops training before a save, so such weights come from outside (or from
        # an update that overflowed just before a Ctrl-C save); scored, they printed "nan bits
        # per character" as a result.
        for name, parameter in model.named_parameters():
            if parameter.is_floating_point() and not bool(torch.isfinite(parameter).all()):
                raise CheckpointError(f"checkpoint {self.path} holds NaN or inf weights (in "
                                      f"{name}); load an earlier checkpoint of the run")


def _read_checkpoint(path: Path, namedtuples) -> Checkpoint:
    from safetensors.torch import load as tensors_from_bytes

    meta_path = path / META
    if not meta_path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint (no {META})")
    try:
        record = json.loads(meta_path.read_text(encoding="utf-8"))
        blobs = {name: (path / name).read_bytes() for name in (MODEL_FILE, STATE_FILE)}
    except (OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is damaged ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), dict):
        raise CheckpointError(f"checkpoint {path} is damaged ({META} is not a checkpoint record)")
    for name, data in blobs.items():
        if record["sha256"].get(name) != _sha256(data):
            raise CheckpointError(f"checkpoint {path} is damaged ({name} does not match its "
                                  f"checksum)")
    if record.get("format") != FORMAT_VERSION:  # first: another format may digest otherwise
        raise CheckpointError(f"checkpoint {path} has format {record.get('format')}; this "
                              f"rnnkit reads format {FORMAT_VERSION}")
    # absent from records written before 2026-12-06, which are read unchecked as before
    if META in record["sha256"] and record["sha256"][META] != _record_digest(record):
        raise CheckpointError(f"checkpoint {path} is damaged ({META} was changed after it was "
                              f"saved and no longer matches its checksum)")
    state_tensors = tensors_from_bytes(blobs[STATE_FILE])
    with reading_record(path):
        if not isinstance(record["meta"], dict):
            raise TypeError("'meta' is not a table")
        return Checkpoint(
            path=path, step=int(record["step"]),
            model_state=tensors_from_bytes(blobs[MODEL_FILE]),
            train_state=unflatten_tensors(record["train_state"], state_tensors, namedtuples),
            meta=record["meta"],
        )


@contextlib.contextmanager
def reading_record(path: Path):
    """Around code that reads entries of a checkpoint's JSON record: one that is missing or of
    the wrong type (an edited or foreign file; only the tensor files carry checksums) becomes a
    CheckpointError naming the checkpoint, not a traceback. So does an entry the code refuses
    (a ValueError such as an unknown config key): it came from the record, not from the user's
    flags, so the message names the record, and another rnnkit version as the likely cause."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise CheckpointError(f"checkpoint {path} is damaged ({META} lacks or mistypes an "
                              f"entry: {error})") from None
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path} holds a record this rnnkit cannot read "
                              f"({error}); was it written by another rnnkit version, or "
                              f"edited?") from None


def _candidates(folder: Path, which: str) -> list[Path]:
    """Checkpoint folders to try, best guess first."""
    # Zero-padded step numbers sort in time order; the newest folder is the last checkpoint
    # even when a crash came between its rename and the index update.
    everything = checkpoint_folders(folder)
    # a save of the same step again, cut off between its two renames, left the old copy aside
    everything += [p for p in folder.glob(f".step-*{REPLACED}")
                   if p.is_dir() and _CHECKPOINT_NAME.fullmatch(p.name[1:-len(REPLACED)])
                   and not (folder / p.name[1:-len(REPLACED)]).exists()]
    everything.sort(key=checkpoint_step, reverse=True)
    best = _recorded_best(folder)
    if which == "last" or best is None:
        return everything  # no best recorded (or a damaged index): the newest
    # a damaged best falls back to the newest intact checkpoint, with a warning
    return [folder / best] + [p for p in everything if p.name != best]


def _recorded_best(folder: Path) -> str | None:
    """The name of the best checkpoint the index of ``folder`` records, if that one exists."""
    best = read_index(folder.parent).get("best")
    return best if (isinstance(best, str) and _CHECKPOINT_NAME.fullmatch(best)
                    and (folder / best).is_dir()) else None


def _warn_once(problem: str, fallback: str) -> None:
    """Log ``problem``, once per (problem, fallback) within one command
    (:func:`rnnkit.notices.once_per_command`)."""
    warn_once(log, ("checkpoint", problem, fallback), "%s", problem)


def load_checkpoint(path: str | os.PathLike, *, which: str = "last",
                    namedtuples: dict[str, type] | None = None) -> Checkpoint:
    """Load and verify a checkpoint.

    ``path`` is a run directory (``--out`` of a training run), its ``checkpoints/`` folder, or
    one ``step-*`` folder. ``which`` picks ``"last"`` (falling back to older intact checkpoints
    when the newest is damaged, with a warning) or ``"best"`` (by validation loss; the newest
    intact one, with a warning, when the best is damaged or none is recorded).
    """
    if which not in ("last", "best"):
        raise ValueError(f"which must be 'last' or 'best'; got {which!r}")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint path {str(path)!r} does not exist; pass the --out "
                              f"folder of a training run or one of its checkpoints")
    if (path / META).is_file():
        try:
            return _read_checkpoint(path, namedtuples)
        except CheckpointError as error:
            run = enclosing_run(path)
            if run is None or "is damaged" not in str(error):
                raise
            # one checkpoint named by its folder: its run may hold an intact one
            raise CheckpointError(f"{error}; pass the run folder {str(run)!r} for its newest "
                                  f"intact checkpoint") from None
    if path.parent.name == CHECKPOINTS and any((path / f).exists() for f in (MODEL_FILE, STATE_FILE)):
        # a checkpoint folder whose record is gone (a copy or a deletion cut short): say so,
        # rather than that no checkpoint was found in a folder named like one
        raise CheckpointError(f"checkpoint {str(path)!r} is incomplete: it has no {META}; load "
                              f"the run folder {str(path.parent.parent)!r} for its newest intact "
                              f"checkpoint")
    folder = path if path.name == CHECKPOINTS else path / CHECKPOINTS
    candidates = _candidates(folder, which) if folder.is_dir() else []
    if not candidates:
        raise CheckpointError(f"no checkpoint found in {str(path)!r}; pass the --out folder of "
                              f"a training run or one of its checkpoints")
    problems = []
    for candidate in candidates:
        try:
            checkpoint = _read_checkpoint(candidate, namedtuples)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        for problem in problems:
            _warn_once(f"skipping {problem}; using {candidate.name}", str(candidate))
        if which == "best" and _recorded_best(folder) is None and not problems:
            _warn_once(f"{str(path)!r} records no existing best checkpoint (none was "
                       f"validated yet, or {INDEX} is damaged or names a removed one); using "
                       f"the newest, {candidate.name}", str(candidate))
        return checkpoint
    fix = ("train the run again (a copy of it, if you have one, may be intact)"
           if "is damaged" in problems[0] else
           "load it with the rnnkit version that wrote it" if "has format" in problems[0] else
           "train the run again, or load it with the rnnkit version that wrote it")
    raise CheckpointError(f"no intact checkpoint in {str(path)!r}: {problems[0]}; {fix}")


#: how each task's checkpoints are used, for the message when another task's loader gets one
_TASK_LOADERS = {
    "lm": ("rnnkit.tasks.lm.task.load_lm", "`rnnkit evaluate` or `rnnkit generate`"),
    "classify": ("rnnkit.tasks.classify.task.load_classifier", "`rnnkit classify evaluate`"),
    "forecast": ("rnnkit.tasks.forecast.task.load_forecaster", "`rnnkit forecast predict`"),
}


def require_task(checkpoint: Checkpoint, task: str, what: str) -> None:
    """A one-line CheckpointError unless ``checkpoint`` was saved by ``task`` (``what`` names
    that task's model); the message says what takes the checkpoint instead."""
    other = checkpoint.meta.get("task")
    if other == task:
        return
    hint = ""
    if isinstance(other, str) and other in _TASK_LOADERS:
        loader, commands = _TASK_LOADERS[other]
        hint = f"; use it with {commands} (in Python, {loader})"
    if other is None:  # a backtest fold's, or one a Trainer saved without a task's meta
        raise CheckpointError(f"{checkpoint.path} records no task, so it is not {what}; pass "
                              f"the folder of a run that a train command wrote")
    raise CheckpointError(f"{checkpoint.path} is a {other!r} checkpoint, not {what}{hint}")


def enclosing_run(path: Path, *, itself: bool = False) -> Path | None:
    """The training run that ``path`` lies below (in the run folder itself, its checkpoints
    folder, one of its checkpoints, or deeper), or None; with ``itself``, also the run that
    ``path`` is (a run, its checkpoints folder or one checkpoint). A run is known by its index."""
    resolved = Path(path).resolve()
    for folder in ([resolved] if itself else []) + list(resolved.parents):
        if (folder / META).is_file():  # one checkpoint: the run is two levels up
            return folder.parent.parent
        if (folder / INDEX).is_file():  # a checkpoints folder
            return folder.parent
        if (folder / CHECKPOINTS / INDEX).is_file():
            return folder
    return None


def model_shape_keys(model_config) -> tuple[str, ...]:
    """The keys of a task's model config that a resumed run must keep: all but ``dropout``,
    which changes no weight and may well be changed to continue training."""
    return tuple(f.name for f in dataclasses.fields(model_config) if f.name != "dropout")


def check_resumed_settings(run_dir: str | os.PathLike,
                           settings: dict[str, tuple[Any, tuple[str, ...]]],
                           builtin: tuple[str, ...] = ()) -> Checkpoint:
    """Before resuming the run in ``run_dir``: for each config section named in ``settings``
    (``{"data": (config.data, ("corpus", ...)), ...}``: the section's dataclass and keys), each
    key must equal what the run was trained with, else a one-line ValueError naming the
    setting. A resumed run must read its data as before: other data (or another seed where the
    seed draws a split) leaves the saved data position and carried state pointing at nothing (a
    traceback deep in a batch), or silently changes what the weights mean. And it must build
    the same model, or the saved weights do not fit it (:func:`model_shape_keys`). A name in
    ``builtin`` (the task's built-in datasets, in their own spelling) equals the same name
    saved in another case. Returns the last checkpoint."""
    last = load_checkpoint(run_dir, which="last")
    for section, (current, keys) in settings.items():
        with reading_record(last.path):
            saved = dict(last.meta["config"][section])
        for key in keys:
            if key not in saved:  # a run from before the key existed: nothing to compare
                continue
            before, now = saved[key], getattr(current, key)
            now = list(now) if isinstance(now, tuple) else now
            if isinstance(before, str) and now in builtin and before.lower() == now.lower():
                before = now  # a built-in dataset's name, saved in another case by an older run
            if before != now and isinstance(before, str) and before and Path(before).exists():
                before = str(Path(before).resolve())  # a relative path of an older run's config
            if isinstance(before, str) and isinstance(now, list):
                before = [before]  # one name, saved as a string by an older run
            if before != now:
                raise ValueError(f"{section}.{key} was {before!r} in the run in {run_dir}, now "
                                 f"{now!r}; a resumed run keeps the data and model it was "
                                 f"trained with: drop that change, or start a new run with --out")
    return last
