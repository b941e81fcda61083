"""Crash-safe checkpoints: atomic writes, nested-state round trips, fallback and pruning."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from rnnkit.training import checkpoint as ckpt
from rnnkit.training.checkpoint import (
    CheckpointError, atomic_write, flatten_tensors, load_checkpoint, save_checkpoint,
    unflatten_tensors,
)


class Pair(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor


def tiny_model(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def save(run_dir, step, *, seed=None, best=False, keep_last=3, **kwargs):
    model = tiny_model(step if seed is None else seed)
    return save_checkpoint(run_dir, step, model_state=model.state_dict(),
                           train_state={"step": step, "h": torch.full((2,), float(step))},
                           meta={"step_meta": step}, best=best, keep_last=keep_last, **kwargs)


def step_dirs(run_dir) -> list[str]:
    return sorted(p.name for p in (Path(run_dir) / "checkpoints").glob("step-*"))


def staging_dirs(run_dir) -> list[str]:
    return sorted(p.name for p in (Path(run_dir) / "checkpoints").glob(".step-*"))


# --- atomic_write ------------------------------------------------------------------------------

def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_gives_new_files_the_mode_open_would_and_keeps_a_replaced_files(tmp_path):
    # The oracle: a file created with a plain open() in the same process, same umask.
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    fresh = tmp_path / "fresh.bin"
    atomic_write(fresh, b"x")
    assert fresh.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    private = tmp_path / "private.bin"
    private.write_bytes(b"old")
    private.chmod(0o600)
    atomic_write(private, b"new")
    assert private.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("failing", ["fsync", "replace", "chmod"])
def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch, failing):
    """Also: a failure of chmod (before the temporary file was opened as a file object) left
    its descriptor open. Oracle: the process's open descriptors before the call."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"old content")
    descriptors = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(ckpt.os, failing, boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write(path, b"new content that never lands")
    monkeypatch.undo()
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left
    if descriptors is not None:
        assert set(os.listdir("/proc/self/fd")) <= descriptors


# --- flatten_tensors / unflatten_tensors ----------------------------------------------------------

def _round_trip(value, namedtuples=None):
    """Through JSON and safetensors bytes, as save_checkpoint/load_checkpoint do."""
    from safetensors.torch import load, save

    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.loads(json.dumps(flatten_tensors(value, tensors)))
    return unflatten_tensors(skeleton, load(save(tensors)), namedtuples)


def _adamw_pair():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.95),
                                  weight_decay=0.01)
    model(torch.randn(4, 3)).square().sum().backward()
    optimizer.step()
    return model, optimizer


def test_flatten_round_trips_adamw_state_structure():
    _, optimizer = _adamw_pair()
    original = optimizer.state_dict()
    restored = _round_trip(original)
    assert set(restored["state"]) == set(original["state"]) == {0, 1}  # int keys survive
    for index, moments in original["state"].items():
        for name, tensor in moments.items():
            assert torch.equal(restored["state"][index][name], tensor)
    assert restored["param_groups"] == original["param_groups"]
    assert restored["param_groups"][0]["betas"] == (0.8, 0.95)


def test_restored_adamw_steps_like_the_original():
    model, optimizer = _adamw_pair()
    state = _round_trip(optimizer.state_dict())

    twin = torch.nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = torch.optim.AdamW(twin.parameters(), lr=0.1)
    twin_optimizer.load_state_dict(state)

    batch = torch.randn(4, 3)
    for net, opt in ((model, optimizer), (twin, twin_optimizer)):
        opt.zero_grad()
        net(batch).square().sum().backward()
        opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_namedtuple_round_trip_with_types():
    value = {"carry": [Pair(torch.ones(2), torch.zeros(2)), (1, "x", None, 2.5, True)]}
    restored = _round_trip(value, namedtuples={"Pair": Pair})
    pair = restored["carry"][0]
    assert type(pair) is Pair
    assert torch.equal(pair.h, torch.ones(2)) and torch.equal(pair.c, torch.zeros(2))
    assert restored["carry"][1] == (1, "x", None, 2.5, True)


