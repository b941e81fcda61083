"""Character language modelling: train, evaluate, and load a model back from its checkpoint.

Quality is measured in bits per character on held-out text, ``bpc = mean(-log2 p(x_t | x_<t))``,
the number a compressor would need per character with the model as its probability model;
perplexity is ``2 ** bpc``. The text is split contiguously 90/5/5 (train/validation/test) so
the test text is unseen, and the split is recorded with every result.
"""

from __future__ import annotations

import bz2
import logging
import lzma
import math
import numbers
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from rnnkit.data.text import (BUILTIN_CORPORA, CharVocabulary, CorpusError, TextSplit,
                              load_corpus, split_text)
from rnnkit.training import (
    ContiguousBatches, StepOutput, TrainConfig, Trainer, config_from_dict, evaluating,
    hold_run_folder, load_checkpoint,
)
from rnnkit.training.checkpoint import (
    check_resumed_settings, model_shape_keys, reading_record, require_task, saved_checkpoint,
)
from rnnkit.training.config import check_config_types, make_paths_absolute
from rnnkit.training.metrics import perplexity_of_bits

from .model import CharLanguageModel, ModelConfig

TASK = "lm"
log = logging.getLogger("rnnkit.tasks")


@dataclass
class DataConfig:
    corpus: str = "kjv"  #: "kjv" (built in) or a UTF-8 file or folder
    batch_size: int = 32  #: parallel rows of the text (B)
    window: int = 64  #: truncated-BPTT length (T)
    random_length: bool = False  #: jitter the window length per batch (Merity et al. 2017)
    eval_rows: int = 32  #: rows the validation/test text is read in, side by side
    eval_window: int = 256

    def check(self) -> None:
        """Raise a one-line ValueError for a bad setting, before any training."""
        for name in ("batch_size", "window", "eval_rows", "eval_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{name} must be a positive int; got {value!r}")


@dataclass
class DynamicConfig:
    """Dynamic evaluation (:mod:`rnnkit.tasks.lm.dynamic`), reported beside the static score.

    The defaults were chosen on the validation split (``docs/decisions/lm-defaults.md``).
    """

    enabled: bool = True  #: score the test text with it at the end of ``train lm``
    rule: str = "rms"  #: "rms" (steps scaled by each weight's gradient size) or "sgd"
    lr: float = 6e-4
    decay: float = 0.0  #: pull back towards the trained weights per update
    rows: int = 1  #: side-by-side rows (1 adapts most; more rows are faster)
    window: int = 64  #: characters scored between updates

    def check(self) -> None:
        """Raise a one-line ValueError for a bad setting (checked before training starts, so a
        typo does not surface only after the time budget)."""
        from .dynamic import RULES

        if self.rule not in RULES:
            raise ValueError(f"dynamic.rule must be one of {RULES}; got {self.rule!r}")
        for name in ("lr", "decay"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not (math.isfinite(value) and value >= 0)):  # NaN fails comparisons
                raise ValueError(f"dynamic.{name} must be a finite number >= 0; got {value}")
        for name in ("rows", "window"):
            value = getattr(self, name)
            # a float slipped past here once and failed only after the whole run had trained
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"dynamic.{name} must be a positive int; got {value!r}")


def _default_train() -> TrainConfig:
    # Measured on the 2-core machine (docs/decisions/lm-defaults.md): many small updates
    # (32 x 64 characters) learn far faster per second than fewer large ones, and 3e-3 beat
    # 6e-3 and 1e-2 early in training.
    # precision "auto": bfloat16 on a CPU with AMX-BF16 or AVX512-BF16, where a step ran 1.9x
    # (AMX) and 1.8x (AVX512-BF16) faster at the same loss per step; float32 elsewhere.
    return TrainConfig(learning_rate=3e-3, warmup_steps=200, eval_every=1000, minutes=10.0,
                       precision="auto")


