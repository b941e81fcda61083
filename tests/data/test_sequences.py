"""Labelled variable-length sequences: aeon's bundled UCR/UEA sets and .ts/.npz/.csv files,
each checked against an oracle (aeon's raw arrays, or the arrays a file was written from)."""

import os
import re
import sys

import numpy as np
import pytest

from rnnkit.data import sequences as sequences_module
from rnnkit.data.sequences import BUNDLED_SETS, SequenceDataError, SequenceSet, load_sequences
from one_line import one_line_message as _one_line_error


@pytest.fixture
def aeon_datasets():
    return pytest.importorskip("aeon.datasets", reason="the bundled UCR/UEA sets need aeon "
                                                      "(pip install 'rnnkit[classify]')")


@pytest.fixture
def aeon_raw(aeon_datasets):
    def load(name, split):
        X, y = aeon_datasets.load_classification(name, split=split)
        return [np.asarray(x) for x in X], [str(v) for v in y]
    return load


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _ragged(arrays):
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


# --- aeon's bundled sets -----------------------------------------------------------------------


def test_bundled_sets_are_the_classification_sets_in_the_wheel(aeon_datasets):
    folder = os.path.join(os.path.dirname(aeon_datasets.__file__), "data")
    on_disk = {n for n in os.listdir(folder)
               if all(os.path.isfile(os.path.join(folder, n, f"{n}_{s}.ts"))
                      for s in ("TRAIN", "TEST"))}
    assert set(BUNDLED_SETS) <= on_disk
    assert {"JapaneseVowels", "GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions",
            "ACSF1"} <= set(BUNDLED_SETS)
    assert "Covid3Month" in on_disk and "Covid3Month" not in BUNDLED_SETS  # a regression set


def test_japanese_vowels_matches_aeon(aeon_raw):
    train = load_sequences("JapaneseVowels")
    test = load_sequences("JapaneseVowels", split="test", class_names=train.class_names)
    assert (len(train), len(test)) == (270, 370)
    assert train.channels == test.channels == 12
    assert train.class_names == test.class_names == [str(k) for k in range(1, 10)]
    lengths = np.concatenate([train.lengths, test.lengths])
    assert (lengths.min(), lengths.max()) == (7, 29) and lengths.dtype == np.int64
    assert train.source == "aeon JapaneseVowels (UEA), train split"
    assert test.source == "aeon JapaneseVowels (UEA), test split"
    for loaded, split in ((train, "train"), (test, "test")):
        X, y = aeon_raw("JapaneseVowels", split)
        assert loaded.labels.dtype == np.int64
        np.testing.assert_array_equal(loaded.labels, [train.class_names.index(v) for v in y])
        for sequence, raw in zip(loaded.sequences, X):
            assert sequence.dtype == np.float32 and sequence.shape == raw.T.shape
            np.testing.assert_array_equal(sequence, raw.T.astype(np.float32))
    # the test split on its own finds the same sorted classes, so the indices agree
    np.testing.assert_array_equal(load_sequences("japanesevowels", split="test").labels,
                                  test.labels)


def test_equal_length_gunpoint_loads_as_single_channel_sequences(aeon_raw):
    data = load_sequences("GunPoint")
    X, y = aeon_raw("GunPoint", "train")
    assert len(data) == 50 and data.channels == 1 and data.class_names == ["1", "2"]
    assert all(s.shape == (150, 1) for s in data.sequences)
    assert data.source == "aeon GunPoint (UCR), train split"
    padded, lengths = data.padded()
    np.testing.assert_array_equal(lengths, np.full(50, 150))
    np.testing.assert_array_equal(padded, np.stack(X).transpose(0, 2, 1).astype(np.float32))


def test_classes_sort_numerically(aeon_datasets):
    data = load_sequences("PickupGestureWiimoteZ")  # aeon's own header lists 1, 10, 2, ...
    assert data.class_names == [str(k) for k in range(1, 11)]


def test_ts_file_by_path_matches_the_bundled_name(aeon_datasets, tmp_path):
    folder = os.path.join(os.path.dirname(aeon_datasets.__file__), "data", "ArrowHead")
    by_path = load_sequences(os.path.join(folder, "ArrowHead_TEST.ts"))
    by_name = load_sequences("ArrowHead", split="test")
    assert by_path.source.startswith("file ") and by_path.class_names == by_name.class_names
    np.testing.assert_array_equal(by_path.labels, by_name.labels)
    np.testing.assert_array_equal(by_path.padded()[0], by_name.padded()[0])
    regression = os.path.join(os.path.dirname(folder), "Covid3Month", "Covid3Month_TRAIN.ts")
    with pytest.raises(SequenceDataError, match="no class labels") as excinfo:
        load_sequences(regression)
    _one_line_error(excinfo, "regression")
    broken = tmp_path / "broken.ts"
    broken.write_text("@problemName x\n@classLabel true 1 2\n@data\n1,2,3\n4,5:1:2:3\n")
    with pytest.raises(SequenceDataError, match="cannot read .ts file") as excinfo:
        load_sequences(broken)
    _one_line_error(excinfo)


