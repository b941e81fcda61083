"""`rnnkit classify train` and `rnnkit classify evaluate` from the command line, and bad input.

Oracles: the library functions the commands call (the CLI must report what they compute), the
published bars of DATA.md, the step limits given on the command line, and the exit status and
one-line message of every bad input.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from one_line import assert_one_line_error
from rnnkit.cli.main import main

TINY = ["--hidden", "6", "--batch-size", "8", "--no-progress", "--set", "train.eval_every=4",
        "--set", "model.attention_size=4"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_npz(path, n: int, channels: int = 3, classes=("a", "b"), nan: bool = False):
    """n random sequences (T_i in 3..7, C channels) with labels cycling through classes."""
    rng = np.random.default_rng(n + channels)
    X = np.empty(n, dtype=object)
    X[:] = [rng.normal(size=(rng.integers(3, 8), channels)) for _ in range(n)]
    if nan:
        X[1][0, 0] = np.nan
    np.savez(path, X=X, y=np.array([classes[i % len(classes)] for i in range(n)]))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-classify-data")
    return {"train": write_npz(folder / "train.npz", 24),
            "test": write_npz(folder / "test.npz", 10)}


@pytest.fixture(scope="module")
def trained_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-classify-run") / "run"
    code = main([str(a) for a in ["classify", "train", "--data", data["train"], "--test",
                                  data["test"], "--steps", "8", "--out", out, *TINY]])
    assert code == 0
    return out


def test_train_json_holds_what_the_run_computed(data, tmp_path, capsys):
    code, out, err = run(["classify", "train", "--data", data["train"], "--test", data["test"],
                          "--steps", "6", "--pooling", "max", "--no-bidirectional",
                          "--class-weights", "balanced", "--out", tmp_path / "run", "--json",
                          *TINY], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["steps"] == 6 and result["status"] == "completed"
    assert result["config"]["model"]["pooling"] == "max"
    assert result["config"]["model"]["bidirectional"] is False
    assert result["config"]["data"]["class_weights"] == "balanced"
    assert result["bars"] is None  # no published bars for a user's file
    assert result["test"]["sequences"] == 10
    assert "test: accuracy" in err and "macro-F1" in err  # the summary goes to stderr
    assert "published" not in err


def test_japanese_vowels_prints_the_published_bars(tmp_path, capsys):
    code, out, err = run(["classify", "train", "--data", "JapaneseVowels", "--steps", "2",
                          "--out", tmp_path / "run", "--json", *TINY], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["bars"] == {"1-NN DTW": 0.949, "MLP": 0.976, "ResNet": 0.992, "FCN": 0.993}
    assert result["split"] == {"train": 270, "validation": 0, "test": 370}  # the official split
    assert "1-NN DTW 0.949" in err and "FCN 0.993" in err
    assert "training-set check" in err  # no validation part by default


def test_published_bars_are_not_shown_beside_another_test_file(data, tmp_path, capsys):
    """The bars are for JapaneseVowels' official test split; they were printed beside the
    score on a user's --test file."""
    jv_like = write_npz(tmp_path / "jv_like.npz", 6, channels=12, classes=tuple("123456789"))
    code, out, err = run(["classify", "train", "--data", "JapaneseVowels", "--test", jv_like,
                          "--steps", "2", "--out", tmp_path / "run", "--json", *TINY], capsys)
    assert code == 0, err
    assert json.loads(out)["bars"] is None and "published test accuracy" not in err