@dataclass
class LMConfig:
    """Everything a language-model run needs; saved resolved beside every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=_default_train)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)


@dataclass
class PreparedData:
    split: TextSplit
    vocabulary: CharVocabulary
    source: str


def prepare_data(config: DataConfig, vocabulary: CharVocabulary | None = None, *,
                 for_training: bool = False) -> PreparedData:
    """Load the corpus, split it 90/5/5, and build (or reuse) the character vocabulary; with
    ``for_training``, refuse a corpus whose training part holds less than one batch."""
    corpus = load_corpus(config.corpus)
    if for_training:
        _check_one_batch(len(corpus.text), config)
    split = split_text(corpus.text)
    # The vocabulary comes from the training text only; a character that first appears in the
    # validation or test text would be unknown to the model (reported by encode).
    vocabulary = vocabulary or CharVocabulary.from_text(split.train)
    return PreparedData(split, vocabulary, corpus.source)


def _check_trained_corpus_exists(corpus: str, run: str | Path, fix: str) -> None:
    """A one-line CorpusError when ``corpus``, the text the run in ``run`` was trained on, is
    no built-in name and no longer exists (load_corpus would only say that no such corpus
    exists, not that it is the run's own)."""
    if corpus.lower() in BUILTIN_CORPORA or Path(corpus).exists():
        return
    raise CorpusError(f"the run in {run} was trained on {corpus!r}, which no longer exists; "
                      f"{fix}")


def _check_one_batch(characters: int, config: DataConfig) -> None:
    """A CorpusError unless the training part of a corpus of ``characters`` characters holds
    one batch, B rows x (L + 1) characters. Checked before the split, whose own minimum (a few
    dozen characters, so that each part is scored at all) would name a size still too small
    to train on; the training part is the first floor(n 9/10) characters (split_text)."""
    needed = config.batch_size * (config.window + 1)
    training_part = characters * 9 // 10
    if training_part >= needed:
        return
    smallest = -(-needed * 10 // 9)  # the least n with floor(9 n / 10) >= needed
    raise CorpusError(f"the corpus has {characters:,} characters, {training_part:,} of them for "
                      f"training (90%), less than one batch of --batch-size "
                      f"{config.batch_size} x (--window {config.window} + 1) = {needed:,}; use "
                      f"a corpus of at least {smallest:,} characters, or lower --batch-size or "
                      f"--window")


def _encode_heldout(vocabulary: CharVocabulary, text: str, what: str) -> tuple[torch.Tensor, int]:
    """(token ids of the characters the model knows, how many characters were skipped)."""
    tokens = vocabulary.encode(text, unknown="skip")
    if tokens.numel() < 2:
        # One character has nothing before it to be predicted from; a score over none would
        # read as a perfect 0 bits per character.
        raise ValueError(f"the {what} text has {tokens.numel()} character(s) the model knows, "
                         f"too few to score; use a corpus written in the training text's "
                         f"characters")
    skipped = len(text) - tokens.numel()
    if 2 * skipped > len(text):
        # The score of the few known characters, read without their context, would describe
        # neither this text nor the model.
        raise ValueError(f"{skipped:,} of the {what} text's {len(text):,} characters are not in "
                         f"the model's vocabulary; use a corpus written in the training text's "
                         f"characters")
    unknown = vocabulary.unknown_characters(text)
    if unknown:
        # Characters never seen in training cannot be scored; they are dropped and said so.
        log.warning("%d distinct characters of the %s text are not in the vocabulary (%r); "
                    "they are skipped when scoring", len(unknown), what, "".join(unknown[:10]))
    return tokens, skipped


def bits_per_character(model: CharLanguageModel, tokens: torch.Tensor, *, rows: int,
                       window: int, device: str = "cpu") -> dict:
    """Mean -log2 p over a held-out token stream, read as ``rows`` side-by-side rows.

    The state is carried from window to window within each row (as in training), so every
    character is scored with all the context before it in its row. Not scored: the first
    character of each row (nothing before it predicts it) and the last N mod ``rows``
    characters of the N (the stream is cut into equal rows): fewer than 2 ``rows`` in all,
    ~0.03% of the built-in corpus's test split at the default 32 rows, but a large share of a
    text only a few hundred characters long. ``characters`` counts those scored. The model is
    scored in eval mode (no dropout) and left in the mode it came in.
    """
    rows = max(1, min(rows, tokens.numel() // 2))
    columns = tokens.numel() // rows
    stream = tokens[: rows * columns].reshape(rows, columns).to(device)
    total_nats, count, state = 0.0, 0, None
    with evaluating(model):  # with dropout on, a held-out score would differ between calls
        for start in range(0, columns - 1, window):
            stop = min(start + window, columns - 1)
            logits, state = model(stream[:, start:stop], state)
            targets = stream[:, start + 1: stop + 1]
            total_nats += F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                          targets.reshape(-1), reduction="sum").item()
            count += targets.numel()
    loss = total_nats / max(count, 1)
    bpc = loss / math.log(2)
    return {"loss": loss, "bpc": bpc, "perplexity": perplexity_of_bits(bpc), "characters": count}


def compressor_bars(text: str) -> dict:
    """Bits per character of zlib-9, bzip2-9 and xz-9e on ``text`` (UTF-8 bytes)."""
    data = text.encode("utf-8")
    sizes = {"zlib-9": len(zlib.compress(data, 9)), "bzip2-9": len(bz2.compress(data, 9)),
             "xz-9e": len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))}
    return {name: 8.0 * size / len(text) for name, size in sizes.items()}


def _lm_loss(model: CharLanguageModel, window, carry) -> StepOutput:
    if window.starts_epoch:
        carry = None  # a new pass over the text starts from a fresh state
    logits, carry = model(window.inputs, carry)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), window.targets.reshape(-1))
    return StepOutput(loss, carry, window.targets.numel())