def test_a_ts_file_without_aeon_names_the_extra_not_a_malformed_file(tmp_path, monkeypatch):
    """Without aeon a valid .ts file was reported as "cannot read .ts file ... check it is a
    valid sktime/aeon .ts file": the missing package was caught as a parse error."""
    good = tmp_path / "good.ts"
    good.write_text("@problemName x\n@univariate true\n@classLabel true a b\n@data\n"
                    "1,2,3:a\n4,5,6:b\n")
    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon.datasets: ImportError
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(good)
    _one_line_error(excinfo)
    assert str(excinfo.value).startswith("UCR/UEA sets and .ts files need the aeon package")
    assert "valid" not in str(excinfo.value)


@pytest.mark.parametrize("stamps", [(0.5, 1.5, 2.5), ("2020-01-01 00:00:00", "2020-01-02 00:00:00",
                                                       "2020-01-05 00:00:00")],
                         ids=["numbers", "dates"])
def test_ts_files_with_time_stamps_read_as_the_same_steps_in_a_csv(aeon_datasets, tmp_path,
                                                                    stamps):
    """aeon's reader keeps only the ``digits.digits`` tokens of a time-stamped .ts line: it
    dropped minus signs (-1 read as 1), integers and exponents, took a stamp 0.5 for a value,
    and kept values written out of order in that order. Oracle: the same steps as a CSV with
    a 'time' column (which sorts them); out of order, the .ts file is refused."""
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    values = [["1.5", "-2", "3e-3"], ["0.5", "-1.0", "?"]]  # two channels; ? is missing
    header = "@problemName x\n@timeStamps true\n@univariate false\n@classLabel true a b\n@data\n"

    def ts_line(order, label):
        return ":".join(",".join(f"({stamps[t]},{channel[t]})" for t in order)
                        for channel in values) + f":{label}\n"

    def csv_rows(order, sequence, label):
        return "".join(f"{sequence},{label},{t},{values[0][t]},{values[1][t].replace('?', '')}\n"
                       for t in order)

    for name, order in (("sorted", (0, 1, 2)), ("shuffled", (0, 2, 1))):
        (tmp_path / f"{name}.ts").write_text(header + ts_line(order, "a") + ts_line((0, 1, 2), "B"))
        (tmp_path / f"{name}.csv").write_text("sequence,label,time,u,v\n" + csv_rows(order, 0, "a")
                                              + csv_rows((0, 1, 2), 1, "B"))
    for path in (tmp_path / "sorted.ts", tmp_path / "shuffled.csv"):  # a missing value: refused
        with pytest.raises(SequenceDataError) as excinfo:
            load_sequences(path)
        _one_line_error(excinfo, "NaN or infinite value (step 2, channel 1)")
    for name in ("sorted.ts", "shuffled.csv"):
        path = tmp_path / name
        path.write_text(path.read_text().replace("?", "7").replace(",\n", ",7\n"))
    from_csv, from_ts = load_sequences(tmp_path / "shuffled.csv"), load_sequences(tmp_path / "sorted.ts")
    assert from_ts.class_names == from_csv.class_names == ["B", "a"]
    np.testing.assert_array_equal(from_ts.labels, from_csv.labels)
    for ts_sequence, csv_sequence in zip(from_ts.sequences, from_csv.sequences, strict=True):
        np.testing.assert_array_equal(ts_sequence, csv_sequence)
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "shuffled.ts")
    _one_line_error(excinfo, "sequence 0, channel 0 has time stamps out of order at step 2",
                    "sort each series")


def test_ts_files_with_time_stamps_other_dates_colon_labels_and_bytes(aeon_datasets, tmp_path):
    """The time-stamped reader (review of its first version): dates not in ISO form were
    refused, a label holding a colon made its first part a channel, and a file that is not
    UTF-8 gave a traceback. Oracle: the same steps without stamps, read by aeon's reader."""
    plain = ("@problemName x\n@timeStamps false\n@univariate true\n@classLabel true b c\n"
             "@data\n0.5,-0.7,2:b\n1.5,3,4:c\n")
    # the label is the text after the last colon: "a:b" is "b" (aeon reads no such line)
    stamped = plain.replace("false", "true").replace(
        "0.5,-0.7,2:b", "(2020/01/01,0.5),(2020/01/02,-0.7),(2020/01/05,2):a:b").replace(
        "1.5,3,4:", "(01/02/2020,1.5),(01/03/2020,3),(01/04/2020,4):")
    (tmp_path / "plain.ts").write_text(plain)
    (tmp_path / "stamped.ts").write_text(stamped)
    expected, got = load_sequences(tmp_path / "plain.ts"), load_sequences(tmp_path / "stamped.ts")
    assert got.class_names == expected.class_names == ["b", "c"]
    np.testing.assert_array_equal(got.labels, expected.labels)
    for a, b in zip(got.sequences, expected.sequences, strict=True):
        np.testing.assert_array_equal(a, b)
    for name, text in (("plain", plain), ("stamped", stamped)):
        latin1 = text.replace("c\n", "caf\xe9\n").encode("latin-1")
        (tmp_path / f"{name}-latin1.ts").write_bytes(latin1)
        with pytest.raises(SequenceDataError) as excinfo:
            load_sequences(tmp_path / f"{name}-latin1.ts")
        _one_line_error(excinfo, "cannot read .ts file")


