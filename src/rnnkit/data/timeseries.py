"""Time series for forecasting: load a built-in series or a CSV/TSV/Parquet file as arrays.

A ``TimeSeries`` holds N rows, oldest first: ``values`` (N, C) float64 with the C >= 1 target
columns to forecast, ``time`` (N,) with the time stamps (int or float years, datetime64, or
``np.arange(N)`` when there are none) and optionally ``covariates`` (N, K) float64 with K known
inputs that are not forecast. ``load_series`` reads one of ``BUILTIN_SERIES`` (from the optional
statsmodels and aeon packages; nothing is ever downloaded) or a file, and ``tail_split`` holds
out the last rows for testing. Missing, infinite or non-numeric cells are reported, never filled.
Every bad input raises ``SeriesError`` with one line that names the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import source_name
from .delimited import (ExtraFieldsError, OtherDelimiterError, RepeatedNameError,
                        delimiter_advice, grouped_advice, grouped_number, numbers_from_text,
                        read_delimited)

_TIME_NAMES = ("time", "date", "datetime", "timestamp", "year", "ds", "period")
_SUFFIXES = (".csv", ".tsv", ".parquet")
_TIMESERIES_EXTRA = 'pip install "rnnkit[timeseries]"'


class SeriesError(ValueError):
    """Bad time-series input; the message names the problem and the fix."""


@dataclass(eq=False)  # numpy fields: compare the arrays themselves, not the objects
class TimeSeries:
    """N rows, oldest first: C target columns, optional K covariates and their time stamps."""

    values: np.ndarray  # (N, C) float64 targets
    time: np.ndarray  # (N,) int/float years, datetime64, or np.arange(N)
    columns: list[str]  # the C target names
    covariates: np.ndarray | None  # (N, K) float64 known inputs, or None
    covariate_columns: list[str]  # the K covariate names ([] without covariates)
    source: str  # provenance for logs and run records
    season: int | None  # natural seasonal period in rows, if known

    def __post_init__(self):
        n, k = len(self.values), len(self.covariate_columns)
        shapes = (self.values.shape, self.time.shape,
                  None if self.covariates is None else self.covariates.shape)
        if shapes != ((n, len(self.columns)), (n,), None if self.covariates is None and not k
                      else (n, k)):
            raise SeriesError(f"inconsistent TimeSeries: shapes (values, time, covariates) "
                              f"{shapes} for {len(self.columns)} columns and {k} covariate "
                              f"names; pass (N, C), (N,) and (N, K) or None")

    def __len__(self) -> int:
        return len(self.values)

    def tail_split(self, horizon: int) -> tuple[TimeSeries, TimeSeries]:
        """(everything but the last ``horizon`` rows, the last ``horizon`` rows), as copies."""
        n = len(self)
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) \
                or not 1 <= horizon < n:
            raise SeriesError(f"horizon must be an integer from 1 to {n - 1} for a series of {n} "
                              f"rows; got {horizon!r} (both parts need at least one row)")
        cut = n - int(horizon)
        return self._rows(slice(None, cut)), self._rows(slice(cut, None))

    def _rows(self, rows: slice) -> TimeSeries:
        covariates = None if self.covariates is None else self.covariates[rows].copy()
        return dataclasses.replace(self, values=self.values[rows].copy(),
                                   time=self.time[rows].copy(), covariates=covariates,
                                   columns=list(self.columns),
                                   covariate_columns=list(self.covariate_columns))


# name -> (description, package, season); _builtin loads them
_BUILTINS = {
    "sunspots": ("yearly sunspot activity 1700-2008, 309 rows", "statsmodels", 11),
    "co2": ("monthly means of the weekly Mauna Loa CO2 record, gaps interpolated, "
            "1958-03..2001-12, 526 rows", "statsmodels", 12),
    "nile": ("yearly Nile flow volume at Aswan 1871-1970, 100 rows", "statsmodels", None),
    "elnino": ("monthly El Nino sea surface temperature 1950-2010, 732 rows", "statsmodels", 12),
    "macrodata": ("quarterly US macro data 1959Q1-2009Q3, target realgdp, 12 other numeric "
                  "columns, 203 rows", "statsmodels", 4),
    "lynx": ("yearly Canadian lynx trappings 1821-1934, 114 rows", "aeon", 10),
    "shampoo": ("monthly shampoo sales over 3 years, 36 rows", "aeon", 12),
    "airline": ("monthly airline passengers 1949-1960, 144 rows", "aeon", 12),
    "solar": ("half-hourly GB solar generation estimates 2021-05-01..07, 289 rows", "aeon", 48),
}
BUILTIN_SERIES: dict[str, str] = {name: spec[0] for name, spec in _BUILTINS.items()}


def load_series(data: str, *, time_col: str | None = None,
                value_cols: str | list[str] | None = None,
                covariate_cols: str | list[str] | None = None) -> TimeSeries:
    """Load a built-in series by name, or a .csv/.tsv/.parquet file, as a ``TimeSeries``.

    Built-in names win over same-named paths; write ``./nile`` to read a file called ``nile``.
    ``time_col`` defaults to the one column named time/date/datetime/timestamp/year/ds/period
    (any case), or holding a Parquet file's time index, that is not chosen as a value or
    covariate, else none (with several such columns, an error: nothing says which is the
    time); ``"rows"`` (:data:`ROW_NUMBERS`, unless a column has that name) takes row numbers
    as the time and leaves time-named columns out; text time stamps are parsed as dates, day
    first where only that reads every one (time zones -> naive UTC). ``value_cols`` defaults to the built-in's target, or for files
    every numeric column that is not time-named or a covariate (also text columns that are
    mostly numbers, so that a stray bad cell is reported; ``Unnamed: ...`` columns and a
    Parquet file's unnamed integer index are skipped). Names match exactly, or ignoring case
    and surrounding spaces when that is unambiguous; a CSV header's names lose the spaces
    around them.
    """
    try:
        import pandas as pd
    except ImportError:
        raise SeriesError(f"time series need pandas; install it with: {_TIMESERIES_EXTRA}") \
            from None
    name = source_name(data, "the series name", "a built-in series name (such as sunspots) or a "
                                           ".csv, .tsv or .parquet file")
    if name.lower() in _BUILTINS:
        key = name.lower()
        description, package, season = _BUILTINS[key]
        frame, default_time, default_values = _builtin(pd, key)
        time_like = []
        label = f"built-in series {key!r}"
        source = f"{package} {key} ({description})"
    else:
        frame = _read_file(pd, name)
        label, source, season = name, os.path.abspath(name), None
        # unmangled: pandas names a repeated cell "x.1"; read_delimited refuses a repeated
        # name and lets through only repeated numbers and dates (a headerless first row)
        time_like = [c for c in frame.columns
                     if _unmangled(c, frame.columns).strip().lower() in _TIME_NAMES
                     or c in frame.attrs.get("time_index", ())]
        default_time, default_values = None, None
    covs = [_column(frame, c, label, "--covariate-col")
            for c in _names(covariate_cols, "covariate_cols")]
    chosen_values = None if value_cols is None else [
        _column(frame, c, label, "--value-col") for c in _names(value_cols, "value_cols")]
    if time_col is None and time_like:
        # a time-named column chosen as a value or covariate (a "year" to forecast) is not
        # the time; of the others there must be one, else nothing says which is the time
        candidates = [c for c in time_like if c not in (chosen_values or []) and c not in covs]
        if len(candidates) > 1:
            raise SeriesError(f"{label} has several time columns "
                              f"({', '.join(str(c) for c in candidates)}); choose one with "
                              f"--time-col")
        default_time = candidates[0] if candidates else None
    if _means_row_numbers(frame, time_col):
        time_name = None  # time-named columns stay out of the targets below all the same
    else:
        time_name = default_time if time_col is None else _column(frame, time_col, label,
                                                                    "--time-col")
    if chosen_values is not None:
        targets = chosen_values
    else:
        candidates = [
            c for c in frame.columns if c != time_name and c not in covs and
            c not in time_like and not str(c).startswith("Unnamed: ") and
            c not in frame.attrs.get("unnamed_index", ())]
        targets = default_values or [c for c in candidates if _looks_numeric(pd, frame[c])]
        # a column of "1,000"s is numbers to its writer: leaving it out would forecast the
        # other columns without a word about the one meant
        for c in [] if default_values else [c for c in candidates if c not in targets]:
            grouped = frame[c].map(grouped_number).to_numpy(dtype=bool)
            numeric = pd.to_numeric(frame[c], errors="coerce").notna().to_numpy() | grouped
            present = frame[c].notna().to_numpy()
            if grouped.any() and numeric[present].mean() > 0.5:  # as _looks_numeric counts
                row = int(np.argmax(grouped))
                raise SeriesError(f"{label} {grouped_advice(c, frame[c].iloc[row], row + 1)}"
                                  f", or pick the value columns with --value-col")
    if not targets:
        raise SeriesError(f"{label} has no numeric value columns besides the time and covariate "
                          f"columns; its columns are: {_listing(frame)} (choose with --value-col)")
    chosen = ([time_name] if time_name is not None else []) + targets + covs
    twice = sorted({str(c) for c in chosen if chosen.count(c) > 1})
    if twice:
        raise SeriesError(f"{label}: column(s) {', '.join(twice)} chosen more than once (as time, "
                          f"value or covariate); give each column one role")
    time = np.arange(len(frame)) if time_name is None else _time(pd, frame, time_name, label)
    values = np.column_stack([_numbers(pd, frame, c, label) for c in targets])
    covariates = np.column_stack([_numbers(pd, frame, c, label) for c in covs]) if covs else None
    return TimeSeries(values=values, time=time, columns=[str(c) for c in targets],
                      covariates=covariates, covariate_columns=[str(c) for c in covs],
                      source=source, season=season)


#: ``time_col`` that asks for row numbers as the time (a file's time-named columns ignored)
ROW_NUMBERS = "rows"


def _means_row_numbers(frame, time_col) -> bool:
    """``time_col`` is :data:`ROW_NUMBERS` and names no column (a column called "rows" wins)."""
    return (isinstance(time_col, str) and column_key(time_col) == ROW_NUMBERS
            and not any(column_key(c) == ROW_NUMBERS for c in frame.columns))


def _names(cols, what: str) -> list:
    """Column names given as one name, a list of them, or None (none)."""
    if cols is None:
        return []
    if isinstance(cols, str):
        return [cols]
    if not hasattr(cols, "__iter__"):  # 3 failed with "'int' object is not iterable"; a
        # pandas Index or NumPy array of names is a list of them
        raise TypeError(f"{what} must be a column name or a list of them; got "
                        f"{type(cols).__name__} {cols!r}")
    return list(cols)


def _listing(frame, limit: int = 30) -> str:
    names = [str(c) for c in frame.columns]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def column_key(name) -> str:
    """How a column name given by the user (or saved by a run) is matched when it is not
    exact: ignoring case and surrounding spaces (a run trained before headers lost the space
    after their commas saved " value" for the column now read as "value")."""
    return str(name).strip().lower()


def _column(frame, name, label: str, flag: str):
    if name in frame.columns:
        return name
    folded = [c for c in frame.columns if column_key(c) == column_key(name)]
    if len(folded) == 1:
        return folded[0]
    raise SeriesError(f"{label} has no column {name!r}; its columns are: {_listing(frame)} "
                      f"(choose with {flag})")


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    rows = (np.flatnonzero(mask) + 1).tolist()  # 1-based data rows, header not counted
    return ", ".join(map(str, rows[:limit])) + (", ..." if len(rows) > limit else "")


def _read_file(pd, name: str):
    path = Path(name)
    if not path.exists():
        if path.suffix.lower() in _SUFFIXES or os.sep in name or "/" in name:
            raise SeriesError(f"no such file {name!r}; check the path")
        raise SeriesError(f"{name!r} is neither a built-in series ({', '.join(_BUILTINS)}) nor an "
                          f"existing file; pass one of those names or a .csv/.tsv/.parquet path")
    if not path.is_file() or path.suffix.lower() not in _SUFFIXES:
        what = f"extension {path.suffix!r}" if path.is_file() else "a folder or special file"
        raise SeriesError(f"{name!r} is not a supported file ({what}); pass a .csv, .tsv or "
                          f".parquet file")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            # round trip: a float reads back as itself
            # (column names stripped: "date, value" named a column " value", which --value-col
            # value did not find and the forecast CSV wrote as " value_forecast")
            frame = read_delimited(path, sep=sep, float_precision="round_trip")
    except OtherDelimiterError as error:
        raise SeriesError(f"{name} {delimiter_advice(error)}") from None
    except ExtraFieldsError as error:
        raise SeriesError(f"{name}: {error}; name every column in the header (or remove "
                          f"the extra fields)") from None
    except RepeatedNameError as error:
        raise SeriesError(f"{name}: {error}") from None
    except pd.errors.EmptyDataError:
        raise SeriesError(f"{name} is empty; pass a file with a header and data rows") from None
    except ImportError:
        raise SeriesError(f"reading Parquet needs pyarrow; install it with: {_TIMESERIES_EXTRA}") \
            from None
    except Exception as error:  # parser, decoding and Arrow errors alike
        reason = " ".join(str(error).split()) or type(error).__name__
        raise SeriesError(f"cannot read {name} ({reason}); check that it is a valid "
                          f"{path.suffix.lower()[1:].upper()} file") from None
    if not isinstance(frame.index, pd.RangeIndex):
        # A saved index (a Parquet file's time) becomes a column. An unnamed integer one is
        # often row numbers left by filtering, so it is not a default value column, but it
        # stays selectable (--time-col index): it may also be years.
        unnamed_integers = (frame.index.nlevels == 1 and frame.index.name is None
                            and pd.api.types.is_integer_dtype(frame.index))
        # A time index (df.to_parquet() of a time-indexed frame) is a time column whatever
        # its name: unnamed, reset_index calls it "index", which no time name matches.
        time_index = frame.index.nlevels == 1 and (
            pd.api.types.is_datetime64_any_dtype(frame.index)
            or isinstance(frame.index, pd.PeriodIndex))
        before = set(frame.columns)
        frame = frame.reset_index()
        added = [c for c in frame.columns if c not in before]
        if unnamed_integers:
            frame.attrs["unnamed_index"] = added
        if time_index:
            frame.attrs["time_index"] = added
    if path.suffix.lower() != ".parquet" and all(_is_data_cell(_unmangled(c, frame.columns))
                                                  for c in frame.columns):
        # No header row: pandas took the first data row for one, and its numbers (and dates)
        # for column names, so that row was lost and the time column read as a target.
        first_row = ", ".join(map(str, frame.columns))
        raise SeriesError(f"{name} has no header row: its first row ({first_row}) is all "
                          f"numbers and dates; add a first line naming the columns (e.g. "
                          f"time,value), or, if these are the names, start them with a letter "
                          f"(s101)")
    if len(frame) == 0:
        raise SeriesError(f"{name} has no data rows; pass a file with at least one row")
    return frame


# A decimal number as a data row writes one: no underscores, nan or inf, which float() takes.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# A date as a time column writes one: ISO (2024-01-31, with a time of day and zone or not), or
# with slashes (1/31/2024, 2024/01/31).
_DATE = re.compile(r"\d{4}-\d\d(-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?)?"
                   r"|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}/\d{1,2}/\d{1,2}")


def _is_number(text) -> bool:
    return isinstance(text, str) and _NUMBER.fullmatch(text.strip()) is not None


def _is_data_cell(text) -> bool:
    """Whether a column name reads as a data row's number or date rather than a name."""
    return _is_number(text) or (isinstance(text, str) and
                                _DATE.fullmatch(text.strip()) is not None)


def _unmangled(column, columns) -> str:
    """A column name as it was in the file: pandas renames a repeated one ``x`` to ``x.1``
    (a first row ``1.5,1.5`` gives columns 1.5 and 1.5.1)."""
    base, dot, number = str(column).rpartition(".")
    return base if dot and number.isdigit() and base in columns else str(column)


def _looks_numeric(pd, column) -> bool:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return False
    present = column.dropna()
    if pd.api.types.is_numeric_dtype(column):
        return len(present) > 0  # an empty column (notes never written) is no value column
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() > 0.5


#: Largest magnitude a value or covariate may have: its square, summed over the rows, must stay
#: finite in float64 (about 1.8e308).
_LARGEST_VALUE = 1e150


def _numbers(pd, frame, col, label: str) -> np.ndarray:
    """One value or covariate column as float64; bad, missing or infinite cells are errors."""
    raw = frame[col]
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_timedelta64_dtype(raw):
        raise SeriesError(f"{label} column {str(col)!r} holds dates, not numbers; pick numeric "
                          f"columns with --value-col / --covariate-col")
    coerced, first = (raw, None) if pd.api.types.is_numeric_dtype(raw) else \
        numbers_from_text(raw)
    if first is not None and grouped_number(raw.iloc[first]):
        raise SeriesError(f"{label} {grouped_advice(col, raw.iloc[first], first + 1)}")
    if first is not None:
        raise SeriesError(f"{label} column {str(col)!r} has non-numeric text "
                          f"{str(raw.iloc[first])!r} in row {first + 1}; fix or remove that "
                          f"cell (numbers only)")
    array = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    for mask, what, fix in ((np.isnan(array), "missing", "fill or drop them first, e.g. with "
                             "pandas interpolate()"),
                            (np.isinf(array), "infinite", "replace or drop them first")):
        if mask.any():
            raise SeriesError(f"{label} column {str(col)!r} has {int(mask.sum())} {what} "
                              f"value(s) (row {_rows(mask)}); {fix}")
    huge = np.abs(array) > _LARGEST_VALUE
    if huge.any():
        # squares of such values (the scaler's variance, RMSE) overflow float64 to inf
        raise SeriesError(f"{label} column {str(col)!r} has values too large to compute with "
                          f"({array[huge][0]:.3g}; rows {_rows(huge)}; the limit is "
                          f"{_LARGEST_VALUE:.0e}); divide the column by a power of ten first")
    return array


def _time(pd, frame, col, label: str) -> np.ndarray:
    """The time column as numbers or naive-UTC datetime64, checked to be strictly increasing."""
    raw = frame[col]
    shown = f"{label} time column {str(col)!r}"
    mask = raw.isna().to_numpy()
    if mask.any():
        raise SeriesError(f"{shown} has {int(mask.sum())} missing time stamp(s) (row "
                          f"{_rows(mask)}); fill or drop those rows")
    if isinstance(raw.dtype, pd.PeriodDtype):  # a Parquet file's PeriodIndex: its starts
        raw = raw.dt.to_timestamp()
    numeric = None
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numeric = raw
    elif not pd.api.types.is_datetime64_any_dtype(raw):
        coerced = pd.to_numeric(raw, errors="coerce")
        if coerced.notna().all():
            numeric = coerced
        elif coerced.notna().mean() > 0.5:
            # mostly numbers: a bad cell among them, not dates (which would name the first row)
            first = int(np.argmax(coerced.isna().to_numpy()))
            raise SeriesError(f"{shown} has {str(raw.iloc[first])!r} in row {first + 1} among "
                              f"numbers; fix or remove that row (numbers only)")
    if numeric is not None:
        time = numeric.to_numpy()
        if time.dtype.kind == "f" and not np.isfinite(time).all():
            raise SeriesError(f"{shown} has infinite values (row {_rows(~np.isfinite(time))}); "
                              f"use finite numbers or dates")
    else:
        stamps = raw.str.strip() if pd.api.types.is_string_dtype(raw) else raw
        with warnings.catch_warnings():  # "could not infer format": unparsed cells are NaT
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(stamps, errors="coerce", utc=True)
            if parsed.isna().any():  # the format guessed from the first cell may not fit all
                # ISO dates with and without a time of day ("2020-01-01", "2020-01-01 12:00");
                # kept only if it reads more cells, so an error names the first truly bad one
                iso = pd.to_datetime(stamps, errors="coerce", utc=True, format="ISO8601")
                if iso.isna().sum() < parsed.isna().sum():
                    parsed = iso
            if parsed.isna().any():
                # day first (31/01/2020): pandas reads month first, so a column of such
                # dates fails at its first day past 12; read day first if that reads all
                day_first = pd.to_datetime(stamps, errors="coerce", utc=True, dayfirst=True)
                if not day_first.isna().any():
                    parsed = day_first
        if parsed.isna().any():
            first = int(np.argmax(parsed.isna().to_numpy()))
            raise SeriesError(f"{shown} has {str(raw.iloc[first])!r} in row {first + 1}, which is "
                              f"neither a number nor a date; use numbers or ISO dates "
                              f"(2024-01-31)")
        time = parsed.dt.tz_localize(None).to_numpy()
    later = time[1:] > time[:-1]
    if not later.all():
        row = int(np.argmin(later)) + 2  # 1-based row of the first stamp not after its previous
        raise SeriesError(f"{shown} is not strictly increasing: row {row} "
                          f"({raw.iloc[row - 1]}) is not after row {row - 1} "
                          f"({raw.iloc[row - 2]}); sort the file by time and drop duplicates")
    return time


# --- built-ins -----------------------------------------------------------------------------------

_AEON = {"lynx": ("load_lynx", "trappings"), "shampoo": ("load_shampoo_sales", "sales"),
         "airline": ("load_airline", "passengers"), "solar": ("load_solar", "generation")}


def _builtin(pd, key: str):
    """(frame, time column, default value columns) of one built-in series."""
    if key in _AEON:
        loader, column = _AEON[key]
        return _aeon(pd, key, loader, column), "time", [column]
    frame = _statsmodels(key)
    if key in ("sunspots", "nile"):  # yearly: int years
        year, value = frame.columns
        return frame.astype({year: np.int64}), year, [value]
    if key == "co2":  # weekly with gaps -> monthly means, remaining gaps interpolated
        monthly = frame.resample("MS").mean().interpolate()
        return pd.DataFrame({"date": monthly.index, "co2": monthly["co2"].to_numpy()}), "date", \
            ["co2"]
    if key == "elnino":  # wide (YEAR, JAN..DEC) -> one monthly column
        months = [c for c in frame.columns if c != "YEAR"]
        date = pd.date_range(f"{int(frame['YEAR'].iloc[0])}-01-01",
                             periods=len(frame) * len(months), freq="MS")
        return pd.DataFrame({"date": date, "sst": frame[months].to_numpy().ravel()}), "date", \
            ["sst"]
    frame.insert(0, "time", frame["year"] + (frame["quarter"] - 1) / 4)  # macrodata
    return frame, "time", ["realgdp"]


def _statsmodels(name: str):
    try:
        return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data
    except ImportError:
        raise SeriesError(f"the built-in series {name!r} needs statsmodels; install it with: "
                          f"{_TIMESERIES_EXTRA}") from None


def _aeon(pd, key: str, loader: str, column: str):
    try:
        datasets = importlib.import_module("aeon.datasets")
    except ImportError:
        raise SeriesError(f"the built-in series {key!r} needs aeon; install it with: pip install "
                          f"aeon (or pip install \"rnnkit[classify]\")") from None
    if not hasattr(datasets, loader):
        raise SeriesError(f"aeon {importlib.metadata.version('aeon')} has no {loader}(); install "
                          f"an aeon that has it, e.g. pip install \"aeon>=1.0,<1.7\"")
    with warnings.catch_warnings():  # load_lynx is deprecated in aeon 1.6
        warnings.simplefilter("ignore", FutureWarning)
        series = getattr(datasets, loader)(return_array=False)
    index = series.index
    if isinstance(index, pd.PeriodIndex):
        time = index.year if index.freqstr[0] in "YA" else index.to_timestamp()  # yearly: ints
    else:
        time = index.tz_convert(None) if index.tz is not None else index
    return pd.DataFrame({"time": np.asarray(time), column: series.to_numpy(np.float64)})
