"""Reading CSV/TSV files with pandas: rows that end in a stray delimiter, and columns of
numbers pandas left as text.

Data rows one field longer than the header make pandas take each row's first field for a row
label. That is right for R's ``write.csv`` (whose header leaves out the label column, so the
names line up with the fields after it), but rows that merely end in a delimiter
(``2020-01-01,1,10,``) leave the last column empty on every row and put every name one column
off. Those files are read again as they are meant, without a row label.
"""

from __future__ import annotations

import csv
import itertools
import re
import warnings
from typing import NamedTuple


class ExtraFieldsError(ValueError):
    """Data rows have more fields than the header has names (and do not end in a delimiter)."""


class RepeatedNameError(ValueError):
    """The header names one column twice (pandas would rename the second ``name.1``)."""


class ShortRowError(ValueError):
    """A data row has fewer fields than the header names (pandas fills the rest with NaN)."""


class OtherDelimiterError(ValueError):
    """The file's fields are separated by another character than the one it is read with (a
    semicolon file, as spreadsheets write where the comma is the decimal mark, or a comma file
    named .tsv). ``expected`` is the delimiter it was read with."""

    def __init__(self, delimiter: str, header: str, expected: str = ",") -> None:
        self.delimiter, self.header, self.expected = delimiter, header, expected
        super().__init__(f"its fields are separated by {delimiter!r} (header {header!r})")


# the comma last: it is "another" delimiter only for a file read as tab-separated (.tsv)
_OTHER_DELIMITERS = (";", "\t", "|", ",")


def _other_delimiter(frame, sep: str, row_labels: bool) -> str | None:
    """The delimiter a file read with ``sep`` seems to use instead: the header read as one name
    holding it, with the rows read as one field too, or, where a decimal comma split each row
    in two (``2020-01-01;100,35``), as R's row-label layout with that delimiter in the labels."""
    if len(frame.columns) != 1:
        return None
    name = str(frame.columns[0])
    for delimiter in _OTHER_DELIMITERS:
        if delimiter == sep or delimiter not in name:
            continue
        cells = frame.index if row_labels else frame[frame.columns[0]]
        if len(cells) and all(delimiter in str(cell) for cell in cells):
            return delimiter
    return None


#: a number written with a decimal comma: 101,1, with thousands marks (1.234,5, 1 234,5 with
#: a space or no-break space, 1'234,5), an exponent (1,5E-03), or quoted
_DECIMAL_COMMA = re.compile(r"""\s*"?[-+]?\d[\d.' \u00a0]*,\d+(?:[eE][-+]?\d+)?"?\s*""")


#: a number written with thousands separators in a comma file (so quoted): 1,000 or -12,345.67
_GROUPED = re.compile(r"\s*[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*")


def grouped_number(text) -> bool:
    """Whether ``text`` is a number written with thousands separators (``"1,000"``).

    Such cells are not read as numbers: in a comma-separated file ``"1,250"`` may as well be
    1.25 written with a decimal comma, so they are named in an error instead of guessed."""
    return isinstance(text, str) and _GROUPED.fullmatch(text) is not None


def grouped_advice(column, cell: str, row: int) -> str:
    """The rest of a one-line error for a column whose cell ``cell`` (data row ``row``, from 1)
    holds a number with thousands separators."""
    return (f"column {str(column)!r} writes numbers with thousands separators ({cell.strip()!r} "
            f"in data row {row}); save the numbers without them (pandas: "
            f"read_csv(path, thousands=',') then to_csv)")


def _delimiter_of_every_line(path, sep: str) -> tuple[str, str] | None:
    """``(delimiter, header)`` where the header and every data line among the first 50 hold
    another delimiter equally often and a data line has a field between those delimiters
    written with a decimal comma. Such a semicolon file whose header holds a comma
    (``Datum;Umsatz, EUR``) splits into two columns when read as CSV, so the one-column test of
    :func:`_other_delimiter` never ran, and its decimal commas split every row likewise. The
    decimal commas tell it from a comma file whose text holds a semicolon in every row
    (``clear; light wind``), which reads as it is."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            lines = [line.rstrip("\r\n") for _, line in zip(range(51), file)]
    except OSError:
        return None
    lines = [line for line in lines if line.strip() and not _COMMENT.match(line)]
    if len(lines) < 2:
        return None
    for delimiter in _OTHER_DELIMITERS:
        count = lines[0].count(delimiter)
        if (delimiter != sep and count
                and all(line.count(delimiter) == count for line in lines[1:])
                # any line: whole numbers or an empty cell in some rows are no comma file
                and any(_DECIMAL_COMMA.fullmatch(field)
                        for line in lines[1:] for field in line.split(delimiter))):
            return delimiter, lines[0]
    return None


def _first_line(path) -> str | None:
    """The header: the first line that is no comment (see :func:`_preamble`)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            for line in file:
                if not _COMMENT.match(line):
                    return line.rstrip("\r\n")
    except OSError:
        pass
    return None