def test_unknown_names_never_reach_aeon(aeon_datasets, monkeypatch):
    def forbidden(*args, **kwargs):
        pytest.fail(f"aeon was called with {args} {kwargs}; it would try the network")
    monkeypatch.setattr(aeon_datasets, "load_classification", forbidden)
    monkeypatch.setattr(aeon_datasets, "load_from_ts_file", forbidden)
    for name in ("FordA", "Covid3Month", "JapaneseVowels_eq", "CharacterTrajectories"):
        with pytest.raises(SequenceDataError, match="neither a UCR/UEA set bundled") as excinfo:
            load_sequences(name)
        _one_line_error(excinfo, "JapaneseVowels", "GunPoint", "download", ".ts/.npz/.csv")


def test_without_aeon_the_error_says_how_to_install_it(monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    monkeypatch.setattr(sequences_module, "BUNDLED_SETS", ("JapaneseVowels",))
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences("JapaneseVowels")
    _one_line_error(excinfo, "aeon", 'pip install "rnnkit[classify]"')
    monkeypatch.setattr(sequences_module, "BUNDLED_SETS", ())  # aeon absent: nothing bundled
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences("GunPoint")
    _one_line_error(excinfo, "not an existing file", 'pip install "rnnkit[classify]"')


# --- SequenceSet -------------------------------------------------------------------------------


def test_padded_zeroes_past_each_length():
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((t, 3)).astype(np.float32) + 5 for t in (4, 1, 7)]
    data = SequenceSet(sequences, np.array([0, 1, 0]), ["a", "b"], "test")
    assert len(data) == 3 and data.channels == 3
    padded, lengths = data.padded(dtype=np.float64)
    assert padded.shape == (3, 7, 3) and padded.dtype == np.float64
    np.testing.assert_array_equal(lengths, [4, 1, 7])
    for row, sequence in zip(padded, sequences):
        np.testing.assert_array_equal(row[:len(sequence)], sequence)
        assert not row[len(sequence):].any()


# --- NumPy files -------------------------------------------------------------------------------


def test_npz_fixed_shape_with_lengths_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 6, 2))
    lengths = np.array([6, 1, 3, 6, 2])
    y = np.array(["walk", "run", "walk", "sit", "run"])
    data = load_sequences(_write_npz(tmp_path / "fixed.npz", X=X, y=y, lengths=lengths),
                          split="test")  # ignored for files
    assert data.class_names == ["run", "sit", "walk"]
    np.testing.assert_array_equal(data.labels, [2, 0, 2, 1, 0])
    np.testing.assert_array_equal(data.lengths, lengths)
    for sequence, x, n in zip(data.sequences, X, lengths):
        np.testing.assert_array_equal(sequence, x[:n].astype(np.float32))
    assert data.source == f"file {(tmp_path / 'fixed.npz').resolve()}"


def test_npz_object_arrays_and_two_dimensional_x_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((t, 4)).astype(np.float32) for t in (3, 9, 1)]
    y = np.array([10, 9, 2])  # integer labels sort as numbers
    data = load_sequences(_write_npz(tmp_path / "ragged.npz", X=_ragged(arrays), y=y))
    assert data.class_names == ["2", "9", "10"] and data.channels == 4
    np.testing.assert_array_equal(data.labels, [2, 1, 0])
    for sequence, x in zip(data.sequences, arrays):
        np.testing.assert_array_equal(sequence, x)
    flat = load_sequences(_write_npz(tmp_path / "flat.npz", X=np.arange(12.0).reshape(3, 4),
                                     y=np.array([0, 1, 0])), class_names=["0", "1", "2"])
    assert flat.channels == 1 and flat.class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(flat.sequences[1][:, 0], [4, 5, 6, 7])