def train_lm(config: LMConfig, run_dir: str | Path, *, resume: bool = False,
             notify: Callable[[str], None] = print) -> dict:
    """Train a character model; returns the run summary with validation and test bpc."""
    check_config_types(config)  # a config built in Python is not typed as a file's is
    corpus = config.data.corpus
    if isinstance(corpus, str) and corpus.lower() not in BUILTIN_CORPORA \
            and Path(corpus).is_dir() and Path(corpus).resolve() == Path(run_dir).resolve():
        # the run's files (checkpoints, metrics) would join the text it is scored and resumed
        # on; a run in a sub-folder of the corpus is left out of it (data/text.py). Checked
        # before the run folder's lock is taken, which would leave its file in the corpus.
        raise ValueError(f"the run folder {run_dir} is the corpus folder; choose another --out "
                         f"(a sub-folder of the corpus is fine)")
    with hold_run_folder(run_dir):
        return _train_lm(config, Path(run_dir), resume, notify)


def _train_lm(config: LMConfig, run_dir: Path, resume: bool,
              notify: Callable[[str], None]) -> dict:
    config.data.check()
    config.dynamic.check()
    make_paths_absolute(config.data, "corpus", builtin=BUILTIN_CORPORA)
    if resume:
        # the settings first: a corpus changed at --resume is refused as a change, so the
        # corpus left to read is the run's own, and if that is gone the error says so
        last = _check_resumed_settings(run_dir, config)
        _check_trained_corpus_exists(config.data.corpus, run_dir,
                                     "restore it at that path to resume the run")
    # resumed, a corpus now too small is a changed one, which _check_resumed_text names
    data = prepare_data(config.data, for_training=not resume)
    if resume:
        _check_resumed_text(last, run_dir, data.vocabulary, data.split)
    device = config.train.device
    train_tokens = data.vocabulary.encode(data.split.train).to(device)
    valid_tokens, _ = _encode_heldout(data.vocabulary, data.split.validation, "validation")
    test_tokens, _ = _encode_heldout(data.vocabulary, data.split.test, "test")
    batches = ContiguousBatches(train_tokens, config.data.batch_size, config.data.window,
                                random_length=config.data.random_length, seed=config.train.seed)
    torch.manual_seed(config.train.seed)  # the same initial weights for the same seed
    model = CharLanguageModel(len(data.vocabulary), config.model)
    meta = {"task": TASK, "config": asdict(config), "vocabulary": data.vocabulary.to_list(),
            "corpus": data.source, "split": data.split.describe(),
            "title": f"{config.model.cell.upper()} H={config.model.hidden_size} "
                     f"x{config.model.layers} on {config.data.corpus}"}
    evaluate = lambda m: bits_per_character(  # noqa: E731
        m, valid_tokens, rows=config.data.eval_rows, window=config.data.eval_window, device=device)
    trainer = Trainer(model, config.train, batches=batches, loss_fn=_lm_loss,
                      evaluate_fn=evaluate, run_dir=run_dir, meta=meta, notify=notify)
    if resume:
        step = trainer.resume(run_dir)
        notify(f"resuming from step {step} ({trainer.elapsed / 60:.1f} min trained)")
    parameters = sum(p.numel() for p in model.parameters())
    notify(f"corpus {data.source}: {len(data.split.train):,} training characters, vocabulary "
           f"{len(data.vocabulary)}; model {meta['title']} ({parameters / 1e6:.2f} M parameters, "
           f"{trainer.precision})")
    with torch.no_grad():
        # The first call compiles the fused kernels (once per machine, about a minute); done
        # here so that it does not eat into a --minutes budget. Eval mode: no dropout, so no
        # random numbers are drawn and a resumed run stays exact.
        model.eval()
        model(train_tokens[None, :2])
        model.train()
    result = trainer.fit()
    test, checkpoint = None, None
    if result.status != "interrupted":  # Ctrl-C: saved, and the user wants out, not a score
        best = load_checkpoint(run_dir, which="best")
        best.load_model(model)
        model.eval()
        test = bits_per_character(model, test_tokens, rows=config.data.eval_rows,
                                  window=config.data.eval_window, device=device)
        if config.dynamic.enabled:
            notify("scoring the test text with dynamic evaluation")
            test["dynamic"] = dynamic_score(model, test_tokens, config.dynamic, device=device)
            if not math.isfinite(test["dynamic"]["bpc"]):
                # the run and its static score stand; only this extra score failed
                notify(f"dynamic evaluation diverged ({test['dynamic']['bpc']} bits per "
                       f"character) at dynamic.lr {config.dynamic.lr}; score again with a "
                       f"smaller rate: rnnkit evaluate --checkpoint {run_dir} --dynamic-lr "
                       f"{config.dynamic.lr / 10:g}")
        checkpoint = str(best.path)
    else:  # the one saved as the run stopped, to --resume from
        checkpoint = saved_checkpoint(run_dir, result.steps)
    return {
        "task": TASK, "status": result.status, **result.progress(), "test": test,
        "skipped_steps": result.skipped_steps, "corpus": data.source, "split": meta["split"],
        "stop_signal": result.stop_signal,
        "parameters": parameters, "run_dir": str(run_dir), "checkpoint": checkpoint,
        "curves": result.curves,
        "config": asdict(config),
    }


