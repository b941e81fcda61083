"""Labelled multivariate sequences of varying length, for sequence classification.

A ``SequenceSet`` holds N sequences: sequence ``i`` is a float32 array of shape (T_i, C), T_i time
steps as rows (time-major) of C channels, C the same for every sequence. ``labels`` has shape
(N,), int64 indices into ``class_names``; ``padded()`` stacks the set as (N, T_max, C), zero past
each sequence's length, with the lengths as (N,).

``load_sequences`` reads one of the UCR/UEA sets bundled inside aeon's wheel (``BUNDLED_SETS``;
nothing is ever downloaded) or one file: a sktime/aeon ``.ts`` file, a NumPy ``.npz`` (``X``, ``y``,
optional ``lengths``) or a long-format ``.csv`` (one row per time step: ``sequence``, ``label``,
optional ``time``, numeric feature columns). A file holds one split.
Every bad input raises ``SequenceDataError`` with one line that names the problem and the fix.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import source_name
from .delimited import (ExtraFieldsError, OtherDelimiterError, RepeatedNameError,
                        ShortRowError, delimiter_advice, grouped_advice, grouped_number,
                        numbers_from_text, read_delimited)

_FILE_TYPES = (".ts", ".npz", ".csv")
_AEON_HINT = 'pip install "rnnkit[classify]" (or pip install aeon)'
_CSV_LAYOUT = ("one row per time step with columns 'sequence' (id), 'label', optional 'time' and "
               "numeric feature columns")


class SequenceDataError(ValueError):
    """Sequences that cannot be used: unknown set, malformed file, bad labels or values."""


@dataclass
class SequenceSet:
    """N labelled sequences, each (T_i, C) float32; ``labels`` index into ``class_names``."""

    sequences: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    source: str  # provenance for logs and run records
    #: a CSV file's sequence ids, in the order of ``sequences`` (numeric order when every id
    #: is a number, else text order); None for other sources, which are in file order
    ids: list[str] | None = None
    #: a CSV file's feature column names, the C channels in order; None for other sources,
    #: whose channels have no names
    channel_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def channels(self) -> int:
        """C, the number of channels (columns) of every sequence."""
        return int(self.sequences[0].shape[1]) if self.sequences else 0

    @property
    def lengths(self) -> np.ndarray:
        """T_i of each sequence, shape (N,) int64."""
        return np.array([len(s) for s in self.sequences], dtype=np.int64)

    def padded(self, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(N, T_max, C) array, zero past each sequence's length, and the lengths (N,)."""
        lengths = self.lengths
        out = np.zeros((len(self), int(lengths.max(initial=0)), self.channels), dtype=dtype)
        for row, sequence in zip(out, self.sequences):
            row[:len(sequence)] = sequence
        return out, lengths


def _bundled_sets() -> tuple[str, ...]:
    """Classification sets with <name>_TRAIN.ts and <name>_TEST.ts under aeon/datasets/data.

    Found on disk without importing aeon (slow), by the rule aeon uses to skip the download;
    regression sets (no ``@classLabel true`` in the header) are left out.
    """
    root = _bundled_root()
    if root is None:
        return ()
    names = [folder.name for folder in (sorted(root.iterdir()) if root.is_dir() else [])
             if (folder / f"{folder.name}_TEST.ts").is_file()
             and _has_class_labels(folder / f"{folder.name}_TRAIN.ts")]
    return tuple(sorted(names, key=str.lower))


def _bundled_root() -> Path | None:
    """aeon's folder of bundled sets (found without importing aeon), or None without aeon."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0], "datasets", "data")


def _ts_header(path: Path) -> str:
    """A .ts file's header (before @data), lower case, runs of blanks as one space; read
    leniently (a file that is not UTF-8 is reported when its data is read)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.read(65536).lower().split("@data")[0]
    return " ".join(header.split())


def _has_class_labels(path: Path) -> bool:
    return path.is_file() and "@classlabel true" in _ts_header(path)


BUNDLED_SETS: tuple[str, ...] = _bundled_sets()


