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


@contextlib.contextmanager
def hold_run_folder(run_dir: str | os.PathLike):
    """Hold ``run_dir`` (created if missing) for this process; raises
    :class:`RunFolderBusyError` at once if another process holds it.

    A folder made here that holds only the lock file at the end (the run failed before writing
    anything: bad data, a config error) is removed again, as it was not there before.
    """
    run_dir = Path(run_dir)
    if fcntl is None:
        yield
        return
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir / LOCK_NAME
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir) from None
        yield
    finally:
        if created and {path.name for path in run_dir.iterdir()} == {LOCK_NAME}:
            lock_path.unlink(missing_ok=True)  # still locked, so no other process is inside
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        os.close(descriptor)  # releases the lock


def check_run_folder_free(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunFolderBusyError` if another process holds ``run_dir`` now; creates
    nothing (for the checks a command makes before it trains)."""
    lock_path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not lock_path.is_file():
        return
    try:
        descriptor = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return  # removed in between: its holder has finished
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(Path(run_dir)) from None
    finally:
        os.close(descriptor)
