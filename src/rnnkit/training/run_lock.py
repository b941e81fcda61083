"""One process at a time in a run folder.

Two processes training in one folder (the same ``--out`` given twice, or ``--resume`` of a run
that is still training) would interleave their checkpoints and metrics, and a resume truncates
the metrics the other is appending to. A task holds an exclusive ``flock`` on
``<run>/.training.lock`` while it trains; a second process is refused with one line instead.
The kernel drops an flock when its holder dies, so a killed run leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs are not locked there
    fcntl = None

LOCK_NAME = ".training.lock"


class RunFolderBusyError(OSError):
    """Another process holds the run folder (it is training or resuming that run)."""


def _busy(run_dir: Path) -> RunFolderBusyError:
    return RunFolderBusyError(
        f"another process is training in {run_dir} (it holds {run_dir / LOCK_NAME}); wait for "
        f"it to end, or choose another folder")


def _locked_folder(run_dir: Path) -> Path:
    """The folder whose lock guards ``run_dir``: the run it is or lies in (a checkpoint folder
    given for a run resumes that run), else ``run_dir`` itself."""
    from .checkpoint import CHECKPOINTS, INDEX, enclosing_run

    run = enclosing_run(run_dir, itself=True)
    if run is not None and (run / CHECKPOINTS / INDEX).is_file():
        checkpoints, resolved = (run / CHECKPOINTS).resolve(), run_dir.resolve()
        if resolved == checkpoints or checkpoints in resolved.parents:
            return run
    return run_dir  # (a user's folder holding an index.json of its own is not a run's)


def _refuse_file_in_the_way(run_dir: Path) -> None:
    """A one-line error where ``run_dir``, or the nearest of its parents that exists, is not
    a folder (``mkdir`` would raise FileExistsError or NotADirectoryError with errno text)."""
    for level in (run_dir, *run_dir.parents):
        if level.exists():
            if level.is_dir():
                return
            problem = ("is a file" if level == run_dir
                       else f"cannot be made: {level} is a file")
            raise NotADirectoryError(f"the run folder {run_dir} {problem}, not a folder; "
                                     f"choose another folder")


@contextlib.contextmanager
def hold_run_folder(run_dir: str | os.PathLike):
    """Hold ``run_dir`` (created if missing) for this process; raises
    :class:`RunFolderBusyError` at once if another process holds it.

    A run that ends having written nothing (it failed on bad data or a config error) leaves
    the folder as it found it: the lock file is removed, and so are the folders made for it.
    """
    _refuse_file_in_the_way(Path(run_dir))
    run_dir = _locked_folder(Path(run_dir))
    if fcntl is None:
        yield
        return
    made = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir / LOCK_NAME
    lock_was_there = lock_path.exists()
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir) from None
        yield
    finally:
        if not lock_was_there and [path.name for path in run_dir.iterdir()] == [LOCK_NAME]:
            lock_path.unlink(missing_ok=True)  # still locked, so no other process is inside
            for folder in made:  # deepest first; stops at the first that is not empty
                try:
                    folder.rmdir()
                except OSError:
                    break
        os.close(descriptor)  # releases the lock


def check_run_folder_free(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunFolderBusyError` if another process holds ``run_dir`` now; creates
    nothing (for the checks a command makes before it trains)."""
    run_dir = _locked_folder(Path(run_dir))
    lock_path = run_dir / LOCK_NAME
    if fcntl is None or not lock_path.is_file():
        return
    try:
        descriptor = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return  # removed in between: its holder has finished
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(run_dir) from None
    finally:
        os.close(descriptor)