@pytest.mark.parametrize("arrays, needles", [
    ({"X": np.zeros((2, 3, 1))}, ["no array 'y'", "it has X"]),
    ({"data": np.zeros((2, 3)), "y": np.zeros(2)}, ["no array 'X'", "it has data, y"]),
    ({"X": np.zeros((2, 3, 1)), "y": np.zeros(3)}, ["2 sequences in X but 3 labels"]),
    ({"X": np.zeros((2, 3, 1)), "y": np.zeros((2, 1))}, ["y must be one label per sequence"]),
    ({"X": np.zeros((2, 3, 1, 1)), "y": np.zeros(2)}, ["X must be a numeric (N, T, C)"]),
    ({"X": np.zeros(4), "y": np.zeros(4)}, ["X must be a numeric", "shape (4,)"]),
    ({"X": np.array([["a", "b"]]), "y": np.zeros(1)}, ["X must be a numeric"]),
    ({"X": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([3, 4])},
     ["lengths[1] is 4, outside 1..3"]),
    ({"X": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([0, 3])},
     ["lengths[0] is 0, outside 1..3"]),
    ({"X": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([1.5, 3])},
     ["lengths must be 2 whole numbers"]),
    ({"X": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([3])},
     ["lengths must be 2 whole numbers"]),
    ({"X": np.zeros((0, 3, 1)), "y": np.zeros(0)}, ["holds no sequences"]),
    ({"X": _ragged([np.zeros((2, 1)), np.zeros((0, 1))]), "y": np.zeros(2)},
     ["sequence 1 of file", "shape (0, 1)", "at least one step"]),
    ({"X": _ragged([np.zeros((2, 2)), np.zeros((3, 3))]), "y": np.zeros(2)},
     ["sequence 1 of file", "3 channels but sequence 0 has 2"]),
    ({"X": _ragged([np.zeros((2, 2)), np.zeros((3, 2, 1))]), "y": np.zeros(2)},
     ["sequence 1 must be a numeric (T_i, C) array"]),
    ({"X": np.array([[[0.0], [np.nan]], [[1.0], [2.0]]]), "y": np.zeros(2)},
     ["sequence 0 of file", "NaN or infinite value (step 1, channel 0)", "fill"]),
    ({"X": _ragged([np.zeros((2, 2)), np.array([[1.0, np.inf]])]), "y": np.zeros(2)},
     ["sequence 1 of file", "(step 0, channel 1)"]),
])
def test_npz_errors_name_the_problem(tmp_path, arrays, needles):
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SequenceDataError, match=re.escape(needles[0])) as excinfo:
        load_sequences(path)
    _one_line_error(excinfo, *needles)


def test_npz_that_is_not_an_archive(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(SequenceDataError, match="cannot read .npz file") as excinfo:
        load_sequences(path)
    _one_line_error(excinfo, "numpy.savez")


# --- CSV files ---------------------------------------------------------------------------------


def _long_frame(sequences, labels, ids):
    import pandas as pd
    rows = [{"sequence": i, "label": label, "time": 0.5 * t, "x": step[0], "y": step[1]}
            for seq, label, i in zip(sequences, labels, ids) for t, step in enumerate(seq)]
    return pd.DataFrame(rows)


def test_csv_rows_in_any_order_are_put_back_in_time_order(tmp_path):
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((t, 2)) for t in (5, 2, 8, 1)]
    frame = _long_frame(arrays, ["1", "10", "2", "10"], [12, 3, 7, 100])
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "long.csv", index=False)
    data = load_sequences(tmp_path / "long.csv")
    assert data.class_names == ["1", "2", "10"]
    # sequences come in id order (3, 7, 12, 100: numeric ids sort as numbers)
    np.testing.assert_array_equal(data.labels, [2, 1, 0, 2])
    for sequence, expected in zip(data.sequences, [arrays[1], arrays[2], arrays[0], arrays[3]]):
        np.testing.assert_allclose(sequence, expected.astype(np.float32), rtol=1e-6)
    # the ids name the sequences in that order (they were dropped, so predictions could not
    # be matched to them)
    assert data.ids == ["3", "7", "12", "100"]


def test_csv_without_time_keeps_file_order(tmp_path):
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    (tmp_path / "long.csv").write_text(
        "sequence,label,a\nb,cat,3\na,dog,1\nb,cat,2\na,dog,5\nb,cat,1\n")
    data = load_sequences(tmp_path / "long.csv")
    assert data.class_names == ["cat", "dog"] and data.channels == 1
    np.testing.assert_array_equal(data.labels, [1, 0])
    np.testing.assert_array_equal(data.sequences[0][:, 0], [1, 5])
    assert data.ids == ["a", "b"]
    np.testing.assert_array_equal(data.sequences[1][:, 0], [3, 2, 1])