#: a cell that starts like a date (2020-01-31, 31/01/2020, 2020.01.31)
_DATE = re.compile(r"\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")

#: a comment line: "#" first, after any blanks
_COMMENT = re.compile(r"\s*#")


class _Preamble(NamedTuple):
    """The lines before the header: how many (comments and blank lines, which pandas' integer
    ``skiprows`` counts alike), and whether the last comment is the header itself."""
    lines: int
    commented_header: bool


def _preamble(path, sep: str) -> _Preamble:
    """Lines before the header that begin with ``#`` (a note on where the data came from, as
    exports and loggers write), with any blank lines among them: pandas would take the first
    comment for the header. Only leading ones: a "#" further on may be data (a label "C#").

    ``numpy.savetxt(path, a, delimiter=",", header="time,value")`` comments the header itself
    (``# time,value``): the last comment is taken for the header where it has as many fields
    as the line after it and that line holds a number (a header holds names)."""
    count, last_comment, comment, after = 0, None, "", None
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            for line in file:
                if line.strip() and not _COMMENT.match(line):
                    after = line  # the first line past the preamble
                    break
                if line.strip():
                    last_comment, comment = count, line
                count += 1
    except OSError:
        return _Preamble(0, False)
    if last_comment is None or after is None:
        # blank lines alone (pandas skips those itself), or a file of comments only
        return _Preamble(0 if last_comment is None else count, False)
    names, first = (next(csv.reader([text], delimiter=sep), [])
                    for text in (comment.strip().lstrip("#"), after))
    if len(names) >= 2 and len(names) == len(first) and any(map(_is_number, first)):
        return _Preamble(last_comment, True)
    return _Preamble(count, False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def delimiter_advice(error: OtherDelimiterError) -> str:
    """The rest of a one-line message for ``error``, after the file's name."""
    if error.expected == "\t":
        if error.delimiter == ",":
            fix = "rename it to .csv, or save it with tabs between fields"
        else:
            fix = ("save it with tabs between fields and points as decimal marks, or as a "
                   "comma-separated .csv file")
        return (f"is not tab-separated (as its .tsv name says): its fields are separated by "
                f"{error.delimiter!r} (header {error.header!r}); {fix}")
    if error.delimiter == "\t":
        fix = "rename it to .tsv where that is read, or save it with commas"
    else:
        fix = ("save it with commas between fields and points as decimal marks (pandas: "
               "frame.to_csv(path); a spreadsheet: CSV with a comma delimiter)")
    return (f"is not comma-separated: its fields are separated by {error.delimiter!r} "
            f"(header {error.header!r}); {fix}")


def read_delimited(path, *, complete_rows: bool = False, **options):
    """``pandas.read_csv(path, **options)``, with rows ending in a stray delimiter read as
    meant.

    Lines before the header that begin with ``#`` are skipped (``skiprows``; a commented
    header as ``numpy.savetxt`` writes it is read as the header, see :func:`_preamble`), as are
    spaces after a delimiter (``skipinitialspace``: an unquoted `` x`` reads as ``x``), and
    column names are stripped where they stay distinct: a header written ``sequence, label, x``
    named its columns ``" label"`` and ``" x"``, which no option or lookup by name found.

    Raises :class:`ExtraFieldsError` where, read without a row label, a row still has more
    fields than the header names, :class:`OtherDelimiterError` where the header and every
    row hold another delimiter (a semicolon file read as CSV: with decimal commas its numbers
    were silently the digits after the comma), :class:`RepeatedNameError` where the header
    names a column twice, and with ``complete_rows`` (for readers that use every column)
    :class:`ShortRowError` where a row has fewer fields than the header.
    """
    import pandas as pd

    preamble = _preamble(path, options.get("sep", ","))
    options = {"skipinitialspace": True, "skiprows": preamble.lines, **options}
    try:
        frame = pd.read_csv(path, **options)
    except pd.errors.ParserError as error:
        # a semicolon file whose first row has no decimal comma: a later row with one has
        # more fields than the first, which pandas refuses before the check below can run
        header, sep = _first_line(path), options.get("sep", ",")
        others = [] if header is None or sep in header else [
            d for d in _OTHER_DELIMITERS if d != sep and d in header]
        if others:
            raise OtherDelimiterError(others[0], header, sep) from None
        extra = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if extra is not None:  # a row with more fields than the first line (pandas' C words)
            expected, line, saw = extra.groups()
            raise ExtraFieldsError(f"line {line} has {saw} fields but the header names "
                                   f"{expected}") from None
        raise
    row_labels = not isinstance(frame.index, pd.RangeIndex)
    delimiter = _other_delimiter(frame, options.get("sep", ","), row_labels)
    if delimiter is not None:
        raise OtherDelimiterError(delimiter, str(frame.columns[0]), options.get("sep", ","))
    found = _delimiter_of_every_line(path, options.get("sep", ","))
    if found is not None:
        raise OtherDelimiterError(*found, options.get("sep", ","))
    if row_labels and len(frame.columns):
        last = frame[frame.columns[-1]]
        # all empty: rows that end in a stray delimiter; else R's layout, the row labels the
        # index
        if (last.isna() | (last.astype(str) == "")).all():
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                try:
                    frame = pd.read_csv(path, index_col=False, **options)
                except pd.errors.ParserWarning:  # a row with more fields than names remains
                    raise ExtraFieldsError("data rows have more fields than the header has "
                                           "names") from None
    if preamble.commented_header:
        frame = frame.rename(columns={frame.columns[0]: str(frame.columns[0]).lstrip("#")})
    _refuse_repeated_names(path, options)
    if complete_rows:
        _refuse_short_rows(path, options.get("sep", ","), options["skiprows"],
                           options["skipinitialspace"])
    return _stripped_names(frame)


def _refuse_short_rows(path, sep: str, skipped_lines: int, skipinitialspace: bool) -> None:
    """A ShortRowError at the first data line with fewer fields than the header: pandas fills
    the missing ones with NaN, which a reader that uses every column then reported as a
    missing value in a column the line never reached. Read as pandas read it (the lines of
    the preamble skipped, blanks after a delimiter dropped, blank lines ignored); a file the
    csv module cannot scan (a cell past its field size limit) is left to pandas."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
        rows = csv.reader(itertools.islice(file, skipped_lines, None), delimiter=sep,
                          skipinitialspace=skipinitialspace)
        try:
            header = next((row for row in rows if row), None)
            if header is None:
                return
            while header and not header[-1].strip():  # a header ending in a stray delimiter
                header.pop()
            for row in rows:
                if len(row) < len(header) and any(cell.strip() for cell in row):
                    raise ShortRowError(f"line {skipped_lines + rows.line_num} has {len(row)} "
                                        f"of the {len(header)} fields the header names; fill "
                                        f"in every field")
        except csv.Error:
            return


def _refuse_repeated_names(path, options: dict) -> None:
    """A RepeatedNameError where the header names a column twice: pandas reads the second as
    ``name.1``, so a file with two "value" columns trained on both without a word, under a
    name the file does not have. The header row is read again as data (header=None), where
    pandas leaves names as written."""
    import pandas as pd

    kept = {key: value for key, value in options.items()
            if key in ("sep", "skiprows", "skipinitialspace", "encoding")}
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, **kept)
    # as written but for blanks after a delimiter (skipinitialspace), as the frame's own
    # names: "a" and "a " stay two names (see _stripped_names)
    names = [str(name) for name in header.iloc[0]] if len(header) else []
    if names:
        names[0] = names[0].lstrip("#").lstrip()  # a commented header (see _preamble)
    seen = set()
    for name in names:
        # a number or a date is no name: a first row of those is data (no header), which
        # the readers say in their own words
        if name in seen and name and not _is_number(name) and not _DATE.match(name):
            raise RepeatedNameError(f"the header names the column {name!r} twice; give each "
                                    f"column its own name")
        seen.add(name)


def _stripped_names(frame):
    """``frame`` with blanks around its column names removed, unless that makes two alike
    (``"a"`` and ``"a "`` stay apart)."""
    stripped = [name.strip() if isinstance(name, str) else name for name in frame.columns]
    if len(set(stripped)) == len(stripped):
        frame.columns = stripped
    return frame


def numbers_from_text(column):
    """``(numbers, first_bad)`` for a column pandas read as text: float64 numbers, where a
    blank cell (spaces only) is missing, as an empty one is, and a number past int64 (40
    digits) is a number; ``first_bad`` is the position of the first cell that is no number, or
    None."""
    import numpy as np
    import pandas as pd

    text = column.astype("string").str.strip()
    numbers = pd.to_numeric(text.mask(text == ""), errors="coerce").astype(np.float64)
    bad = (numbers.isna() & text.ne("").fillna(False)).to_numpy(dtype=bool)
    return numbers, (int(np.argmax(bad)) if bad.any() else None)
