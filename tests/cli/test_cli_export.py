"""`rnnkit export` on trained runs: every format is checked against the run's own PyTorch model.

Oracles: the loaded task model's logits (the LM's next-character logits at every step; the
classifier's sequence logits, which with pooling="last" equal the exported model's output at
the last step) computed independently of the export; task.json against the checkpoint's
vocabulary, classes and normalization.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli.main import main

from corpora import tiny_text
from one_line import assert_one_line_error
from test_cli_classify import run, write_npz

LM_TINY = ["--hidden", "12", "--embedding", "6", "--batch-size", "4", "--window", "16",
           "--no-progress", "--set", "data.eval_rows=2", "--set", "train.eval_every=4"]


def _numpy_runtime(folder):
    spec = importlib.util.spec_from_file_location(f"rt_{folder.name}", folder / "rnnkit_numpy_runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-lm")
    corpus = folder / "corpus.txt"
    corpus.write_text(tiny_text(4000), encoding="utf-8")
    out = folder / "run"
    assert main(["train", "lm", "--corpus", str(corpus), "--steps", "4", "--out", str(out),
                 "--json", "--sample-length", "5", "--cell", "gru", "--layers", "2", *LM_TINY]) == 0
    return out


@pytest.fixture(scope="module")
def classify_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-classify-data")
    return write_npz(folder / "train.npz", 24), write_npz(folder / "test.npz", 8)


def _train_classifier(data, out, *flags):
    train, test = data
    assert main([str(a) for a in ["classify", "train", "--data", train, "--test", test, "--steps",
                                  "4", "--out", out, "--hidden", "6", "--batch-size", "8",
                                  "--no-progress", *flags]]) == 0
    return out


def test_lm_numpy_export_matches_the_models_logits(lm_run, tmp_path, capsys):
    from rnnkit.tasks.lm.task import load_lm

    code, out, _ = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out",
                        tmp_path / "np", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["format"] == "numpy" and report["max_abs_diff"] <= 1e-5
    loaded = load_lm(lm_run)
    task = json.loads((tmp_path / "np" / "task.json").read_text())
    assert task["task"] == "lm" and task["vocabulary"] == loaded.vocabulary.to_list()
    tokens = torch.randint(0, len(task["vocabulary"]), (2, 15), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = loaded.model(tokens)[0].numpy()
    exported, _ = _numpy_runtime(tmp_path / "np").forward(tokens.numpy())
    np.testing.assert_allclose(exported, expected, atol=1e-5, rtol=0)


def test_lm_onnx_export_matches_the_models_logits(lm_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra")
    from rnnkit.tasks.lm.task import load_lm

    code, out, _ = run(["export", "--checkpoint", lm_run, "--format", "onnx", "--out",
                        tmp_path / "onnx"], capsys)
    assert code == 0 and "max |exported - PyTorch|" in out
    loaded = load_lm(lm_run)
    tokens = torch.randint(0, len(loaded.vocabulary), (1, 9), generator=torch.Generator().manual_seed(4))
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    feeds = {"tokens": tokens.numpy()}
    for item in session.get_inputs()[1:]:  # zero initial states, width from the declared shape
        feeds[item.name] = np.zeros((1, item.shape[1]), np.float32)
    exported = session.run(["y"], feeds)[0]
    with torch.no_grad():
        expected = loaded.model(tokens)[0].numpy()
    np.testing.assert_allclose(exported, expected, atol=1e-5, rtol=0)


@pytest.mark.skipif(not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")),
                    reason="no C compiler on this machine: the C export cannot be checked")
def test_lm_c_export_is_compiled_and_checked(lm_run, tmp_path, capsys):
    code, out, _ = run(["export", "--checkpoint", lm_run, "--format", "c", "--out",
                        tmp_path / "c", "--name", "charlm", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["max_abs_diff"] is not None and report["max_abs_diff"] <= 1e-5
    assert {"charlm.h", "charlm.c", "task.json"} <= set(report["files"])
    assert (tmp_path / "c" / "charlm.h").is_file()


def test_streamable_classifier_exports_and_its_last_step_is_the_sequence_logits(
        classify_data, tmp_path, capsys):
    from rnnkit.tasks.classify.task import load_classifier

    run_dir = _train_classifier(classify_data, tmp_path / "run", "--no-bidirectional",
                                "--pooling", "last")
    code, _, _ = run(["export", "--checkpoint", run_dir, "--format", "numpy", "--out",
                      tmp_path / "np"], capsys)
    assert code == 0
    loaded = load_classifier(run_dir)
    task = json.loads((tmp_path / "np" / "task.json").read_text())
    assert task["classes"] == loaded.class_names
    assert task["normalization"] == loaded.normalizer.to_dict()
    sequence = np.random.default_rng(5).normal(size=(6, 3))
    tensors = loaded.tensors([sequence])
    with torch.no_grad():
        expected = loaded.model(tensors.x, tensors.lengths)[0].numpy()
    outputs, _ = _numpy_runtime(tmp_path / "np").forward(tensors.x[0].numpy())
    np.testing.assert_allclose(outputs[-1], expected, atol=1e-5, rtol=0)


def test_a_classifier_that_needs_whole_sequences_is_refused_in_one_line(
        classify_data, tmp_path, capsys):
    run_dir = _train_classifier(classify_data, tmp_path / "run")  # default: bidirectional, mean
    capsys.readouterr()  # the training run's report
    code, out, err = run(["export", "--checkpoint", run_dir, "--format", "numpy", "--out",
                          tmp_path / "np"], capsys)
    assert code == 2 and out == ""
    message = err.strip()
    assert "\n" not in message and "--pooling last" in message
    assert not (tmp_path / "np").exists(), "nothing is written for a refused model"


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    code, _, err = run(["export", "--checkpoint", tmp_path / "nowhere", "--format", "onnx",
                        "--out", tmp_path / "x"], capsys)
    assert code == 2 and "does not exist" in err and "\n" not in err.strip()


def test_onnx_export_without_the_extra_says_how_to_install_it(lm_run, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnx)
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "onnx", "--out",
                        tmp_path / "onnx"], capsys)
    assert code == 2 and "pip install 'rnnkit[export]'" in err and "\n" not in err.strip()
    assert not (tmp_path / "onnx").exists()


def _tree(folder):
    """{relative path: bytes} of every file below ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_export_never_overwrites_what_is_not_an_export(lm_run, tmp_path, capsys):
    """A folder of the user's files, a file, the run itself or a folder inside it are refused
    with nothing written; an earlier export's folder may be exported into again. The user's
    README.txt and task.json used to be replaced, and exports landed inside the run."""
    run_before = _tree(lm_run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.txt").write_text("my notes")
    (mine / "task.json").write_text('{"todo": 1}')
    step = sorted((lm_run / "checkpoints").glob("step-*"))[-1]
    for out, fragment in ((mine, "already holds files that are not an rnnkit export"),
                          (mine / "README.txt", "--out must be a folder"),
                          (lm_run, f"is in the training run {lm_run}"),
                          (step, f"is in the training run {lm_run}"),
                          (lm_run / "checkpoints" / "new", f"is in the training run {lm_run}")):
        code, out_text, err = run(["export", "--checkpoint", lm_run, "--format", "numpy",
                                   "--out", out], capsys)
        assert code == 2 and fragment in err and "\n" not in err.strip(), err
    assert _tree(mine) == {"README.txt": b"my notes", "task.json": b'{"todo": 1}'}
    assert _tree(lm_run) == run_before
    again = tmp_path / "again"
    for _ in range(2):  # the second export replaces the first's files
        code, _, err = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out",
                            again], capsys)
        assert code == 0, err