def _check_resumed_settings(run_dir: Path, config: LMConfig):
    """A resumed run must read the text it was trained on, the same way: another corpus would
    give the embedding rows other characters' meanings, another batch size no longer fits the
    carried state, another seed draws other window lengths (random_length) from the step it
    resumes at (the random-number state itself is restored from the checkpoint). Returns the
    run's last checkpoint."""
    return check_resumed_settings(run_dir, {
        "data": (config.data, ("corpus", "batch_size", "window", "random_length")),
        "train": (config.train, ("seed",)),
        "model": (config.model, model_shape_keys(config.model))},
        builtin=tuple(BUILTIN_CORPORA))


def _check_resumed_text(last, run_dir: Path, vocabulary: CharVocabulary, split) -> None:
    """The corpus of a resumed run, read again, must be the text of its ``last`` checkpoint:
    the same characters and the same split."""
    with reading_record(last.path):
        saved_vocabulary = last.meta["vocabulary"]
    if saved_vocabulary != vocabulary.to_list():
        raise ValueError(f"the corpus text differs from the one the run in {run_dir} was "
                         f"trained on (its characters differ); resume with the same corpus, or "
                         f"start a new run with --out")
    change = split_change(last.meta.get("split"), split)
    if change:
        raise ValueError(f"the corpus text differs from the one the run in {run_dir} was "
                         f"trained on ({change}): its old test text could be trained on; "
                         f"resume with the same corpus, or start a new run with --out")


def split_change(saved: dict | None, split) -> str | None:
    """How ``split`` (a TextSplit) differs from the one a run recorded, or None if it does not
    (runs that recorded no text digest are compared by their sizes only)."""
    if not saved:
        return None
    now = split.describe()
    if saved.get("characters") != now["characters"]:
        return (f"{saved.get('characters', {}).get('total')} characters then, "
                f"{now['characters']['total']} now")
    if "sha256" in saved and saved["sha256"] != now["sha256"]:
        return "same length, other content"
    if saved.get("boundaries") != now["boundaries"]:
        return f"split at {saved.get('boundaries')} then, at {now['boundaries']} now"
    return None


@dataclass
class LoadedModel:
    model: CharLanguageModel
    vocabulary: CharVocabulary
    config: LMConfig
    checkpoint: Path
    step: int
    split: dict | None = None  #: the run's record of its corpus split (TextSplit.describe)