def load_sequences(data: str | os.PathLike, *, split: str = "train",
                   class_names: list[str] | None = None) -> SequenceSet:
    """Load a bundled aeon set by name (``split`` "train" or "test") or a .ts/.npz/.csv file.

    Bundled names are case-insensitive and win over same-named paths (write ``./GunPoint`` for a
    file). A file holds one split, so ``split`` is checked but otherwise ignored for files.
    Class names are the split's sorted distinct labels (numerically when all are numbers) unless
    ``class_names`` is given: pass the train set's names so a test set gets the same indices.
    """
    name = source_name(data, "the sequence data name", "a UCR/UEA set bundled with aeon (such as "
                                                  "GunPoint) or a .ts, .npz or .csv file")
    if split not in ("train", "test"):
        raise SequenceDataError(f"split must be 'train' or 'test'; got {split!r}")
    bundled = {n.lower(): n for n in BUNDLED_SETS}
    path = Path(name)
    if name.lower() in bundled:
        sequences, raw, source = _load_bundled(bundled[name.lower()], split)
        ids = channel_names = None
    elif path.is_file() and path.suffix.lower() in _FILE_TYPES:
        reader = {".ts": _read_ts, ".npz": _read_npz, ".csv": _read_csv}[path.suffix.lower()]
        sequences, raw, ids, channel_names = reader(path)
        source = f"file {path.resolve()}"
    elif path.exists():
        raise SequenceDataError(f"sequence file {name!r} is not a .ts, .npz or .csv file; "
                                f"convert it to one of those formats")
    elif not BUNDLED_SETS:
        raise SequenceDataError(f"{name!r} is not an existing file, and the bundled UCR/UEA sets "
                                f"need aeon: {_AEON_HINT}, or pass a .ts/.npz/.csv file")
    else:
        raise SequenceDataError(f"{name!r} is neither a UCR/UEA set bundled with aeon "
                                f"({', '.join(BUNDLED_SETS)}) nor an existing file; other UCR/UEA "
                                f"sets are never downloaded: download one yourself and pass its "
                                f".ts/.npz/.csv file")
    return _build(sequences, raw, class_names, source, ids, channel_names)


def _aeon_datasets():
    try:
        import aeon.datasets
    except ImportError:  # an optional dependency: say how to get it
        raise SequenceDataError(f"UCR/UEA sets and .ts files need the aeon package; install it "
                                f"with: {_AEON_HINT}") from None
    return aeon.datasets


def _load_bundled(name: str, split: str):
    if name not in BUNDLED_SETS:  # anything else makes aeon go to the network
        raise SequenceDataError(f"{name!r} is not bundled with aeon; pass a file instead")
    # read as any .ts file, so that its labels keep their case (see _labels_as_written)
    sequences, labels, _, _ = _read_ts(_bundled_root() / name / f"{name}_{split.upper()}.ts")
    archive = "UCR" if sequences and sequences[0].shape[1] == 1 else "UEA"
    return sequences, labels, f"aeon {name} ({archive}), {split} split"


def _read_ts(path: Path):
    if not _has_data_line(path):
        # aeon reads such a file as an empty set, which was reported as "holds no sequences"
        raise SequenceDataError(f".ts file {str(path)!r} has no @data line; put one on its own "
                                f"line between the header and the first sequence")
    sequences, labels, ids, names = (_read_stamped_ts if _has_time_stamps(path)
                                     else _read_plain_ts)(path)
    _check_declared_labels(path, labels)
    return sequences, labels, ids, names


