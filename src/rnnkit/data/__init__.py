"""Data: text corpora, generated tasks; time series and tokenizers as they land."""

from .synthetic import adding_problem
from .text import (
    BUILTIN_CORPORA, CharVocabulary, Corpus, CorpusError, TextSplit, load_corpus, split_text,
)

__all__ = ["adding_problem", "BUILTIN_CORPORA", "CharVocabulary", "Corpus", "CorpusError",
           "TextSplit", "load_corpus", "split_text"]