def load_lm(path: str | Path, *, which: str = "best", device: str = "cpu") -> LoadedModel:
    """A trained character model and its vocabulary from a run folder or checkpoint."""
    checkpoint = load_checkpoint(path, which=which)
    require_task(checkpoint, TASK, "a language model")
    with reading_record(checkpoint.path):
        config = config_from_dict(LMConfig, checkpoint.meta["config"])
        vocabulary = CharVocabulary.from_list(checkpoint.meta["vocabulary"])
    model = CharLanguageModel(len(vocabulary), config.model)
    checkpoint.load_model(model)
    model.to(device).eval()
    return LoadedModel(model, vocabulary, config, checkpoint.path, checkpoint.step,
                       checkpoint.meta.get("split"))


def dynamic_score(model: CharLanguageModel, tokens: torch.Tensor, config: DynamicConfig, *,
                  device: str = "cpu") -> dict:
    """Bits per character of ``tokens`` under dynamic evaluation with ``config``'s settings."""
    from .dynamic import dynamic_bits_per_character

    return dynamic_bits_per_character(model, tokens, rows=config.rows, window=config.window,
                                      lr=config.lr, decay=config.decay, rule=config.rule,
                                      device=device)


def evaluate_lm(path: str | Path, *, corpus: str | None = None, split: str = "test",
                which: str = "best", dynamic: bool = False,
                dynamic_lr: float | None = None) -> dict:
    """Bits per character of a checkpoint on a split of its corpus (or of another corpus).

    With ``dynamic`` (or a ``dynamic_lr``, which overrides the saved config's rate) the result
    also holds ``dynamic``: the score under dynamic evaluation (see
    :mod:`rnnkit.tasks.lm.dynamic`) with the checkpoint's ``dynamic`` settings, next to the
    static one.
    """
    if split not in ("validation", "test", "train"):
        raise ValueError(f"split must be 'train', 'validation' or 'test'; got {split!r}")
    if dynamic_lr is not None:  # before the (slow) load: a typo fails at once
        DynamicConfig(lr=dynamic_lr).check()
    loaded = load_lm(path, which=which)
    data_config = loaded.config.data
    if corpus is not None:
        data_config = DataConfig(**{**asdict(data_config), "corpus": corpus})
    data_config.check()
    if corpus is None:
        _check_trained_corpus_exists(data_config.corpus, path,
                                     "restore it at that path, or score another text with "
                                     "--corpus")
    data = prepare_data(data_config, vocabulary=loaded.vocabulary)
    if corpus is None:
        # the run's own corpus, edited since: its "test" part may now be training text
        change = split_change(loaded.split, data.split)
        if change:
            raise ValueError(f"the corpus {data_config.corpus!r} changed since the run was "
                             f"trained ({change}), so its {split} part is no longer the one "
                             f"held out; score another text with --corpus")
    start = time.perf_counter()
    tokens, skipped = _encode_heldout(loaded.vocabulary, getattr(data.split, split), split)
    metrics = bits_per_character(loaded.model, tokens, rows=data_config.eval_rows,
                                 window=data_config.eval_window)
    metrics["unknown_characters"] = skipped  # not scored (not in the vocabulary)
    if dynamic or dynamic_lr is not None:
        settings = loaded.config.dynamic
        if dynamic_lr is not None:
            settings = DynamicConfig(**{**asdict(settings), "lr": dynamic_lr})
        settings.check()
        metrics["dynamic"] = dynamic_score(loaded.model, tokens, settings)
        if not math.isfinite(metrics["dynamic"]["bpc"]):
            # printed as "nan bits per character" with exit status 0 (probe, 2026-12-08)
            saved = loaded.config.dynamic.lr
            hint = (f"the run's own is {saved:g}" if settings.lr != saved
                    else f"try {settings.lr / 10:g}")
            raise ValueError(f"dynamic evaluation diverged at lr {settings.lr:g} "
                             f"({metrics['dynamic']['bpc']} bits per character; the static "
                             f"score is {metrics['bpc']:.4f}); use a smaller --dynamic-lr "
                             f"({hint})")
    return {"task": TASK, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
            "corpus": data.source, "split": split, **metrics,
            "seconds": round(time.perf_counter() - start, 2)}