def _declared_labels(path: Path) -> list[str] | None:
    """The labels a .ts file's ``@classLabel true a b ...`` line declares, as written, or None
    where it declares none."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = line.split()
            if words and words[0].lower() == "@data":
                break
            if len(words) > 2 and words[0].lower() == "@classlabel" and words[1].lower() == "true":
                return words[2:]
    return None


def _check_declared_labels(path: Path, labels: list[str | None]) -> None:
    """A label its file's @classLabel line does not declare: aeon's reader took it as one more
    class, so a typo in one line made a class of its own. Compared ignoring case, as aeon reads
    the header (files declare "a b" and label lines "B")."""
    declared = _declared_labels(path)
    if declared is None:
        return
    known = {name.casefold() for name in declared}
    spelled: dict[str, str] = {}  # the first spelling of each label, by its case-folded form
    for number, label in enumerate(labels):
        if label is None:
            continue
        if label.casefold() not in known:
            raise SequenceDataError(f".ts file {str(path)!r}: sequence {number} has the label "
                                    f"{label!r}, which its @classLabel line does not declare "
                                    f"({' '.join(declared)}); add it there or correct the label")
        first = spelled.setdefault(label.casefold(), label)
        if first != label and sum(name.casefold() == label.casefold() for name in declared) == 1:
            # rnnkit keeps labels' case: "a" and "A" would be two classes of one declared label
            raise SequenceDataError(f".ts file {str(path)!r}: sequence {number} has the label "
                                    f"{label!r} and an earlier one {first!r}, one label of its "
                                    f"@classLabel line in two spellings; write it one way")


def _read_plain_ts(path: Path):
    datasets = _aeon_datasets()  # outside the try: a missing aeon is not a malformed file
    try:
        X, y, meta = datasets.load_from_ts_file(str(path), return_meta_data=True)
    except (OSError, ValueError, IndexError, TypeError) as error:  # aeon's parse errors vary
        message = " ".join(str(error).split())  # one line
        raise SequenceDataError(f"cannot read .ts file {str(path)!r} ({message}); check it is a "
                                f"valid sktime/aeon .ts file") from None
    if not meta.get("classlabel"):
        raise SequenceDataError(f".ts file {str(path)!r} has no class labels (@classLabel false); "
                                f"pass a classification file, not a regression one")
    sequences = [np.asarray(x).T for x in X]  # (C, T_i) -> (T_i, C)
    return sequences, _labels_as_written(path, len(sequences)), None, None


def _data_lines(path: Path) -> list[str]:
    """A .ts file's data lines: those after its @data line, as aeon reads the header."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if " ".join(line.split()).lower() == "@data":
                break
        return [line for line in handle]