@pytest.mark.parametrize("text, needles", [
    ("id,label,a\n1,x,0.5\n", ["no 'sequence' column", "columns: id, label, a",
                               "one row per time step"]),
    ("sequence,class,a\n1,x,0.5\n", ["no 'label' column", "'sequence' (id), 'label'"]),
    ("sequence,label,a\n1,x,0.5\n1,y,0.7\n", ["sequence '1' has labels ['x', 'y']",
                                              "same label"]),
    ("sequence,label,a\n1,x,0.5\n2,y,\n", ["sequence 1 (id '2') of file", "NaN or infinite"]),
    ("sequence,label,a,who\n1,x,0.5,5\n1,x,0.5,ann\n",
     ["feature column 'who' has the text 'ann' in data row 2", "numbers",
      "fill or interpolate a missing value"]),  # an empty cell is refused too (row above)
    ("sequence,label\n1,x\n", ["no feature columns"]),
    # pandas filled the missing fields with NaN: "a NaN or infinite value" at a step the row
    # never reached
    ("sequence,label,a,b\n1,x,0.5,0.7\n\n1,x,0.5\n", ["line 4 has 3 of the 4 fields the "
                                                       "header names", "fill in every field"]),
    ("\nsequence, label, a, b\n1, x, 0.5, 0.7\n1, x, 0.5\n", ["line 4 has 3 of the 4 fields"]),
    # pandas read the second as "a.1", a channel the file does not name
    ("sequence,label,a,a\n1,x,0.5,0.7\n", ["the header names the column 'a' twice",
                                            "give each column its own name"]),
    ("sequence,label,time,a\n1,x,0,0.5\n1,x,0,0.7\n", ["sequence '1' has time 0 twice"]),
    ("sequence,label,time,a\n1,x,t0,0.5\n", ["'time' column must be numeric"]),
    ("sequence,label,a\n1,x,0.5\n2,,0.7\n", ["no 'label' value in data row 2"]),
    ("sequence,label,a\n", ["has no rows"]),
    ("", ["cannot read CSV file"]),
])
def test_csv_errors_name_the_problem(tmp_path, text, needles):
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "bad.csv")
    _one_line_error(excinfo, *needles)


def test_csv_feature_cells_pandas_leaves_as_text_are_read_as_their_numbers(tmp_path):
    """A cell of spaces or a number of 40 digits made pandas keep the column as text, and the
    whole column was refused as "non-numeric". Oracle: the same file with the cell empty (a
    missing value) or written as a float, which give their own errors."""
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")

    def error(cell):
        (tmp_path / "f.csv").write_text(f"sequence,label,a\n1,x,0.5\n1,x,{cell}\n2,y,1\n")
        with pytest.raises(SequenceDataError) as excinfo:
            load_sequences(tmp_path / "f.csv")
        return str(excinfo.value)

    assert error('"   "') == error("") and "NaN or infinite value (step 1" in error("")
    assert error("1" * 40) == error("1.1111111111111111e+39")
    assert "beyond float32's range" in error("1" * 40)


# --- labels, names and paths -------------------------------------------------------------------


def test_class_names_fix_the_indices_and_reject_unknown_labels(tmp_path):
    path = _write_npz(tmp_path / "s.npz", X=np.zeros((3, 2, 1)), y=np.array(["b", "a", "b"]))
    data = load_sequences(path, class_names=["b", "c", "a"])
    assert data.class_names == ["b", "c", "a"]
    np.testing.assert_array_equal(data.labels, [0, 2, 0])
    with pytest.raises(SequenceDataError, match="label 'b' of file") as excinfo:
        load_sequences(path, class_names=["a", "c"])
    _one_line_error(excinfo, "not in class_names (a, c)", "training set")
    with pytest.raises(SequenceDataError, match="class_names has duplicates") as excinfo:
        load_sequences(path, class_names=["a", "b", "a"])
    _one_line_error(excinfo)


def test_bad_split_and_bad_paths(tmp_path):
    with pytest.raises(SequenceDataError, match="split must be 'train' or 'test'") as excinfo:
        load_sequences("GunPoint", split="validation")
    _one_line_error(excinfo)
    (tmp_path / "notes.txt").write_text("1,2,3\n")
    for path in (tmp_path / "notes.txt", tmp_path):
        with pytest.raises(SequenceDataError, match="is not a .ts, .npz or .csv file") as excinfo:
            load_sequences(path)
        _one_line_error(excinfo)


def test_csv_labels_and_ids_like_na_are_values_and_the_index_column_is_skipped(tmp_path):
    """pandas reads "NA", "None" and "null" as missing by default, so a class "NA" (North
    America) was refused; and the row index DataFrame.to_csv writes ("Unnamed: 0") was taken
    as a feature channel. Oracle: the arrays written."""
    pd = pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((t, 2)) for t in (3, 4, 2)]
    frame = _long_frame(arrays, ["NA", "EU", "None"], ["NA", "null", "7"])
    frame.to_csv(tmp_path / "long.csv")  # index=True: the "Unnamed: 0" column
    data = load_sequences(tmp_path / "long.csv")
    # written by to_csv twice: two index columns ("Unnamed: 0.1", "Unnamed: 0"), both skipped
    pd.read_csv(tmp_path / "long.csv", dtype={"sequence": str, "label": str},
                keep_default_na=False).to_csv(tmp_path / "twice.csv")
    assert load_sequences(tmp_path / "twice.csv").channels == 2
    assert data.class_names == ["EU", "NA", "None"] and data.channels == 2
    by_label = {data.class_names[k]: s for k, s in zip(data.labels, data.sequences)}
    for label, expected in zip(["NA", "EU", "None"], arrays):
        np.testing.assert_allclose(by_label[label], expected.astype(np.float32), rtol=1e-6)