def test_a_run_is_never_written_into_an_export(lm_run, tmp_path, capsys):
    """export refuses a run's folder, and a run in an export's folder made one that neither
    command could write to again. Oracle: the export's files, byte for byte, and the same run
    in a new folder training."""
    assert run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out",
                tmp_path / "np"], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "np").iterdir()}
    corpus = lm_run.parent / "corpus.txt"
    for out in (tmp_path / "np", tmp_path / "new"):
        code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "2", "--out", out,
                            "--sample-length", "0", *LM_TINY], capsys)
        if out.name == "np":
            assert_one_line_error(code, err, f"--out {out} holds an rnnkit export, whose files "
                                             f"the run would mix with")
        else:
            assert code == 0, err
    assert {p.name: p.read_bytes() for p in (tmp_path / "np").iterdir()} == before


def test_a_user_file_beside_an_export_is_never_replaced(lm_run, tmp_path, capsys):
    """A file the user added to an export's folder (here README.txt, a name the C export
    writes) was overwritten by the next export of another format. Oracle: its bytes, and the
    folder's listing, unchanged."""
    out = tmp_path / "out"
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out", out],
                       capsys)
    assert code == 0, err
    (out / "README.txt").write_text("my notes")
    before = _tree(out)
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out", out], capsys)
    assert code == 2 and "holds README.txt, which this export would replace" in err
    assert "\n" not in err.strip()
    assert _tree(out) == before


