"""One process at a time in a run folder (rnnkit.training.run_lock).

Oracles: a second real process (the lock must hold across processes, where it matters), the
kernel's release of a dead holder's flock, and the folder's contents before and after.
"""

from __future__ import annotations

import sys

import pytest

from rnnkit.training import RunFolderBusyError, check_run_folder_free, hold_run_folder
from rnnkit.training.run_lock import LOCK_NAME
from run_holder import Holder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; Windows runs "
                                "are not locked")


def test_a_second_process_is_refused_with_one_line_until_the_first_ends(tmp_path):
    run_dir = tmp_path / "run"
    holder = Holder(run_dir)
    try:
        with pytest.raises(RunFolderBusyError) as busy:
            with hold_run_folder(run_dir):
                pass
        assert "another process is training in" in str(busy.value)
        assert "\n" not in str(busy.value)
        with pytest.raises(RunFolderBusyError):
            check_run_folder_free(run_dir)
    finally:
        holder.release()
    check_run_folder_free(run_dir)
    with hold_run_folder(run_dir):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)  # a run's folder: not removed afterwards
    holder = Holder(run_dir)
    holder.kill()
    assert (run_dir / LOCK_NAME).exists()  # the file stays; the kernel dropped the lock
    check_run_folder_free(run_dir)
    with hold_run_folder(run_dir):
        pass


def test_a_folder_made_for_a_run_that_wrote_nothing_is_removed_again(tmp_path):
    new = tmp_path / "new"
    with pytest.raises(ValueError, match="bad corpus"):
        with hold_run_folder(new):
            assert (new / LOCK_NAME).is_file()
            raise ValueError("bad corpus")
    assert not new.exists()
    with hold_run_folder(new):
        (new / "metrics.jsonl").write_text("{}\n")
    assert sorted(p.name for p in new.iterdir()) == [LOCK_NAME, "metrics.jsonl"]
    existing = tmp_path / "existing"
    existing.mkdir()
    with hold_run_folder(existing):
        pass
    assert existing.is_dir()  # the user's folder stays


def test_check_creates_nothing(tmp_path):
    check_run_folder_free(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_a_run_that_wrote_nothing_leaves_folders_as_it_found_them(tmp_path):
    """The lock file stayed in an existing empty --out after a failed run (a later export there
    was refused as a folder of other files), and of a new a/b/c only c was removed. Oracle:
    the tree before the run."""
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ValueError):
        with hold_run_folder(existing):
            raise ValueError("bad corpus")
    assert list(existing.iterdir()) == []
    with pytest.raises(ValueError):
        with hold_run_folder(tmp_path / "a" / "b" / "c"):
            raise ValueError("bad corpus")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_a_checkpoint_folder_is_guarded_by_its_run_s_lock(tmp_path):
    """train_lm(..., resume=True) given one of a run's checkpoints locked that checkpoint's
    folder (and left a lock file in it), so a second process resuming the run was not kept
    out. Oracle: a second process holding the run folder."""
    from rnnkit.training.checkpoint import CHECKPOINTS, INDEX, META

    run = tmp_path / "run"
    step = run / CHECKPOINTS / "step-00000004"
    step.mkdir(parents=True)
    (run / CHECKPOINTS / INDEX).write_text("{}")
    (step / META).write_text("{}")
    holder = Holder(run)
    try:
        for inside in (step, run / CHECKPOINTS):
            with pytest.raises(RunFolderBusyError, match=f"training in {run}"):
                with hold_run_folder(inside):
                    pass
    finally:
        holder.release()
    assert not (step / LOCK_NAME).exists()


def test_a_user_folder_holding_an_index_json_is_locked_itself(tmp_path):
    """A new --out holding a file named index.json (a web site's folder) was taken for a run's
    checkpoints folder, and its parent was locked (and left a lock file). Oracle: the parent,
    untouched, and a second process holding the folder itself."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.json").write_text("{}")
    holder = Holder(site)
    try:
        with pytest.raises(RunFolderBusyError, match=f"training in {site}"):
            with hold_run_folder(site):
                pass
    finally:
        holder.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


@pytest.mark.parametrize("inside", [False, True], ids=["the-folder", "a-parent"])
def test_a_file_where_the_run_folder_goes_is_one_line_and_left_alone(tmp_path, inside):
    # Oracle: the file's bytes before and after. Before, mkdir's FileExistsError or
    # NotADirectoryError came out with errno text and no advice.
    blocker = tmp_path / "taken"
    blocker.write_bytes(b"user data")
    run_dir = blocker / "run" if inside else blocker
    with pytest.raises(NotADirectoryError) as refused:
        with hold_run_folder(run_dir):
            pass
    message = str(refused.value)
    assert "\n" not in message and "Errno" not in message
    assert f"{blocker} is a file, not a folder; choose another folder" in message
    assert blocker.read_bytes() == b"user data"