def test_csv_written_with_a_space_after_each_comma_reads_as_without(tmp_path):
    """``sequence, label, x`` named its columns " label" and " x": the file was refused for
    having no 'label' column. Oracle: the same file without the spaces, and the arrays."""
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((t, 2)) for t in (3, 4, 2)]
    frame = _long_frame(arrays, ["01", "NA", "7"], ["s1", "s2", "s3"])
    plain = frame.to_csv(index=False)
    (tmp_path / "plain.csv").write_text(plain)
    (tmp_path / "spaced.csv").write_text(plain.replace(",", ", "))
    header, rest = plain.split("\n", 1)  # names padded on both sides: " label " too
    (tmp_path / "padded.csv").write_text(header.replace(",", " , ") + " \n" + rest)
    expected, spaced, padded = (load_sequences(tmp_path / name)
                                for name in ("plain.csv", "spaced.csv", "padded.csv"))
    assert padded.class_names == expected.class_names and padded.ids == expected.ids
    np.testing.assert_array_equal(padded.labels, expected.labels)
    assert spaced.class_names == expected.class_names == ["01", "7", "NA"]  # text, as written
    assert spaced.channel_names == expected.channel_names
    assert spaced.ids == expected.ids == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(spaced.labels, expected.labels)
    for got, array in zip(spaced.sequences, arrays):
        np.testing.assert_allclose(got, array.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("labels", [np.array([0.0, np.nan, 1.0]),
                                    np.array(["a", None, "b"], dtype=object),
                                    # an empty one was a class "", where a CSV refused it
                                    np.array(["a", "", "b"]), np.array(["a", " ", "b"])],
                         ids=["nan", "none", "empty", "blank"])
def test_a_missing_npz_label_is_refused_not_made_a_class(tmp_path, labels):
    np.savez(tmp_path / "set.npz", X=np.zeros((3, 4, 1)), y=labels)
    with pytest.raises(SequenceDataError) as info:
        load_sequences(tmp_path / "set.npz")
    _one_line_error(info, "the label of sequence 1 of", "is missing")


def test_class_names_match_labels_by_value_when_written_another_way(tmp_path):
    """A test file saved with integer labels gets the indices of a train set's float classes
    ("1" is "1.0"); a number of no class's value is still refused. Oracle: the labels saved."""
    np.savez(tmp_path / "set.npz", X=np.zeros((4, 3, 1)), y=np.array([2, 0, 1, 2]))
    data = load_sequences(tmp_path / "set.npz", class_names=["0.0", "1.0", "2.0"])
    assert data.class_names == ["0.0", "1.0", "2.0"]
    assert data.labels.tolist() == [2, 0, 1, 2]
    with pytest.raises(SequenceDataError) as info:
        load_sequences(tmp_path / "set.npz", class_names=["0.0", "1.0", "2.5"])
    _one_line_error(info, "label '2' of", "is not in class_names")


def test_a_value_beyond_float32_is_named_not_called_missing(tmp_path):
    """1e39 overflowed in the cast to float32 and was reported as a NaN to fill in."""
    x = np.zeros((2, 3, 1))
    x[1, 2, 0] = -1e39
    np.savez(tmp_path / "set.npz", X=x, y=np.array([0, 1]))
    with pytest.raises(SequenceDataError) as info:
        load_sequences(tmp_path / "set.npz")
    _one_line_error(info, "sequence 1 of", "-1e+39 (step 2, channel 0), beyond float32")


def test_an_infinite_value_is_called_infinite_not_out_of_range(tmp_path):
    """An inf is also larger than float32's maximum and was reported as a value to rescale."""
    x = np.zeros((2, 3, 1))
    x[0, 1, 0] = np.inf
    np.savez(tmp_path / "set.npz", X=x, y=np.array([0, 1]))
    with pytest.raises(SequenceDataError) as info:
        load_sequences(tmp_path / "set.npz")
    _one_line_error(info, "sequence 0 of", "NaN or infinite value (step 1, channel 0)")


def test_a_csv_column_with_a_blank_header_past_the_first_is_a_feature(tmp_path):
    """Only a first column "Unnamed: 0" is the index to_csv writes; a later blank header
    (pandas names it "Unnamed: N") is a channel the user wrote and was dropped. Oracle: the
    arrays written."""
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((t, 2)) for t in (3, 2)]
    frame = _long_frame(arrays, ["a", "b"], [1, 2]).rename(columns={"y": ""})
    frame.to_csv(tmp_path / "long.csv", index=False)
    data = load_sequences(tmp_path / "long.csv")
    assert data.channels == 2
    for sequence, expected in zip(data.sequences, arrays):
        np.testing.assert_allclose(sequence, expected.astype(np.float32), rtol=1e-6)


# --- .ts labels as written ---------------------------------------------------------------------


_TS_HEADER = ("@problemName cases\n@timeStamps false\n@univariate true\n@equalLength false\n"
              "@classLabel true A a Finance what?\n@data\n")