def _has_data_line(path: Path) -> bool:
    """Whether a .ts file has its ``@data`` line (read leniently, as :func:`_ts_header`)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return any(" ".join(line.split()).lower() == "@data" for line in handle)


def _has_time_stamps(path: Path) -> bool:
    return "@timestamps true" in _ts_header(path)


def _read_stamped_ts(path: Path):
    """A ``@timeStamps true`` .ts file, read here: aeon's reader keeps only the tokens of its
    data lines that look like ``digits.digits``, so it dropped minus signs (-1.5 read as
    1.5), integers and exponents, and took a stamp such as 0.5 for a value. Each channel is
    ``(stamp,value),(stamp,value),...``; stamps that are numbers or ISO dates must increase, as
    the values are kept in the order written (others go unchecked). ``?`` or ``NaN`` is a
    missing value."""
    shown = str(path)
    try:
        lines = _data_lines(path)
    except UnicodeDecodeError as error:
        raise SequenceDataError(f"cannot read .ts file {shown!r} (not UTF-8: {error.reason} at "
                                f"byte {error.start}); save it as UTF-8") from None
    if not _has_class_labels(path):
        raise SequenceDataError(f".ts file {shown!r} has no class labels (@classLabel false); "
                                f"pass a classification file, not a regression one")
    sequences, labels = [], []
    for number, line in enumerate(line for line in lines if line.strip()):
        # the channels are the (stamp,value) lists; the label, as in every .ts file, the text
        # after the line's last colon (a label may hold colons: "a:b" is "b", as without stamps)
        parts = _split_outside_parentheses(line.strip(), ":")
        last = max((i for i, part in enumerate(parts) if part.strip().startswith("(")),
                   default=-1)
        channels, label = parts[:last + 1], line.strip().rpartition(":")[2]
        columns = []
        for channel, text in enumerate(channels):
            pairs = [pair.rpartition(",") for pair in re.findall(r"\(([^()]*)\)", text)]
            stamps = _stamp_values([stamp for stamp, _, _ in pairs])
            where = f".ts file {shown!r}: sequence {number}, channel {channel}"
            try:
                values = [np.nan if value.strip().lower() in ("?", "nan") else float(value)
                          for _, _, value in pairs]
            except ValueError:
                raise SequenceDataError(f"{where} has a value that is no number; write each "
                                        f"step as (stamp,value)") from None
            if not pairs:
                raise SequenceDataError(f"{where} has no (stamp,value) pairs; write each step "
                                        f"as (stamp,value)")
            # stamps neither numbers nor ISO dates (2020/01/31, 01/31/2020) go unchecked
            if stamps is not None and (np.diff(stamps) <= 0).any():
                step = int(np.argmax(np.diff(stamps) <= 0)) + 1
                raise SequenceDataError(f"{where} has time stamps out of order at step {step}; "
                                        f"the values are read in the order written (the stamps "
                                        f"are not used), so sort each series by its stamps")
            columns.append(values)
        if not columns or len({len(c) for c in columns}) != 1 or (
                sequences and len(columns) != sequences[0].shape[1]):
            raise SequenceDataError(f".ts file {shown!r}: sequence {number} has channels of "
                                    f"lengths {[len(c) for c in columns]}; give every sequence "
                                    f"the same channels, each with one value per step")
        sequences.append(np.array(columns, dtype=np.float64).T)  # (C, T_i) -> (T_i, C)
        label = label.strip()
        labels.append(None if label == "?" else label)
    return sequences, labels, None, None


def _split_outside_parentheses(text: str, separator: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for at, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == separator and depth == 0:
            parts.append(text[start:at])
            start = at + 1
    return parts + [text[start:]]


def _stamp_values(texts: list[str]) -> np.ndarray | None:
    """Stamps as comparable numbers (floats, or ISO dates as nanoseconds), or None."""
    texts = [text.strip() for text in texts]
    try:
        return np.array([float(text) for text in texts])
    except ValueError:
        pass
    try:
        return np.array([np.datetime64(text.replace(" ", "T"), "ns") for text in texts],
                        dtype="datetime64[ns]").astype(np.int64)
    except ValueError:
        return None


def _labels_as_written(path: Path, count: int) -> list[str | None]:
    """The class label of each of the ``count`` data lines of a .ts file, as written.

    aeon's reader lowercases every data line and turns "nan" and "?" into "NaN", the label
    included: "A" and "a" became one class, "Finance" came back as "fiNaNce", and a missing
    label "?" as a class "NaN". The label is what follows a line's last colon; "?", the
    format's missing value, becomes None for ``_build`` to refuse.
    """
    labels = [line.strip().rpartition(":")[2].strip()
              for line in _data_lines(path)]
    if len(labels) != count:  # aeon read the lines differently: never guess a label
        raise SequenceDataError(f".ts file {str(path)!r} has {len(labels)} data lines but "
                                f"{count} sequences were read; check it is a valid .ts file")
    return [None if label == "?" else label for label in labels]


def aeon_label_form(label: str) -> str:
    """``label`` as aeon's .ts reader rewrote it (lower case, "nan" and "?" as "NaN"): the
    class names of runs trained on a .ts file or a bundled set before 2026-12-06."""
    return label.strip().lower().replace("nan", "NaN").replace("?", "NaN")


def _read_npz(path: Path):
    shown = repr(str(path))
    try:
        if not zipfile.is_zipfile(path):  # np.load would unpickle any other file
            raise ValueError("not a zip archive")
        # Object arrays (sequences of different lengths) are pickled: load only trusted files.
        with np.load(path, allow_pickle=True) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        message = " ".join(str(error).split())  # one line
        raise SequenceDataError(f"cannot read .npz file {shown} ({message}); save it with "
                                f"numpy.savez(path, X=..., y=...)") from None
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        raise SequenceDataError(f".npz file {shown} has no array {missing[0]!r} (it has "
                                f"{', '.join(sorted(arrays)) or 'none'}); save X (sequences) "
                                f"and y (labels) with numpy.savez")
    X, y, lengths = arrays["X"], arrays["y"], arrays.get("lengths")
    if y.ndim != 1:
        raise SequenceDataError(f".npz file {shown}: y must be one label per sequence, shape "
                                f"(N,); got shape {y.shape}")
    if X.dtype == object:
        if X.ndim != 1:
            raise SequenceDataError(f".npz file {shown}: an object array X must be 1-D, one "
                                    f"(T_i, C) array per sequence; got shape {X.shape}")
        sequences = [np.asarray(x) for x in X]
        for i, x in enumerate(sequences):
            if x.ndim not in (1, 2) or x.dtype.kind not in "biuf":
                raise SequenceDataError(f".npz file {shown}: sequence {i} must be a numeric "
                                        f"(T_i, C) array; got {x.dtype} of shape {x.shape}")
        sequences = [x.reshape(-1, 1) if x.ndim == 1 else x for x in sequences]
    elif X.dtype.kind in "biuf" and X.ndim in (2, 3):
        sequences = list(X.reshape(*X.shape[:2], -1) if X.ndim == 2 else X)  # (N, T) -> C=1
    else:
        raise SequenceDataError(f".npz file {shown}: X must be a numeric (N, T, C) or (N, T) "
                                f"array or an object array of (T_i, C) arrays; got {X.dtype} of "
                                f"shape {X.shape}")
    if len(y) != len(sequences):
        raise SequenceDataError(f".npz file {shown} has {len(sequences)} sequences in X but "
                                f"{len(y)} labels in y; save one label per sequence")
    if lengths is not None:
        sequences = _cut(sequences, lengths, shown)
    return sequences, list(y), None, None


def _cut(sequences: list[np.ndarray], lengths: np.ndarray, shown: str) -> list[np.ndarray]:
    """Apply an npz ``lengths`` array: the first lengths[i] rows of each padded sequence."""
    if lengths.shape != (len(sequences),) or lengths.dtype.kind not in "iuf" or \
            not np.array_equal(lengths, np.round(lengths)):
        raise SequenceDataError(f".npz file {shown}: lengths must be {len(sequences)} whole "
                                f"numbers, one per sequence; got {lengths.dtype} of shape "
                                f"{lengths.shape}")
    for i, (x, n) in enumerate(zip(sequences, lengths.astype(np.int64))):
        if not 1 <= n <= len(x):
            raise SequenceDataError(f".npz file {shown}: lengths[{i}] is {n}, outside 1..{len(x)} "
                                    f"(the steps stored for sequence {i}); fix the lengths array")
    return [x[:int(n)] for x, n in zip(sequences, lengths)]


def _read_csv(path: Path):
    shown = repr(str(path))
    try:
        import pandas as pd
    except ImportError:
        raise SequenceDataError("CSV sequence files need pandas; install it with: pip install "
                                "pandas") from None
    try:
        frame = read_delimited(path, complete_rows=True)  # every column is read
        # Ids and labels are text: "NA" (North America) or "None" is a value there, not a
        # missing one as pandas reads it by default, and "01" is not 1; only an empty cell is
        # missing. A second read of the same rows, all as written.
        names = read_delimited(path, dtype=str, keep_default_na=False, na_values=[""]) \
            if {"sequence", "label"} <= set(frame.columns) else None
    except OtherDelimiterError as error:
        raise SequenceDataError(f"CSV file {shown} {delimiter_advice(error)}") from None
    except ExtraFieldsError as error:
        raise SequenceDataError(f"CSV file {shown}: {error}; name every column in the header "
                                f"(or remove the extra fields)") from None
    except (RepeatedNameError, ShortRowError) as error:
        raise SequenceDataError(f"CSV file {shown}: {error}") from None
    except UnicodeDecodeError as error:
        raise SequenceDataError(f"CSV file {shown} is not UTF-8 text ({error.reason} at byte "
                                f"{error.start}); save it as UTF-8") from None
    except (OSError, ValueError) as error:  # pandas' ParserError and EmptyDataError included
        message = " ".join(str(error).split())
        raise SequenceDataError(f"cannot read CSV file {shown} ({message}); "
                                f"write {_CSV_LAYOUT}") from None
    missing = [c for c in ("sequence", "label") if c not in frame.columns]
    if missing:
        raise SequenceDataError(f"CSV file {shown} has no {missing[0]!r} column (columns: "
                                f"{', '.join(map(str, frame.columns))}); write {_CSV_LAYOUT}")
    if frame.empty:
        raise SequenceDataError(f"CSV file {shown} has no rows; write {_CSV_LAYOUT}")
    # R's write.csv layout made pandas read row labels into the index (see read_delimited);
    # both reads hold the same rows in the same order, so they are matched by position
    frame = frame.reset_index(drop=True)
    for column in ("sequence", "label"):
        frame[column] = names[column].to_numpy()  # an empty cell is missing (NaN) there
    # "Unnamed: 0" is the row index DataFrame.to_csv writes by default, not a measurement (and
    # in a file sorted by class it gives the label away)
    # the leading run only (to_csv twice writes two: "Unnamed: 0.1", "Unnamed: 0"); a blank
    # header further on names a column the user wrote
    index_columns = list(itertools.takewhile(
        lambda c: re.fullmatch(r"Unnamed: \d+(\.\d+)?", str(c)), frame.columns))
    features = [c for c in frame.columns
                if c not in ("sequence", "label", "time", *index_columns)]
    if not features:
        raise SequenceDataError(f"CSV file {shown} has no feature columns; write {_CSV_LAYOUT}")
    for column in features:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = _numeric_cells(frame[column], f"CSV file {shown}")
    for column in ("sequence", "label") + (("time",) if "time" in frame.columns else ()):
        blank = frame[column].isna().to_numpy()
        if blank.any():
            raise SequenceDataError(f"CSV file {shown} has no {column!r} value in data row "
                                    f"{int(np.argmax(blank)) + 1}; fill it in or drop the row")
    if "time" in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame["time"]):
            raise SequenceDataError(f"CSV file {shown}: the 'time' column must be numeric; "
                                    f"write step numbers or seconds")
        frame = frame.sort_values(["sequence", "time"], kind="stable")
        repeated = frame.duplicated(["sequence", "time"]).to_numpy()
        if repeated.any():
            row = frame.iloc[int(np.argmax(repeated))]
            raise SequenceDataError(f"CSV file {shown}: sequence {row['sequence']!r} has time "
                                    f"{row['time']} twice; give each step its own time")
    sequences, labels, ids = [], [], []
    groups = dict(list(frame.groupby("sequence", sort=False)))
    for key in _natural_order(groups):  # ids in numeric order when all are numbers
        group = groups[key]
        distinct = group["label"].unique()
        if len(distinct) > 1:
            raise SequenceDataError(f"CSV file {shown}: sequence {key!r} has labels "
                                    f"{sorted(map(str, distinct))}; give every row of a sequence "
                                    f"the same label")
        sequences.append(group[features].to_numpy(dtype=np.float64))
        labels.append(distinct[0])
        ids.append(key)
    return sequences, labels, ids, [str(c) for c in features]


def _numeric_cells(column, where: str):
    """A feature column pandas left as text, as float64 (see numbers_from_text: a blank cell
    is a missing value, which checked_values names); a cell that is no number is a one-line
    error naming it."""
    numbers, row = numbers_from_text(column)
    if row is not None and grouped_number(column.iloc[row]):
        raise SequenceDataError(f"{where}: feature "
                                f"{grouped_advice(column.name, column.iloc[row], row + 1)}")
    if row is not None:
        cell = str(column.iloc[row])
        shown = cell if len(cell) <= 40 else cell[:37] + "..."
        raise SequenceDataError(f"{where}: feature column {str(column.name)!r} has the text "
                                f"{shown!r} in data row {row + 1}; features must be numbers "
                                f"(fill or interpolate a missing value)")
    return numbers


def _natural_order(values) -> list[str]:
    """Distinct strings sorted numerically when all of them are numbers, else as text."""
    values = sorted(set(values))
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return values
    if not all(np.isfinite(numbers)):
        return values
    return [v for _, v in sorted(zip(numbers, values))]


def _finite_number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def match_by_value(labels, class_names: list[str]) -> dict[str, str]:
    """For each of ``labels`` that is not itself in ``class_names`` but is a number: the one
    class name of the same value ("1" -> "1.0", "2.50" -> "2.5").

    A label saved from floats reads "1.0" and the same label saved from integers "1"; they are
    the same class. Labels that are not numbers, and numbers that match no class or more than
    one (classes "1" and "01"), are left out, so the caller's error still names them."""
    by_value: dict[float, list[str]] = {}
    for name in class_names:
        value = _finite_number(name)
        if value is not None:
            by_value.setdefault(value, []).append(name)
    known = set(class_names)
    matched = {}
    for label in set(labels) - known:
        candidates = by_value.get(_finite_number(label), [])
        if len(candidates) == 1:
            matched[label] = candidates[0]
    return matched