def test_resume_with_epochs_lifts_the_step_limit_of_a_run(data, tmp_path, capsys):
    """--resume --epochs N on a run started with --steps kept the step limit and reported
    "completed" at once. Oracle: the epochs the result reports."""
    out_dir = tmp_path / "run"
    argv = ["classify", "train", "--data", data["train"], *TINY, "--batch-size", "32"]
    code, out, _ = run([*argv, "--steps", "2", "--out", out_dir, "--json"], capsys)
    assert code == 0 and json.loads(out)["steps"] == 2
    code, out, err = run([*argv, "--epochs", "5", "--resume", out_dir, "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["steps"] > 2 and result["epochs"] == pytest.approx(5.0)


def test_resume_with_normalization_switched_is_refused(data, tmp_path, capsys):
    """The weights were learned on standardized inputs; a resume with --set
    data.normalize=false trained on raw ones and overwrote the saved statistics."""
    out_dir = tmp_path / "run"
    argv = ["classify", "train", "--data", data["train"], *TINY]
    assert run([*argv, "--steps", "2", "--out", out_dir], capsys)[0] == 0
    code, _, err = run([*argv, "--steps", "4", "--set", "data.normalize=false", "--resume",
                        out_dir], capsys)
    assert code == 2 and "data.normalize was True" in err, err


def test_evaluate_reports_what_the_library_computes(trained_run, data, capsys):
    from rnnkit.tasks.classify.task import evaluate_classifier

    code, out, _ = run(["classify", "evaluate", "--checkpoint", trained_run, "--json"], capsys)
    assert code == 0
    expected = evaluate_classifier(trained_run)
    reported = json.loads(out)
    assert (reported["accuracy"], reported["macro_f1"]) == (expected["accuracy"],
                                                            expected["macro_f1"])
    code, out, _ = run(["classify", "evaluate", "--checkpoint", trained_run, "--data",
                        data["train"]], capsys)
    assert code == 0 and "accuracy" in out and "precision" in out


def test_resume_continues_a_finished_run_to_a_larger_step_limit(data, tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["classify", "train", "--data", data["train"], *TINY]
    assert run([*argv, "--steps", "4", "--out", out_dir], capsys)[0] == 0
    code, out, _ = run([*argv, "--steps", "9", "--resume", out_dir, "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["steps"] == 9 and result["test"] is None  # a file without --test
    code, _, err = run([*argv, "--steps", "4", "--out", out_dir], capsys)
    assert code == 2 and "--resume" in err


@pytest.mark.parametrize("case, words", [
    ("unknown-set", ["'NoSuchSet'", "JapaneseVowels"]),
    ("nan", ["NaN", "sequence 1"]),
    ("pooling", ["model.pooling", "'median'"]),
    ("channels", ["4 channels", "trained on 3"]),
    ("label", ["'c'", "not a class of the training data"]),
    ("unknown-key", ["unknown config key", "model.hiddn"]),
    ("infinite-noise", ["data.noise must be a finite number >= 0", "inf"]),
])
def test_bad_input_is_one_line_on_stderr(case, words, data, tmp_path, capsys):
    argv = ["classify", "train", "--data", data["train"], "--steps", "2", "--out",
            tmp_path / "run", *TINY]
    if case == "unknown-set":
        argv[3] = "NoSuchSet"
    elif case == "nan":
        argv[3] = write_npz(tmp_path / "nan.npz", 8, nan=True)
    elif case == "pooling":
        argv += ["--set", "model.pooling=median"]
    elif case == "channels":
        argv += ["--test", write_npz(tmp_path / "wide.npz", 8, channels=4)]
    elif case == "label":
        argv += ["--test", write_npz(tmp_path / "other.npz", 8, classes=("a", "c"))]
    elif case == "infinite-noise":  # it trained, and blamed the learning rate for the NaN loss
        argv += ["--set", "data.noise=inf"]
    else:
        argv += ["--set", "model.hiddn=4"]
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_on_other_data_is_refused_and_evaluate_works_from_another_folder(
        data, tmp_path, capsys, monkeypatch):
    """Found by an adversarial review (2026-12-04): resuming on other data crashed deep in a
    batch, and a run on relative paths could not be evaluated from another folder."""
    monkeypatch.chdir(data["train"].parent)
    out_dir = tmp_path / "run"
    assert run(["classify", "train", "--data", data["train"].name, "--test",
                data["test"].name, "--steps", "3", "--out", out_dir, *TINY], capsys)[0] == 0
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["classify", "evaluate", "--checkpoint", out_dir, "--json"], capsys)
    assert code == 0, err
    code, _, err = run(["classify", "train", "--resume", out_dir, "--data", data["test"],
                        "--steps", "6", "--no-progress"], capsys)
    assert code == 2 and "data.data was" in err and len(err.strip().splitlines()) == 1, err


def test_resume_with_another_seed_is_refused(data, tmp_path, capsys):
    """The seed draws the validation split: resuming under another seed re-drew it, so
    sequences already trained on became validation data (found by review, 2026-12-05)."""
    out_dir = tmp_path / "run"
    argv = ["classify", "train", "--data", data["train"], *TINY]
    assert run([*argv, "--steps", "3", "--seed", "0", "--out", out_dir], capsys)[0] == 0
    code, _, err = run([*argv, "--steps", "6", "--seed", "7", "--resume", out_dir], capsys)
    assert code == 2 and "train.seed was 0" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run([*argv, "--steps", "6", "--seed", "0", "--resume", out_dir], capsys)
    assert code == 0, err


def test_a_run_without_matplotlib_keeps_its_test_score_and_names_no_picture(
        data, tmp_path, capsys, monkeypatch):
    """Without the optional matplotlib, plotting confusion.png raised after all the training,
    so the run ended in an error instead of its test score, and the summary named a curves.png
    that was never written. Oracle: the run folder's files, and `classify evaluate` of the
    same checkpoint for the score."""
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    out_dir = tmp_path / "run"
    code, out, err = run(["classify", "train", "--data", data["train"], "--test", data["test"],
                          "--steps", "6", "--out", out_dir, "--json", *TINY], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["confusion_png"] is None and result["curves"] is None
    assert not list(out_dir.glob("*.png"))
    assert "no confusion matrix was written" in err
    assert "(curves:" not in err and "(confusion matrix:" not in err
    code, out, _ = run(["classify", "evaluate", "--checkpoint", out_dir, "--data", data["test"],
                        "--json"], capsys)
    assert code == 0 and json.loads(out)["accuracy"] == result["test"]["accuracy"]


def test_evaluate_refuses_a_train_split_of_a_file(trained_run, data, capsys):
    """--split train with --data FILE scored the whole file and reported it as the train
    split. Oracle: --split validation with a file, refused the same way before."""
    code, out, err = run(["classify", "evaluate", "--checkpoint", trained_run, "--data",
                          data["test"], "--split", "train"], capsys)
    assert_one_line_error(code, err, "is a file, which is scored whole")
    assert out == ""


def _write_long_csv(path, n: int, columns=("temp", "noise"), order=None):
    """n sequences as a long CSV (sequence, label, then the channels); class "hot" has a high
    temp, "cold" a low one, and noise carries nothing. ``order`` lists the columns to write."""
    rng = np.random.default_rng(n)
    lines = ["sequence,label," + ",".join(order or columns)]
    for i in range(n):
        label = ("hot", "cold")[i % 2]
        for _ in range(4):
            values = {columns[0]: (3.0 if label == "hot" else -3.0) + rng.normal(0, 0.3),
                      columns[1]: rng.normal(0, 1)}
            lines.append(f"{i},{label}," + ",".join(f"{values[c]:.5f}" for c in order or columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_channels_are_matched_by_name_not_position(tmp_path, capsys):
    """A test file with the training columns in another order was scored by position (the
    model read noise as temp: accuracy 0.15 against 0.67), and one with other column names was
    accepted without a word (found by fuzzing, 2026-12-06). Oracle: the same file with the
    columns in the training order scores the same."""
    train = _write_long_csv(tmp_path / "train.csv", 24)
    same = _write_long_csv(tmp_path / "same.csv", 12)
    swapped = _write_long_csv(tmp_path / "swapped.csv", 12, order=("noise", "temp"))
    renamed = _write_long_csv(tmp_path / "renamed.csv", 12, columns=("pressure", "humidity"))
    out = tmp_path / "run"
    code, _, err = run(["classify", "train", "--data", train, "--test", swapped, "--steps", "60",
                        "--set", "data.noise=0", "--lr", "0.01", "--out", out, *TINY], capsys)
    assert code == 0, err
    scores = {}
    for name, path in (("same", same), ("swapped", swapped)):
        code, printed, err = run(["classify", "evaluate", "--checkpoint", out, "--data", path,
                                  "--json"], capsys)
        assert code == 0, err
        scores[name] = json.loads(printed)
    for key in ("accuracy", "macro_f1", "loss"):
        assert scores["swapped"][key] == pytest.approx(scores["same"][key], abs=1e-6), key
    assert scores["same"]["accuracy"] > 0.9  # temp separates the classes: the model read it
    code, _, err = run(["classify", "evaluate", "--checkpoint", out, "--data", renamed], capsys)
    assert_one_line_error(code, err, "has channels pressure, humidity", "trained on temp, noise")
    code, _, err = run(["classify", "train", "--data", train, "--test", renamed, "--steps", "2",
                        "--out", tmp_path / "run2", *TINY], capsys)
    assert_one_line_error(code, err, "name the feature columns as in the training file")


def test_a_confusion_picture_that_cannot_be_written_leaves_the_scores(data, tmp_path, capsys):
    """confusion.png replaced by a folder: the resumed run failed after training. Oracle:
    `classify evaluate` of the saved checkpoint gives the test accuracy the run reported."""
    out = tmp_path / "run"
    assert run(["classify", "train", "--data", data["train"], "--test", data["test"], "--steps",
                "4", "--out", out, *TINY], capsys)[0] == 0
    (out / "confusion.png").unlink()
    (out / "confusion.png").mkdir()
    code, printed, err = run(["classify", "train", "--resume", out, "--steps", "6", "--json",
                              "--no-progress"], capsys)
    assert code == 0, err
    assert "could not write" in err and "confusion.png" in err
    result = json.loads(printed)
    assert result["confusion_png"] is None
    code, scored, err = run(["classify", "evaluate", "--checkpoint", out, "--json"], capsys)
    assert code == 0, err
    assert json.loads(scored)["accuracy"] == result["test"]["accuracy"]


def test_resume_after_the_data_file_changed_its_classes_is_refused(tmp_path, capsys):
    """The same file rewritten with another class: the resumed run re-indexed the classes
    from the new file, so trained weights silently meant other classes. Oracle: the class
    names saved with the run."""
    path = write_npz(tmp_path / "train.npz", 24, classes=("a", "b"))
    out_dir = tmp_path / "run"
    argv = ["classify", "train", "--data", path, *TINY]
    assert run([*argv, "--steps", "3", "--out", out_dir], capsys)[0] == 0
    write_npz(path, 24, classes=("a", "c"))
    code, _, err = run([*argv, "--steps", "6", "--resume", out_dir], capsys)
    assert_one_line_error(code, err, "has label 'c', which the run was not trained on (its "
                                     "classes: a, b); start a new run with --out")
    write_npz(path, 24, classes=("a",))  # class b gone
    code, _, err = run([*argv, "--steps", "6", "--resume", out_dir], capsys)
    assert_one_line_error(code, err, "has no sequence of class 'b', which the run was trained "
                                     "on; start a new run with --out")
    write_npz(path, 24, classes=("a", "b"))
    assert run([*argv, "--steps", "6", "--resume", out_dir], capsys)[0] == 0


def test_evaluation_labels_differing_in_case_are_other_classes(tmp_path, capsys):
    """Labels are text, matched exactly: A is not a. (A fallback for runs saved with aeon's
    lowercased .ts labels folded every file's labels for a while.) Oracle: a, b scores."""
    train = write_npz(tmp_path / "train.npz", 24, classes=("a", "b"))
    out_dir = tmp_path / "run"
    assert run(["classify", "train", "--data", train, "--steps", "2", "--out", out_dir, *TINY],
               capsys)[0] == 0
    for classes, ok in ((("a", "b"), True), (("A", "B"), False)):
        data = write_npz(tmp_path / f"eval-{''.join(classes)}.npz", 8, classes=classes)
        code, _, err = run(["classify", "evaluate", "--checkpoint", out_dir, "--data", data],
                           capsys)
        if ok:
            assert code == 0, err
        else:
            assert_one_line_error(code, err, "has label 'A', which is not a class")