def test_namedtuple_without_type_becomes_plain_tuple():
    restored = _round_trip(Pair(torch.ones(1), torch.zeros(1)))
    assert type(restored) is tuple and len(restored) == 2


def test_flatten_rejects_unknown_objects():
    with pytest.raises(TypeError, match="object"):
        flatten_tensors({"a": object()}, {})


# --- save / load -------------------------------------------------------------------------------

def test_model_state_round_trip(tmp_path):
    model = tiny_model(5)
    save_checkpoint(tmp_path, 10, model_state=model.state_dict(),
                    train_state={"epoch": 2, "carry": Pair(torch.ones(2), torch.ones(2) * 3)},
                    meta={"vocab": ["a", "b"]})
    loaded = load_checkpoint(tmp_path, namedtuples={"Pair": Pair})
    assert loaded.step == 10
    assert loaded.meta == {"vocab": ["a", "b"]}
    assert loaded.model_state.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model_state[key], value)
    assert loaded.train_state["epoch"] == 2
    assert type(loaded.train_state["carry"]) is Pair
    assert torch.equal(loaded.train_state["carry"].c, torch.full((2,), 3.0))


def test_a_full_disk_names_the_checkpoint_and_keeps_the_earlier_ones(tmp_path, monkeypatch):
    """A write's ENOSPC names no file: the CLI printed "[Errno 28] No space left on device"
    alone. Oracle: the earlier checkpoint, loaded as before, and no staging folder left."""
    import errno

    save(tmp_path, 1)
    real_fsync = os.fsync

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "fsync", full)
    with pytest.raises(OSError) as info:
        save(tmp_path, 2)
    monkeypatch.setattr(ckpt.os, "fsync", real_fsync)
    error = info.value
    assert error.errno == errno.ENOSPC
    assert str(error) == (f"could not save checkpoint step-00000002 in {tmp_path / 'checkpoints'}"
                          f": No space left on device; the earlier checkpoints are kept; free "
                          f"space, then resume from {tmp_path}")
    assert load_checkpoint(tmp_path).step == 1
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] in (
        ["index.json", "step-00000001"], ["step-00000001", "index.json"])


def test_a_full_disk_at_the_first_save_says_there_is_no_checkpoint(tmp_path, monkeypatch):
    """The first save's message said "the earlier checkpoints are kept" of none."""
    import errno

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "fsync", full)
    with pytest.raises(OSError) as info:
        save(tmp_path, 1)
    assert str(info.value).endswith("No space left on device; the run has no checkpoint yet; "
                                    "free space and start it again")
    assert not ckpt.checkpoint_folders(tmp_path / "checkpoints")


def test_load_accepts_run_checkpoints_and_step_folders(tmp_path):
    target = save(tmp_path, 4)
    for path in (tmp_path, tmp_path / "checkpoints", target):
        assert load_checkpoint(path).step == 4


def test_best_and_last(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2, best=True)
    save(tmp_path, 3)
    assert load_checkpoint(tmp_path, which="last").step == 3
    assert load_checkpoint(tmp_path, which="best").step == 2


def test_which_must_be_last_or_best(tmp_path):
    save(tmp_path, 1)
    with pytest.raises(ValueError, match="which"):
        load_checkpoint(tmp_path, which="first")


def test_index_json_contents(tmp_path):
    save(tmp_path, 1, best=True)
    save(tmp_path, 2)
    index = json.loads((tmp_path / "checkpoints" / "index.json").read_text())
    assert index["last"] == "step-00000002"
    assert index["best"] == "step-00000001"


def test_pruning_keeps_newest_and_best(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2, best=True)
    for step in range(3, 8):
        save(tmp_path, step, keep_last=2)
    assert step_dirs(tmp_path) == ["step-00000002", "step-00000006", "step-00000007"]
    assert load_checkpoint(tmp_path, which="best").step == 2


class Killed(BaseException):
    """Stands in for a kill -9 in the middle of a deletion."""