def test_ts_labels_keep_their_case_and_letters_as_in_npz_and_csv(aeon_datasets, tmp_path):
    """aeon lowercases each data line and writes "nan" and "?" as "NaN": classes "A" and "a"
    became one, "Finance" came back as "fiNaNce" and "what?" as "whatNaN". Oracle: the same
    sequences and labels written as .npz and as .csv."""
    rows = [([1.0, 2.0], "A"), ([3.0, 4.0], "a"), ([5.0], "Finance"), ([6.0, 7.0, 8.0], "what?")]
    (tmp_path / "cases.ts").write_text(_TS_HEADER + "".join(
        f"{','.join(map(str, x))}:{label}\n" for x, label in rows))
    _write_npz(tmp_path / "cases.npz", X=_ragged([np.array(x) for x, _ in rows]),
               y=np.array([label for _, label in rows]))
    (tmp_path / "cases.csv").write_text("sequence,label,x\n" + "".join(
        f"{i},{label},{v}\n" for i, (x, label) in enumerate(rows) for v in x))
    loaded = [load_sequences(tmp_path / f"cases.{kind}") for kind in ("ts", "npz", "csv")]
    for other in loaded[1:]:
        assert loaded[0].class_names == other.class_names == ["A", "Finance", "a", "what?"]
        np.testing.assert_array_equal(loaded[0].labels, other.labels)
        np.testing.assert_array_equal(loaded[0].padded()[0], other.padded()[0])


def test_a_missing_ts_label_is_refused_not_made_a_class(aeon_datasets, tmp_path):
    (tmp_path / "missing.ts").write_text(_TS_HEADER + "1,2:A\n3,4:?\n")
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "missing.ts")
    _one_line_error(excinfo, "the label of sequence 1", "is missing")


@pytest.mark.parametrize("stamped", [False, True])
def test_a_ts_file_without_its_data_line_is_named_as_such(aeon_datasets, tmp_path, stamped):
    """aeon reads a .ts file whose @data line is missing as an empty set, which was reported
    as "holds no sequences" while the file held two. Oracle: the same file with the line
    loads both sequences."""
    header = "@problemName x\n" + ("@timeStamps true\n" if stamped else "") + \
        "@univariate true\n@classLabel true a b\n"
    lines = "(0,1.0),(1,2.0):a\n(0,3.0),(1,4.0):b\n" if stamped else "1.0,2.0:a\n3.0,4.0:b\n"
    (tmp_path / "no_data_line.ts").write_text(header + lines)
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "no_data_line.ts")
    _one_line_error(excinfo, "has no @data line", "between the header and the first sequence")
    (tmp_path / "with_data_line.ts").write_text(header + "@data\n" + lines)
    assert len(load_sequences(tmp_path / "with_data_line.ts").sequences) == 2


@pytest.mark.parametrize("stamped", [False, True])
def test_a_ts_label_its_header_does_not_declare_is_refused(aeon_datasets, tmp_path, stamped):
    """aeon took a label outside "@classLabel true a b" as one more class. Oracle: the same
    file with the label declared loads it as a class (case is not compared, as aeon reads)."""
    header = "@problemName x\n" + ("@timeStamps true\n" if stamped else "") + \
        "@univariate true\n@classLabel true a b\n@data\n"
    lines = ("(0,1.0),(1,2.0):a\n(0,3.0),(1,4.0):c\n(0,5.0),(1,6.0):B\n" if stamped
             else "1.0,2.0:a\n3.0,4.0:c\n5.0,6.0:B\n")
    (tmp_path / "undeclared.ts").write_text(header + lines)
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "undeclared.ts")
    _one_line_error(excinfo, "sequence 1 has the label 'c', which its @classLabel line does not "
                             "declare (a b)", "add it there or correct the label")
    (tmp_path / "declared.ts").write_text(header.replace("true a b", "true a b c") + lines)
    assert load_sequences(tmp_path / "declared.ts").class_names == ["B", "a", "c"]
    # one declared label in two spellings would be two classes (rnnkit keeps case)
    (tmp_path / "two.ts").write_text(header + lines.replace(":c", ":A"))
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "two.ts")
    _one_line_error(excinfo, "sequence 1 has the label 'A' and an earlier one 'a'",
                    "write it one way")


def test_bundled_class_names_are_the_ones_the_file_declares(aeon_datasets):
    """BasicMotions declares Standing, Running, Walking and Badminton; they came back in lower
    case. Oracle: the file's own @classLabel line."""
    path = os.path.join(os.path.dirname(aeon_datasets.__file__), "data", "BasicMotions",
                        "BasicMotions_TRAIN.ts")
    with open(path) as handle:
        declared = next(line for line in handle if line.lower().startswith("@classlabel"))
    assert sorted(declared.split()[2:]) == load_sequences("BasicMotions").class_names


def test_a_cell_past_the_csv_modules_field_limit_still_loads(tmp_path):
    """The short-row scan uses the csv module, which refuses cells over 131072 characters
    that pandas reads: that file came out as a traceback. Oracle: pandas' own reading."""
    label = "x" * 140_000
    (tmp_path / "long.csv").write_text(f"sequence,label,a\n1,{label},0.5\n2,y,0.7\n")
    assert sorted(load_sequences(tmp_path / "long.csv").class_names) == sorted([label, "y"])