def test_files_the_user_made_by_using_an_export_do_not_block_exporting_again(lm_run, tmp_path,
                                                                            capsys, monkeypatch):
    """Importing the NumPy runtime made a __pycache__ there, and an export stopped part-way left
    files task.json did not list: both were refused by a rule that every file be listed.
    Oracle: the same export command, run again, succeeds; the foreign file stays."""
    from rnnkit.export import c_code

    real_export_c = c_code.export_c
    out = tmp_path / "out"
    command = ["export", "--checkpoint", lm_run, "--format", "numpy", "--out", out]
    assert run(command, capsys)[0] == 0
    (out / "__pycache__").mkdir()
    (out / "__pycache__" / "rnnkit_numpy_runtime.cpython.pyc").write_bytes(b"cache")
    assert run(command, capsys)[0] == 0
    assert (out / "__pycache__").is_dir()

    def stopped(model, path, **kwargs):  # Ctrl-C after some of the C files were renamed in
        complete = tmp_path / "complete"
        real_export_c(model, complete, check=False, **kwargs)
        for name in c_code.c_file_names("rnnkit_model")[::2]:  # the header and test program
            (out / name).write_bytes((complete / name).read_bytes())
        raise KeyboardInterrupt

    c_command = ["export", "--checkpoint", lm_run, "--format", "c", "--out", out]
    with monkeypatch.context() as patch:
        patch.setattr("rnnkit.export.export_c", stopped)
        assert run(c_command, capsys)[0] == 130
    assert not (out / "rnnkit_model.c").exists()
    code, _, err = run(c_command, capsys)
    assert code == 0, err
    assert (out / "rnnkit_model.c").read_bytes() == (tmp_path / "complete" /
                                                     "rnnkit_model.c").read_bytes()


def test_name_is_for_c_exports_only(lm_run, tmp_path, capsys):
    """--name was accepted, and ignored, for NumPy and ONNX exports (even "not a C name!")."""
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out",
                        tmp_path / "np", "--name", "not a C name!"], capsys)
    assert code == 2 and "--name names the files of a C export" in err and "\n" not in err.strip()
    assert not (tmp_path / "np").exists()


@pytest.mark.parametrize("name", ["../evil", ""], ids=["path", "empty"])
def test_a_bad_c_name_is_refused_before_an_earlier_export_is_touched(lm_run, tmp_path, capsys,
                                                                    name):
    """A bad --name into the folder of an earlier C export rewrote its task.json to list the
    refused name's files before the name was checked; an empty one exported as rnnkit_model.
    Oracle: the earlier export's bytes."""
    out = tmp_path / "c"
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out", out], capsys)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out", out,
                        "--name", name], capsys)
    assert code == 2 and "\n" not in err.strip(), err
    assert "--name '../evil' must be a C identifier" in err or "--name is empty" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_exporting_another_format_over_an_export_removes_the_earlier_files(lm_run, tmp_path,
                                                                          capsys):
    """A NumPy export after a C export into one folder left the C files beside it, unlisted.
    Oracle: the folder holds exactly the files the last export lists."""
    out = tmp_path / "out"
    for form, flags in (("c", ["--name", "lm"]), ("numpy", [])):
        code, text, err = run(["export", "--checkpoint", lm_run, "--format", form, "--out", out,
                               "--json", *flags], capsys)
        assert code == 0, err
        listed = json.loads(text)["files"]
        assert sorted(p.name for p in out.iterdir()) == sorted(listed)
        assert json.loads((out / "task.json").read_text())["files"] == listed
    assert "weights.npz" in listed and not (out / "lm.c").exists()


def test_a_failed_export_into_a_new_folder_can_be_run_again(lm_run, tmp_path, capsys,
                                                           monkeypatch):
    """A NumPy export whose check failed left weights.npz and the runtime without task.json,
    and running the command again was refused as a folder of other files."""
    import rnnkit.export.numpy_bundle as bundle

    def fail(*args):
        raise ValueError("simulated check failure")

    out = tmp_path / "new"
    with monkeypatch.context() as patch:
        patch.setattr(bundle, "expected_outputs", fail)
        code, _, err = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out",
                            out], capsys)
        assert code == 2 and "simulated check failure" in err
    assert not out.exists()
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out", out],
                       capsys)
    assert code == 0, err


def test_a_c_export_without_a_compiler_warns_that_it_is_unchecked(lm_run, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang on it
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out",
                        tmp_path / "c"], capsys)
    assert code == 0 and "warning: the export was not checked" in err
    assert (tmp_path / "c" / "rnnkit_model.c").exists()


def test_a_failed_export_over_an_earlier_one_never_claims_a_file_it_did_not_write(
        lm_run, tmp_path, capsys, monkeypatch):
    """A failed C export over a NumPy export left task.json listing the C files it never
    wrote; a user's README.txt put there afterwards was then deleted by the next export.
    Oracle: the same user file beside an export that never failed is kept."""
    out = tmp_path / "out"
    assert run(["export", "--checkpoint", lm_run, "--format", "onnx", "--out", out],
               capsys)[0] == 0
    monkeypatch.setenv("CC", "false")  # a compiler that fails: the C export stops
    code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out", out], capsys)
    assert code != 0 and "C compiler false failed" in err, err
    listed = json.loads((out / "task.json").read_text())["files"]
    assert all((out / name).exists() for name in listed), listed
    (out / "README.txt").write_text("my own notes")
    monkeypatch.delenv("CC")
    assert run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out", out],
               capsys)[0] == 0
    assert (out / "README.txt").read_text() == "my own notes"