def test_a_crash_while_pruning_leaves_no_damaged_checkpoint_in_view(tmp_path, monkeypatch):
    """rmtree deletes file by file: a kill part-way through pruning step 1 left step-00000001
    without its checkpoint.json, which evaluate then refused as 'no checkpoint'. Oracle:
    load_checkpoint of every step-* folder in view, and the next save's cleanup."""
    save(tmp_path, 1)
    real_rmtree = ckpt.shutil.rmtree

    def killed_part_way(path, ignore_errors=False):
        path = Path(path)
        if "step-00000001" in path.name and path.exists():
            (path / ckpt.META).unlink()
            raise Killed
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(ckpt.shutil, "rmtree", killed_part_way)
    with pytest.raises(Killed):
        save(tmp_path, 2, keep_last=1)
    monkeypatch.setattr(ckpt.shutil, "rmtree", real_rmtree)
    for folder in sorted((tmp_path / "checkpoints").glob("step-*")):
        assert load_checkpoint(folder).step == int(folder.name.split("-")[1])
    assert load_checkpoint(tmp_path).step == 2
    save(tmp_path, 3, keep_last=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()) == [
        "step-00000003"]


def test_saving_same_step_again_replaces_it(tmp_path):
    save(tmp_path, 3, seed=0)
    save(tmp_path, 3, seed=1)
    loaded = load_checkpoint(tmp_path)
    assert torch.equal(loaded.model_state["weight"], tiny_model(1).weight)
    assert step_dirs(tmp_path) == ["step-00000003"]


def test_tied_weights_save_and_load(tmp_path):
    shared = torch.randn(4, 3)
    state = {"embed.weight": shared, "out.weight": shared}
    save_checkpoint(tmp_path, 1, model_state=state, train_state={}, meta={})
    loaded = load_checkpoint(tmp_path)
    assert torch.equal(loaded.model_state["embed.weight"], shared)
    assert torch.equal(loaded.model_state["out.weight"], shared)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _edit_record(step: Path, edit) -> None:
    """Change checkpoint.json as a hand edit would: valid JSON, every checksum kept."""
    record = json.loads((step / "checkpoint.json").read_text())
    edit(record)
    (step / "checkpoint.json").write_text(json.dumps(record, indent=1))


def test_a_record_written_before_it_had_a_checksum_still_loads(tmp_path):
    """Records from before 2026-12-06 have checksums for the tensor files only."""
    step = save(tmp_path, 1)
    _edit_record(step, lambda record: record["sha256"].pop("checkpoint.json"))
    loaded = load_checkpoint(step)
    assert loaded.meta == {"step_meta": 1} and loaded.train_state["step"] == 1
    assert torch.equal(loaded.model_state["weight"], tiny_model(1).weight)


def test_weights_that_do_not_fit_the_model_are_a_one_line_error(tmp_path):
    """torch's load_state_dict raises a multi-line RuntimeError; evaluate and generate showed
    it as a traceback. Oracle: the weights load into the model they came from."""
    load_checkpoint(save(tmp_path, 1)).load_model(tiny_model(5))
    with pytest.raises(CheckpointError, match=r"^checkpoint .*step-00000001 does not fit this "
                                              r"model \(size mismatch for weight: .*\)$"):
        load_checkpoint(tmp_path).load_model(torch.nn.Linear(4, 2))


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_refused_on_loading(tmp_path, value):
    """evaluate printed "nan bits per character" and exited 0 for such a checkpoint."""
    model = tiny_model(1)
    with torch.no_grad():
        model.bias[1] = value
    save_checkpoint(tmp_path, 1, model_state=model.state_dict(), train_state={}, meta={})
    with pytest.raises(CheckpointError, match=r"holds NaN or inf weights \(in bias\); load an "
                                              r"earlier checkpoint"):
        load_checkpoint(tmp_path).load_model(tiny_model(2))


@pytest.mark.parametrize("damage", [
    lambda step: _flip_byte(step / "model.safetensors"),
    lambda step: _truncate(step / "model.safetensors"),
    lambda step: _flip_byte(step / "state.safetensors"),
    lambda step: _truncate(step / "checkpoint.json"),
    lambda step: _edit_record(step, lambda record: record["meta"].update(step_meta=7)),
    lambda step: _edit_record(step, lambda record: record["train_state"]["__items__"][0]
                              .__setitem__(1, 9)),  # the step, ("step", 2) -> ("step", 9)
], ids=["flip-model", "truncate-model", "flip-state", "truncate-meta", "edit-meta",
        "edit-train-state"])