@pytest.mark.parametrize("layout", ["r_row_labels", "trailing_delimiter"])
def test_csv_rows_one_field_longer_than_the_header_read_as_meant(tmp_path, layout):
    """R's write.table layout (a row label before each row, none in the header) made every id
    blank ("no 'sequence' value in data row 1"), and rows ending in a comma crashed in pandas
    ("cannot reindex on an axis with duplicate labels"). Oracle: the same rows written
    plainly."""
    plain = "sequence,label,x\ns1,a,0.5\ns1,a,0.25\ns2,b,0.75\n"
    (tmp_path / "plain.csv").write_text(plain)
    rows = plain.splitlines()[1:]
    if layout == "r_row_labels":
        odd = plain.splitlines()[0] + "\n" + "".join(f'"{i}",{r}\n' for i, r in enumerate(rows))
    else:
        odd = plain.splitlines()[0] + "\n" + "".join(f"{r},\n" for r in rows)
    (tmp_path / "odd.csv").write_text(odd)
    expected, loaded = (load_sequences(tmp_path / f"{n}.csv") for n in ("plain", "odd"))
    assert loaded.ids == expected.ids == ["s1", "s2"]
    assert loaded.class_names == expected.class_names
    np.testing.assert_array_equal(loaded.labels, expected.labels)
    np.testing.assert_array_equal(loaded.padded()[0], expected.padded()[0])


def test_csv_rows_with_two_extra_fields_are_named_as_such(tmp_path):
    (tmp_path / "extra.csv").write_text("sequence,label,x\n1,a,1,,\n2,b,3,,\n")
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "extra.csv")
    _one_line_error(excinfo, "data rows have more fields than the header has names")


def test_a_later_row_with_an_extra_field_is_named_by_its_line(tmp_path):
    """pandas' own "Error tokenizing data. C error: Expected 3 fields in line 3, saw 4" was
    passed on with a hint to write the layout the file had. Oracle: the file's line 3, and
    the file without the extra field, which loads."""
    rows = "1,a,0.5\n1,a,0.6{}\n2,b,0.7\n"
    (tmp_path / "extra.csv").write_text("sequence,label,x\n" + rows.format(",9"))
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "extra.csv")
    _one_line_error(excinfo, "line 3 has 4 fields but the header names 3",
                    "name every column in the header (or remove the extra fields)")
    (tmp_path / "fixed.csv").write_text("sequence,label,x\n" + rows.format(""))
    assert load_sequences(tmp_path / "fixed.csv").class_names == ["a", "b"]


def test_a_csv_that_is_not_utf8_says_to_save_it_as_utf8(tmp_path):
    """It said to write one row per time step, which the file did."""
    (tmp_path / "latin.csv").write_bytes("sequence,label,x\n1,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(SequenceDataError) as info:
        load_sequences(tmp_path / "latin.csv")
    _one_line_error(info, "is not UTF-8 text", "save it as UTF-8")


def test_a_semicolon_csv_is_named_not_misread(tmp_path):
    """A spreadsheet's semicolon file with decimal commas split each row at the decimal comma
    and read as R's row-label layout. Oracle: the header as written."""
    (tmp_path / "set.csv").write_text("sequence;label;x\ns1;a;0,5\ns1;a;1,5\ns2;b;2,5\n")
    with pytest.raises(SequenceDataError) as info:
        load_sequences(tmp_path / "set.csv")
    _one_line_error(info, "separated by ';'", "'sequence;label;x'", "save it with commas")


def test_csv_comment_lines_before_the_header_are_skipped(tmp_path):
    """The first "#" line was taken for the header: "no 'sequence' column". Oracle: the same
    file without the comments (a "#" label further on stays a label)."""
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    body = "sequence,label,x\n1,C#,0.5\n1,C#,1.5\n2,F,2.5\n"
    (tmp_path / "plain.csv").write_text(body)
    (tmp_path / "commented.csv").write_text("# recorded 2026-12-01\n#  rig 4\n" + body)
    plain, commented = (load_sequences(tmp_path / n) for n in ("plain.csv", "commented.csv"))
    assert commented.class_names == plain.class_names == ["C#", "F"]
    for got, expected in zip(commented.sequences, plain.sequences):
        np.testing.assert_array_equal(got, expected)


def test_csv_feature_with_thousands_separators_is_named(tmp_path):
    pytest.importorskip("pandas", reason="CSV sequence files need pandas")
    (tmp_path / "g.csv").write_text('sequence,label,x\n1,a,2\n1,a,"1,000"\n2,b,3\n')
    with pytest.raises(SequenceDataError) as excinfo:
        load_sequences(tmp_path / "g.csv")
    _one_line_error(excinfo, "feature column 'x' writes numbers with thousands separators",
                     "'1,000' in data row 2")
