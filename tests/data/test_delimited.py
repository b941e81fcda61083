"""rnnkit.data.delimited: the pandas reads under the CSV loaders of time series and sequences.
Oracles: pandas itself on the layout meant, and the values written."""

from __future__ import annotations

import io

import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="delimited files are read with pandas")

from rnnkit.data.delimited import grouped_number, read_delimited  # noqa: E402


def test_r_layout_with_text_row_labels_and_a_missing_last_value(tmp_path):
    # R's write.csv leaves the row-label column out of the header. A missing value in the last
    # column must not make it look like rows that end in a stray delimiter.
    path = tmp_path / "r.csv"
    path.write_text('"date","x","y"\n"r1","2020-01-01",1,2\n"r2","2020-01-02",3,NA\n')
    frame = read_delimited(path)
    assert list(frame.columns) == ["date", "x", "y"]
    assert list(frame.index) == ["r1", "r2"]
    assert frame["x"].tolist() == [1, 3] and frame["y"].iloc[0] == 2
    assert pd.isna(frame["y"].iloc[1])


def test_names_that_stripping_would_make_alike_are_kept_as_written(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,a ,b\n1,2,3\n")
    frame = read_delimited(path)
    assert list(frame.columns) == ["a", "a ", "b"]
    assert frame.iloc[0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("text", ["1,000", "-12,345.67", "+1,200.5", "999,999,999", " 1,000 "])
def test_grouped_numbers_are_the_ones_pandas_reads_with_thousands_marks(text):
    assert grouped_number(text)
    # oracle: pandas with thousands="," reads the cell as a number (as the error advises)
    value = pd.read_csv(io.StringIO(f'v\n"{text.strip()}"\n'), thousands=",")["v"].iloc[0]
    assert float(value) == float(text.replace(",", ""))


@pytest.mark.parametrize("text", ["1,5", "12,34", "1000", "1,0000", "1.000,5", "a,000", "",
                                  "1,000,", ",000"])
def test_other_text_is_no_grouped_number(text):
    assert not grouped_number(text)


BODY = "time,value,note\n0,0.5,a\n1,1.5,C#\n2,2.5,b\n"


@pytest.mark.parametrize("preamble", [
    "# exported from rig 4\n",
    "# exported from rig 4\n# units: litres, per day, 3 fields\n",  # as many fields as the header
    "\n# a\n\n  # b\n\n",  # blank lines before and among the comments count as lines too
    "\ufeff# after a byte-order mark\n",
])
def test_comment_lines_before_the_header_are_skipped(tmp_path, preamble):
    # Oracle: the file without them (a "#" in a later cell stays data).
    (tmp_path / "c.csv").write_text(preamble + BODY, encoding="utf-8")
    expected = pd.read_csv(io.StringIO(BODY))
    pd.testing.assert_frame_equal(read_delimited(tmp_path / "c.csv"), expected)


def test_a_header_commented_by_numpy_savetxt_is_the_header(tmp_path):
    # numpy.savetxt(header=...) writes "# time,value": it was skipped as a comment and the
    # first data row became the header. Oracle: the array written.
    data = np.array([[0.0, 0.1], [1.0, 0.2], [2.0, 0.4]])
    np.savetxt(tmp_path / "s.csv", data, delimiter=",", header="time,value")
    frame = read_delimited(tmp_path / "s.csv")
    assert list(frame.columns) == ["time", "value"]
    np.testing.assert_array_equal(frame.to_numpy(), data)
    # with a comment above it, as savetxt writes a multi-line header
    np.savetxt(tmp_path / "t.csv", data, delimiter=",", header="from rig 4\ntime,value")
    assert list(read_delimited(tmp_path / "t.csv").columns) == ["time", "value"]


def test_a_file_of_comments_only_is_empty(tmp_path):
    (tmp_path / "e.csv").write_text("# nothing yet\n# still nothing\n")
    with pytest.raises(pd.errors.EmptyDataError):
        read_delimited(tmp_path / "e.csv")


def test_spaces_after_delimiters_and_around_names(tmp_path):
    # Oracle: pandas on the file without the spaces; a quoted field keeps its own spaces.
    (tmp_path / "s.csv").write_text('sequence , label ,x\n1, a, 0.5\n2, " b", 1.5\n')
    frame = read_delimited(tmp_path / "s.csv", dtype=str)
    assert list(frame.columns) == ["sequence", "label", "x"]
    assert frame["label"].tolist() == ["a", " b"]
    assert frame["x"].tolist() == ["0.5", "1.5"]
