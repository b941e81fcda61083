"""Reading CSV/TSV files with pandas where rows end in a stray delimiter.

Data rows one field longer than the header make pandas take each row's first field for a row
label. That is right for R's ``write.csv`` (whose header leaves out the label column, so the
names line up with the fields after it), but rows that merely end in a delimiter
(``2020-01-01,1,10,``) leave the last column empty on every row and put every name one column
off. Those files are read again as they are meant, without a row label.
"""

from __future__ import annotations

import warnings


class ExtraFieldsError(ValueError):
    """Data rows have more fields than the header has names (and do not end in a delimiter)."""


def read_delimited(path, **options):
    """``(frame, layout)``: ``pandas.read_csv(path, **options)``, rows ending in a stray
    delimiter read as meant, and the options (``{}`` or ``{"index_col": False}``) that read
    this file's layout, for a second read of other columns to line up with the first.

    Raises :class:`ExtraFieldsError` where, read without a row label, a row still has more
    fields than the header names.
    """
    import pandas as pd

    frame = pd.read_csv(path, **options)
    if isinstance(frame.index, pd.RangeIndex) or not len(frame.columns):
        return frame, {}
    last = frame[frame.columns[-1]]
    if not (last.isna() | (last.astype(str) == "")).all():
        return frame, {}  # R's layout: the row labels are the index
    layout = {"index_col": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(path, **layout, **options), layout
        except pd.errors.ParserWarning:  # index_col=False met a row with more fields than names
            raise ExtraFieldsError("data rows have more fields than the header has names") \
                from None