def test_task_json_names_the_checkpoint_and_a_csv_classifiers_columns(tmp_path, capsys):
    """task.json left out the CSV feature names the normalization belongs to (the checkpoint
    holds them), and which checkpoint was exported. Oracle: the loaded classifier."""
    from rnnkit.tasks.classify.task import load_classifier

    rng = np.random.default_rng(0)
    lines = ["sequence,label,temp,pressure"] + [
        f"{i},{'ab'[i % 2]},{rng.normal():.4f},{rng.normal():.4f}" for i in range(20)
        for _ in range(4)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    assert main([str(a) for a in ["classify", "train", "--data", tmp_path / "train.csv",
                                  "--steps", "2", "--out", run_dir, "--hidden", "4",
                                  "--batch-size", "8", "--no-progress", "--no-bidirectional",
                                  "--pooling", "last"]]) == 0
    assert run(["export", "--checkpoint", run_dir, "--format", "numpy", "--out",
                tmp_path / "np"], capsys)[0] == 0
    task = json.loads((tmp_path / "np" / "task.json").read_text())
    loaded = load_classifier(run_dir)
    assert task["channel_names"] == loaded.channel_names == ["temp", "pressure"]
    assert task["step"] == loaded.step and task["checkpoint"] == str(loaded.checkpoint.resolve())


def test_exporting_the_best_of_a_run_with_none_says_it_takes_the_newest(lm_run, tmp_path,
                                                                        capsys, caplog):
    """A run stopped before its first validation records no best; --which best exported the
    newest checkpoint without a word. Oracle: the index's record and the step exported."""
    run_dir = tmp_path / "run"
    shutil.copytree(lm_run, run_dir)
    index = run_dir / "checkpoints" / "index.json"
    record = json.loads(index.read_text())
    index.write_text(json.dumps({**record, "best": None}))
    with caplog.at_level("WARNING", logger="rnnkit.training"):
        code, _, err = run(["export", "--checkpoint", run_dir, "--format", "numpy", "--out",
                            tmp_path / "np"], capsys)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if "records no existing best" in r.getMessage()]
    assert len(warnings) == 1 and record["last"] in warnings[0]
    assert json.loads((tmp_path / "np" / "task.json").read_text())["step"] == \
        int(record["last"].split("-")[1])


@pytest.mark.parametrize("form", ["numpy", "onnx", "c"])
def test_a_folder_exported_from_python_may_be_exported_into_again(lm_run, tmp_path, capsys,
                                                                   form):
    """export_numpy/export_onnx/export_c write no task.json, and the CLI refused their folders
    as "not an rnnkit export". Oracle: afterwards the folder holds exactly the files the CLI
    export lists (the Python export's are replaced or removed)."""
    from rnnkit.export import export_c, export_numpy, export_onnx

    if form == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    out = tmp_path / "from-python"
    layer = rnnkit.GRU(3, 4)
    {"numpy": lambda: export_numpy(layer, out), "onnx": lambda: export_onnx(layer, out),
     "c": lambda: export_c(layer, out, name="mine", check=False)}[form]()
    code, text, err = run(["export", "--checkpoint", lm_run, "--format", "numpy", "--out", out,
                           "--json"], capsys)
    assert code == 0, err
    listed = json.loads(text)["files"]
    assert sorted(p.name for p in out.iterdir() if p.name != "__pycache__") == sorted(listed)


def test_a_users_files_that_look_like_an_export_are_still_refused(lm_run, tmp_path, capsys):
    """Known by content, not by name: a user's header or model.onnx stays untouched."""
    for name, content in (("notes.h", b"/* my notes */\n"), ("model.onnx", b"my rnnkit notes")):
        out = tmp_path / name.replace(".", "-")
        out.mkdir()
        (out / name).write_bytes(content)
        code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out", out],
                           capsys)
        assert code == 2 and "not an rnnkit export" in err, err
        assert [p.name for p in out.iterdir()] == [name] and (out / name).read_bytes() == content


def test_c_exports_of_two_names_go_into_one_folder(lm_run, tmp_path, capsys):
    """The second --name was refused: the first export's README.txt was taken for a user's
    file (review, 2026-12-08). Oracle: the command's exit status and both headers."""
    out = tmp_path / "c"
    for name in ("first", "second"):
        code, _, err = run(["export", "--checkpoint", lm_run, "--format", "c", "--out", out,
                            "--name", name], capsys)
        assert code == 0, err
    assert (out / "second.h").is_file()
