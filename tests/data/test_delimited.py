"""rnnkit.data.delimited: the pandas reads under the CSV loaders of time series and sequences.
Oracles: pandas itself on the layout meant, and the values written."""

from __future__ import annotations

import io

import pytest

pd = pytest.importorskip("pandas", reason="delimited files are read with pandas")

from rnnkit.data.delimited import grouped_number, read_delimited  # noqa: E402


def test_r_layout_with_text_row_labels_and_a_missing_last_value(tmp_path):
    # R's write.csv leaves the row-label column out of the header. A missing value in the last
    # column must not make it look like rows that end in a stray delimiter.
    path = tmp_path / "r.csv"
    path.write_text('"date","x","y"\n"r1","2020-01-01",1,2\n"r2","2020-01-02",3,NA\n')
    frame, layout = read_delimited(path)
    assert list(frame.columns) == ["date", "x", "y"]
    assert list(frame.index) == ["r1", "r2"]
    assert frame["x"].tolist() == [1, 3] and frame["y"].iloc[0] == 2
    assert pd.isna(frame["y"].iloc[1])
    # the layout reads other columns of the same rows in the same order
    again = pd.read_csv(path, usecols=["date"], **layout)
    assert again["date"].tolist() == ["2020-01-01", "2020-01-02"]


def test_names_that_stripping_would_make_alike_are_kept_as_written(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,a ,b\n1,2,3\n")
    frame, _ = read_delimited(path)
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
