"""An export whose writing fails (a full disk) leaves the file system as it found it.

Every exporter makes its folder and then writes files into it. A write that failed left that
new folder behind, empty or half filled (weights.npz without model.json), where the user
had named a folder that did not exist. Oracle: the file system before the call; a folder that
already existed, with the user's own files, is not removed.
"""

from __future__ import annotations

import importlib.util

import pytest
from torch import nn

from rnnkit.export import export_c, export_numpy

EXPORTERS = {
    "numpy": ("rnnkit.export.numpy_bundle", lambda model, path: export_numpy(model, path,
                                                                              check=False)),
    "c": ("rnnkit.export.c_code", lambda model, path: export_c(model, path, check=False)),
    "onnx": ("rnnkit.export.onnx_export", None),
}


def _exporter(name):
    module_name, export = EXPORTERS[name]
    if name == "onnx":
        if importlib.util.find_spec("onnx") is None:
            pytest.skip("ONNX export needs the export extra: pip install -e '.[export]'")
        from rnnkit.export import export_onnx

        export = lambda model, path: export_onnx(model, path, check=False)  # noqa: E731
    return importlib.import_module(module_name), export


def _writer(module):
    """(owner, attribute) of the function that writes an exporter's files: the NumPy and C
    exports stage theirs in rnnkit.export.files, the ONNX export writes its one file."""
    if module.__name__.endswith("onnx_export"):
        return module, "atomic_write"
    from rnnkit.export import files

    return files, "_stage"


def _disk_full_after_first_file(monkeypatch, module):
    """Let the exporter's first file through, then fail every write as a full disk does."""
    owner, attribute = _writer(module)
    real_write, written = getattr(owner, attribute), []

    def write(*args, **kwargs):
        if written:
            raise OSError(28, "No space left on device")
        written.append(real_write(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(owner, attribute, write)
    return written


def _always_full(monkeypatch, module):
    def write(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(*_writer(module), write)


@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_a_failed_export_into_a_new_folder_leaves_no_folder(tmp_path, monkeypatch, exporter):
    module, export = _exporter(exporter)
    (_disk_full_after_first_file if exporter != "onnx" else _always_full)(monkeypatch, module)
    target = tmp_path / "new" / "deeper" / "export"
    with pytest.raises(OSError, match="No space"):
        export(nn.GRU(3, 4), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_a_failed_export_into_an_existing_folder_keeps_it(tmp_path, monkeypatch, exporter):
    module, export = _exporter(exporter)
    _always_full(monkeypatch, module)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(OSError, match="No space"):
        export(nn.GRU(3, 4), target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "keep me"


def test_a_successful_export_into_a_new_nested_folder_is_complete(tmp_path):
    """The same call without the failure: the folders are made and the export loads."""
    from rnnkit.export import rnnkit_numpy_runtime as runtime

    export_numpy(nn.GRU(3, 4), tmp_path / "a" / "b")
    assert runtime.load(tmp_path / "a" / "b") is not None


def test_a_failed_numpy_check_in_a_new_folder_leaves_no_folder(tmp_path, monkeypatch):
    """The check runs on the written folder; a mismatch used to leave weights.npz and the
    runtime behind in a folder the call had made."""
    from rnnkit.export import numpy_bundle
    from rnnkit.export.check import ExportMismatchError

    def mismatch(*args, **kwargs):
        raise ExportMismatchError("numpy export differs from PyTorch by 1 (stand-in)")

    monkeypatch.setattr(numpy_bundle, "compare", mismatch)
    with pytest.raises(ExportMismatchError):
        export_numpy(nn.GRU(3, 4), tmp_path / "fresh" / "export")
    assert list(tmp_path.iterdir()) == []


def test_dot_dot_in_the_path_removes_the_folder_it_names(tmp_path, monkeypatch):
    """``new/../x`` names x; the folders to remove were worked out on the text, so "new" was
    removed and x, with the file written there, stayed (and a successful export made "new")."""
    module, export = _exporter("numpy")
    _disk_full_after_first_file(monkeypatch, module)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match="No space"):
        export(nn.GRU(3, 4), "new/../x")
    assert list(tmp_path.iterdir()) == []