def checked_values(x: np.ndarray, where: str) -> np.ndarray:
    """A (T, C) sequence as contiguous float32, or a one-line SequenceDataError naming
    ``where`` and the step and channel of a NaN, an infinity or a value beyond float32, or
    the dtype of values that are not real numbers."""
    if x.dtype.kind not in "biuf":
        # the float32 cast would drop an imaginary part with only NumPy's ComplexWarning, and
        # read the strings "1" and "2" (also in an object array) as numbers where the loaders
        # refuse text
        raise SequenceDataError(f"{where} has dtype {x.dtype}, not real numbers; convert it to "
                                f"float (complex data: its real and imaginary parts as two "
                                f"channels)")
    if np.issubdtype(x.dtype, np.number):
        # finite, but inf once cast (an inf already there gets the NaN-or-infinite error below)
        huge = np.isfinite(x) & (np.abs(x) > np.finfo(np.float32).max)
        if huge.any():
            step, channel = np.argwhere(huge)[0]
            raise SequenceDataError(f"{where} has the value {x[step, channel]:g} (step {step}, "
                                    f"channel {channel}), beyond float32's range; rescale "
                                    f"the data (for example to other units)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        step, channel = np.argwhere(bad)[0]
        raise SequenceDataError(f"{where} has a NaN or infinite value (step {step}, channel "
                                f"{channel}); fill or interpolate missing values first, or "
                                f"drop the sequence")
    return x


def _build(sequences, raw_labels, class_names, source, ids=None,
           channel_names=None) -> SequenceSet:
    """Check shapes and values, encode labels, and return the set; ``ids`` name CSV sequences
    and ``channel_names`` their columns."""
    if not sequences:
        raise SequenceDataError(f"{source} holds no sequences; pass a set with at least one")
    arrays = []
    for i, x in enumerate(sequences):
        where = f"sequence {i}" + (f" (id {ids[i]!r})" if ids else "") + f" of {source}"
        x = np.asarray(x)
        if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
            raise SequenceDataError(f"{where} has shape {x.shape}; each sequence needs at least "
                                    f"one step and one channel, shape (T_i, C)")
        if arrays and x.shape[1] != arrays[0].shape[1]:
            raise SequenceDataError(f"{where} has {x.shape[1]} channels but sequence 0 has "
                                    f"{arrays[0].shape[1]}; give every sequence the same channels")
        arrays.append(checked_values(x, where))
    for i, value in enumerate(raw_labels):
        if (value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))
                or (isinstance(value, (str, bytes)) and not value.strip())):  # an empty label
            where = f"sequence {i}" + (f" (id {ids[i]!r})" if ids else "")
            shown = "empty" if isinstance(value, (str, bytes)) else value
            raise SequenceDataError(f"the label of {where} of {source} is missing ({shown}); "
                                    f"give every sequence a label or drop it")
    labels = [v.decode() if isinstance(v, bytes) else str(v) for v in raw_labels]
    if class_names is None:
        names = _natural_order(labels)
    else:
        names = [str(c) for c in class_names]
        if len(set(names)) != len(names):
            raise SequenceDataError(f"class_names has duplicates ({names}); list each class once")
    index = {n: i for i, n in enumerate(names)}
    same_value = match_by_value(labels, names)
    labels = [same_value.get(v, v) for v in labels]
    unknown = _natural_order(set(labels) - index.keys())
    if unknown:
        raise SequenceDataError(f"label {unknown[0]!r} of {source} is not in class_names "
                                f"({', '.join(names)}); pass the class names of the training "
                                f"set, including every class")
    return SequenceSet(sequences=arrays, labels=np.array([index[v] for v in labels], np.int64),
                       class_names=names, source=source,
                       ids=None if ids is None else [str(i) for i in ids],
                       channel_names=channel_names)