def test_damaged_newest_falls_back_and_direct_load_raises(tmp_path, caplog, damage):
    save(tmp_path, 1)
    newest = save(tmp_path, 2)
    damage(newest)
    with caplog.at_level(logging.WARNING, logger="rnnkit.training"):
        loaded = load_checkpoint(tmp_path)
    assert loaded.step == 1
    assert torch.equal(loaded.model_state["weight"], tiny_model(1).weight)
    assert any("step-00000002" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    with pytest.raises(CheckpointError, match="damaged") as excinfo:
        load_checkpoint(newest)
    assert "\n" not in str(excinfo.value)
    # the fix it names works: the run folder loads its intact step 1 (above)
    assert str(excinfo.value).endswith(f"; pass the run folder {str(tmp_path.resolve())!r} for "
                                       f"its newest intact checkpoint")


def test_damaged_checkpoints_set_aside_are_kept_from_saves_and_pruning(tmp_path):
    """After a resume from step 1 the damaged steps 2 and 3 are renamed (the second time
    step 2 is damaged, to a second name), and saving steps 2-6 with keep_last=1 neither
    replaces nor prunes them. Oracle: their bytes before the rename."""
    save(tmp_path, 1)
    for step in (2, 3):
        _flip_byte(save(tmp_path, step, best=step == 3) / "model.safetensors")
    folder = tmp_path / "checkpoints"
    before = {name: (folder / name / "model.safetensors").read_bytes()
              for name in ("step-00000002", "step-00000003")}
    assert load_checkpoint(tmp_path).step == 1
    moved = ckpt.set_aside_newer_checkpoints(tmp_path, 1)
    assert [(old.name, new.name) for old, new in moved] == [
        ("step-00000002", "step-00000002.skipped"), ("step-00000003", "step-00000003.skipped")]
    # the index names only what is left: step 1 as last, no best (step 3 was saved as best)
    assert ckpt.read_index(tmp_path) == {"last": "step-00000001", "best": None}
    _flip_byte(save(tmp_path, 2) / "model.safetensors")  # damaged again, then set aside again
    assert [new.name for _, new in ckpt.set_aside_newer_checkpoints(tmp_path, 1)] == [
        "step-00000002.skipped-2"]
    for step in range(2, 7):
        save(tmp_path, step, keep_last=1)
    assert step_dirs(tmp_path) == ["step-00000002.skipped", "step-00000002.skipped-2",
                                   "step-00000003.skipped", "step-00000006"]
    for name, data in before.items():
        assert (folder / f"{name}.skipped" / "model.safetensors").read_bytes() == data
    assert load_checkpoint(tmp_path).step == 6


def test_a_damaged_checkpoint_warns_on_every_load_but_once_within_one_command(tmp_path,
                                                                             caplog):
    """One CLI command loads a run several times and warned three times; outside a command
    (a notebook loading again) each load must still say it is using older weights."""
    from rnnkit.notices import once_per_command

    save(tmp_path, 1)
    _flip_byte(save(tmp_path, 2) / "model.safetensors")

    def warnings_of(loads):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rnnkit.training"):
            for _ in range(loads):
                assert load_checkpoint(tmp_path).step == 1
        return sum("step-00000002" in r.getMessage() for r in caplog.records)

    assert warnings_of(2) == 2
    with once_per_command():
        assert warnings_of(3) == 1
    assert warnings_of(1) == 1  # the scope ended with the block


def test_missing_checkpoint_json_falls_back(tmp_path, caplog):
    save(tmp_path, 1)
    newest = save(tmp_path, 2)
    (newest / "checkpoint.json").unlink()
    with caplog.at_level(logging.WARNING, logger="rnnkit.training"):
        assert load_checkpoint(tmp_path).step == 1
    assert any("step-00000002" in r.getMessage() for r in caplog.records)
    # loaded directly it is named incomplete, with the run folder to load instead (it said
    # that no checkpoint was found in it)
    with pytest.raises(CheckpointError, match="is incomplete: it has no checkpoint.json; load "
                                              "the run folder") as excinfo:
        load_checkpoint(newest)
    assert str(tmp_path) in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_all_checkpoints_damaged_raises(tmp_path):
    _flip_byte(save(tmp_path, 1) / "model.safetensors")
    with pytest.raises(CheckpointError, match="damaged") as excinfo:
        load_checkpoint(tmp_path)
    assert "\n" not in str(excinfo.value) and "train the run again" in str(excinfo.value)


def test_crash_during_folder_rename_keeps_previous(tmp_path, monkeypatch):
    save(tmp_path, 1)
    index_before = (tmp_path / "checkpoints" / "index.json").read_bytes()
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.isdir(src):
            raise OSError("power cut")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(OSError, match="power cut"):
        save(tmp_path, 2)
    monkeypatch.undo()

    assert (tmp_path / "checkpoints" / "index.json").read_bytes() == index_before
    assert step_dirs(tmp_path) == ["step-00000001"]
    assert load_checkpoint(tmp_path).step == 1
    assert staging_dirs(tmp_path) == []


def test_next_save_removes_stale_staging_folder(tmp_path):
    save(tmp_path, 1)
    # What a save killed before its rename leaves behind.
    stale = tmp_path / "checkpoints" / ".step-00000002.abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    assert load_checkpoint(tmp_path).step == 1
    save(tmp_path, 2)
    assert staging_dirs(tmp_path) == []
    assert load_checkpoint(tmp_path).step == 2


def test_missing_path_raises_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as excinfo:
        load_checkpoint(tmp_path / "nowhere")
    assert "\n" not in str(excinfo.value)


def test_folder_without_checkpoints_raises_one_line(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for path in (tmp_path, tmp_path / "checkpoints"):
        with pytest.raises(CheckpointError, match="no checkpoint found") as excinfo:
            load_checkpoint(path)
        assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("garbage", [b'{"last": "step-000', b"\xff\xfe not json", b""])
def test_damaged_index_is_tolerated(tmp_path, garbage):
    save(tmp_path, 1)
    save(tmp_path, 2)
    (tmp_path / "checkpoints" / "index.json").write_bytes(garbage)
    assert load_checkpoint(tmp_path).step == 2
    save(tmp_path, 3)  # rewrites the index
    assert json.loads((tmp_path / "checkpoints" / "index.json").read_text())["last"] == \
        "step-00000003"
    assert load_checkpoint(tmp_path).step == 3


def test_index_pointing_to_missing_folder_is_tolerated(tmp_path):
    save(tmp_path, 1)
    (tmp_path / "checkpoints" / "index.json").write_text(
        json.dumps({"last": "step-00000009", "best": "step-00000009"}))
    assert load_checkpoint(tmp_path).step == 1
    assert load_checkpoint(tmp_path, which="best").step == 1


KILLED_WRITER = r"""
import sys, torch
from rnnkit.training import save_checkpoint
run_dir = sys.argv[1]
big = {"weight": torch.zeros(2_000_000)}  # 8 MB per save: the kill lands mid-write
step = 1
while True:
    big["weight"].fill_(float(step))
    save_checkpoint(run_dir, step, model_state=big, train_state={"step": step}, meta={},
                    keep_last=2)
    print(step, flush=True)
    step += 1
"""


def test_a_process_killed_while_saving_leaves_an_intact_checkpoint(tmp_path):
    """SIGKILL (no cleanup at all) at an arbitrary moment of a save loop: the newest intact
    checkpoint loads, and its tensors are exactly what its step wrote."""
    import signal
    import subprocess
    import sys
    import time

    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # wait for three completed saves, then kill during the next ones
            assert writer.stdout.readline(), "the writer died before saving"
        time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.step >= 3
    assert torch.equal(checkpoint.model_state["weight"],
                       torch.full((2_000_000,), float(checkpoint.step)))
    assert checkpoint.train_state == {"step": checkpoint.step}


def test_atomic_write_into_a_missing_folder_names_the_folder(tmp_path):
    from rnnkit.training.checkpoint import atomic_write

    target = tmp_path / "missing" / "file.csv"
    with pytest.raises(FileNotFoundError, match=r"the folder .*missing does not exist"):
        atomic_write(target, b"x")
    # or makes it when asked, and writes text as UTF-8 (what the benchmarks' results need)
    atomic_write(target, "é\n", parents=True)
    assert target.read_bytes() == "é\n".encode("utf-8")
    # a file where the folder should be was called a missing folder
    with pytest.raises(NotADirectoryError, match=r"file.csv is a file, not a folder$"):
        atomic_write(target / "below.csv", b"x")


def test_atomic_write_where_no_file_can_be_made_names_the_target(tmp_path):
    """The error named the temporary file (/proc/.x.csv.vtqgxtld.tmp), which the user never
    asked for."""
    from rnnkit.training.checkpoint import atomic_write

    with pytest.raises(OSError, match=r"^cannot write /proc/x\.csv \(.*\); choose a folder "
                                      r"you can write to$"):
        atomic_write("/proc/x.csv", b"x")


def _resave_crashing_between_the_renames(run_dir, monkeypatch, step: int, **kwargs) -> None:
    """Save ``step`` again (other weights), crashing after its old copy was moved aside and
    before the new one was renamed in."""
    real_replace = os.replace
    name = f"step-{step:08d}"

    def crash_before_the_new_copy(source, target):
        if Path(target).name == name and f".{name}." in Path(source).name:
            raise OSError("simulated crash")
        return real_replace(source, target)

    monkeypatch.setattr(ckpt.os, "replace", crash_before_the_new_copy)
    with pytest.raises(OSError, match="simulated crash"):
        save(run_dir, step, seed=99, keep_last=1, **kwargs)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)


def test_saving_a_step_again_never_leaves_it_missing(tmp_path, monkeypatch):
    """A step saved again (Ctrl-C right after an evaluation) used to delete the old copy before
    renaming the new one in: a crash between the two left no checkpoint (keep_last=1). The old
    copy now waits aside and is loaded."""
    save(tmp_path, 4, keep_last=1)
    _resave_crashing_between_the_renames(tmp_path, monkeypatch, 4)
    assert step_dirs(tmp_path) == []
    loaded = load_checkpoint(tmp_path)
    assert loaded.step == 4 and torch.equal(loaded.model_state["weight"], tiny_model(4).weight)
    save(tmp_path, 5, keep_last=1)  # the next save clears the copy aside
    assert step_dirs(tmp_path) == ["step-00000005"] and staging_dirs(tmp_path) == []


def test_the_copy_aside_of_a_best_step_survives_the_next_save(tmp_path, monkeypatch):
    """After a crashed re-save left the best step only in its copy aside, the next save
    deleted that copy with the staging garbage, and "best" then loaded another step."""
    save(tmp_path, 4, keep_last=1)
    save(tmp_path, 5, best=True, keep_last=1)
    _resave_crashing_between_the_renames(tmp_path, monkeypatch, 5, best=True)
    save(tmp_path, 6, keep_last=1)
    assert step_dirs(tmp_path) == ["step-00000005", "step-00000006"]
    best = load_checkpoint(tmp_path, which="best")
    assert best.step == 5 and torch.equal(best.model_state["weight"], tiny_model(5).weight)


def test_checkpoint_folders_get_the_modes_of_ordinary_folders(tmp_path):
    """Step folders came from mkdtemp (0700 whatever the umask), so a run could not be shared
    as its files, written with the umask's modes, were meant to be."""
    save(tmp_path, 1)
    plain = tmp_path / "plain"
    plain.mkdir()
    step = tmp_path / "checkpoints" / "step-00000001"
    assert step.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_the_checkpoint_record_is_strict_json(tmp_path):
    """Non-finite floats in the training state (the best loss is inf before the first
    evaluation) were written as bare Infinity, which strict readers (jq, JavaScript) refuse;
    they round-trip exactly."""
    def refuse(constant):
        raise ValueError(f"bare {constant}")

    # a NumPy scalar too: its repr, 'np.float64(inf)', was stored and could not be read back
    state = {"best_loss": math.inf, "low": -math.inf, "missing": math.nan, "x": 1.5,
             "numpy": np.float64(-np.inf)}
    save_checkpoint(tmp_path, 1, model_state=tiny_model().state_dict(), train_state=state,
                    meta={})
    json.loads((tmp_path / "checkpoints" / "step-00000001" / "checkpoint.json").read_text(),
               parse_constant=refuse)
    loaded = load_checkpoint(tmp_path).train_state
    assert loaded["best_loss"] == math.inf and loaded["low"] == -math.inf
    assert math.isnan(loaded["missing"]) and loaded["x"] == 1.5
    assert loaded["numpy"] == -math.inf


def test_resumed_settings_accept_an_older_runs_spelling_of_the_same_value(tmp_path, monkeypatch):
    """One column name saved as a string by an older run equals the one-item list it now reads
    as; a built-in name equals itself even beside a file of that name (it was resolved to the
    file's path and refused)."""
    from types import SimpleNamespace

    from rnnkit.training.checkpoint import check_resumed_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "kjv").write_text("a file named like the built-in corpus")
    save_checkpoint(tmp_path / "run", 1, model_state=tiny_model().state_dict(), train_state={},
                    meta={"config": {"data": {"value_cols": "sales", "corpus": "kjv"}}})
    keys = ("value_cols", "corpus")
    same = SimpleNamespace(value_cols=["sales"], corpus="kjv")
    assert check_resumed_settings(tmp_path / "run", {"data": (same, keys)}).step == 1
    other = SimpleNamespace(value_cols=["sales", "cost"], corpus="kjv")
    with pytest.raises(ValueError, match=r"data.value_cols was \['sales'\].*now \['sales', 'cost'\]"):
        check_resumed_settings(tmp_path / "run", {"data": (other, keys)})


def test_a_built_in_name_in_another_case_resumes_and_other_settings_keep_their_case(
        tmp_path, monkeypatch):
    """A run saved with --data SUNSPOTS resumes as sunspots, also where a folder of that
    spelling (the run's own --out) exists; but time_col 'Date' and 'date' are two columns.
    Oracle: the settings compared by hand."""
    from dataclasses import dataclass

    from rnnkit.training.checkpoint import check_resumed_settings, save_checkpoint

    @dataclass
    class Data:
        data: str = "sunspots"
        time_col: str = "Date"

    run_dir = tmp_path / "SUNSPOTS"
    save_checkpoint(run_dir, 1, model_state={}, train_state={},
                    meta={"config": {"data": {"data": "SUNSPOTS", "time_col": "Date"}}})
    monkeypatch.chdir(tmp_path)
    check_resumed_settings(run_dir, {"data": (Data(), ("data", "time_col"))},
                           builtin=("sunspots", "nile"))
    with pytest.raises(ValueError, match="data.time_col was 'Date'"):
        check_resumed_settings(run_dir, {"data": (Data(time_col="date"), ("time_col",))},
                               builtin=("sunspots", "nile"))
    with pytest.raises(ValueError, match="data.data was .*SUNSPOTS"):  # not a built-in here
        check_resumed_settings(run_dir, {"data": (Data(), ("data",))})


def test_atomic_write_onto_a_folder_names_the_folder_not_a_temporary_file(tmp_path):
    """save_state("some_folder") failed naming ".some_folder.xxxx.tmp". Oracle: the folder,
    untouched, and no temporary file left beside it."""
    from rnnkit.training import atomic_write

    (tmp_path / "state").mkdir()
    with pytest.raises(IsADirectoryError, match="state: it is a folder; name a file") as info:
        atomic_write(tmp_path / "state", b"x")
    assert ".tmp" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["state"]
    assert not any((tmp_path / "state").iterdir())


def test_checkpoint_folders_are_ordered_by_step_past_eight_digits(tmp_path):
    """Names sort as text only up to 8 digits: step-100000000 came before step-99999999, so
    the newest checkpoint was the older one. Oracle: the step numbers."""
    from rnnkit.training.checkpoint import checkpoint_folders

    for name in ("step-100000000", "step-99999999", "step-00000007", "step-notes"):
        (tmp_path / name).mkdir()
    assert [p.name for p in checkpoint_folders(tmp_path)] == [
        "step-00000007", "step-99999999", "step-100000000"]
