"""Sequence classification: train, evaluate, and load a classifier back from its checkpoint.

Quality is test accuracy (the share of test sequences whose most probable class is the true
one) and macro F1 (the mean over classes of per-class F1, which weighs rare classes like common
ones); see :mod:`rnnkit.tasks.classify.metrics`. With ``data.validation_fraction`` > 0 the
model is chosen by validation loss on that stratified part of the training split (by default
none is held out, and the training sequences stand in for it), and the test split is scored
once, at the end.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from rnnkit.data.sequences import BUNDLED_SETS, checked_values
from rnnkit.errors import MissingExtraError
from rnnkit.training import (
    ShuffledBatches, StepOutput, TrainConfig, Trainer, config_from_dict,
    cpu_threads, evaluating, hold_run_folder, load_checkpoint,
)
from rnnkit.training.checkpoint import (
    check_resumed_settings, data_digest, model_shape_keys, reading_record, require_task,
    saved_checkpoint,
)
from rnnkit.training.config import check_config_types, make_paths_absolute
from rnnkit.training.metrics import drawn_by_rnnkit

from .data import (
    DataConfig, Normalizer, Tensors, class_weights, is_bundled, load_split, prepare_data,
)
from .metrics import classification_report, plot_confusion
from .model import ModelConfig, SequenceClassifier, valid_mask

__all__ = ["DataConfig", "ClassifyConfig", "train_classifier", "load_classifier",
           "evaluate_classifier", "score", "LoadedClassifier", "published_bars"]

TASK = "classify"
#: the test split's confusion matrix, in the run's folder
CONFUSION_FILE = "confusion.png"

#: Published test accuracy on the official split (DATA.md), by lower-case set name.
_BARS = {"japanesevowels": {"1-NN DTW": 0.949, "MLP": 0.976, "ResNet": 0.992, "FCN": 0.993}}


def published_bars(data: str) -> dict | None:
    """Published test accuracies for a bundled set, or None when none are recorded."""
    return dict(_BARS[data.lower()]) if data.lower() in _BARS else None


def _default_train() -> TrainConfig:
    # Measured on JapaneseVowels (docs/guide/classification.md): epochs are the limit, so the
    # result does not depend on the machine's speed; the minutes are only a safety net.
    return TrainConfig(learning_rate=3e-3, weight_decay=0.01, warmup_steps=50, max_epochs=150,
                       minutes=5.0, eval_every=150, log_every=30)


@dataclass
class ClassifyConfig:
    """Everything a classification run needs; saved resolved beside every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=_default_train)
    #: intra-op CPU threads while training and scoring (restored afterwards); 0 keeps torch's.
    #: For these small matrices one thread took 21 ms per default step and two 550 ms on the
    #: busy shared 2-core machine (threads spinning against other jobs)
    threads: int = 1


def score(model: SequenceClassifier, tensors: Tensors, *, batch_size: int = 256) -> dict:
    """Mean cross-entropy, accuracy and macro F1 of ``model`` on a split; ``predictions`` (N,)."""
    logits = []
    with evaluating(model):
        for start in range(0, len(tensors), batch_size):
            x, lengths, _ = tensors.batch(torch.arange(start, min(start + batch_size,
                                                                  len(tensors))))
            logits.append(model(x, lengths).float())
    logits = torch.cat(logits)
    predictions = logits.argmax(dim=-1).cpu().numpy()
    labels = tensors.labels.cpu().numpy()
    report = classification_report(labels, predictions, [str(k) for k in range(model.num_classes)])
    return {"loss": F.cross_entropy(logits, tensors.labels).item(),
            "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
            "predictions": predictions}


def _plot_run_confusion(report: dict, class_names: list[str], png: Path, title: str,
                        notify: Callable[[str], None]) -> str | None:
    """A training run's confusion.png, as a path; None, with a notice, without matplotlib (an
    optional extra: the run and its test score stand without the picture, as without curves)."""
    try:
        plot_confusion(np.array(report["confusion"]), class_names, png, title=title)
    except MissingExtraError as missing:
        notify(f"no confusion matrix was written: {missing}")
        return None
    except OSError as error:  # the picture only: the scores and checkpoints stand
        notify(f"could not write {png} ({error.strerror or error}); the run's checkpoints and "
               f"scores are saved (free that path for the picture next time)")
        return None
    return str(png)


def _test_report(model, tensors: Tensors, class_names: list[str], png: Path | None,
                 title: str) -> dict:
    scored = score(model, tensors)
    report = classification_report(tensors.labels.cpu().numpy(), scored["predictions"],
                                   class_names)
    if png is not None:
        plot_confusion(np.array(report["confusion"]), class_names, png, title=title)
    return {"loss": scored["loss"], "sequences": len(tensors), **report}


def _title(config: ClassifyConfig) -> str:
    m = config.model
    return (f"{'Bi' if m.bidirectional else ''}{m.cell.upper()} H={m.hidden_size} x{m.layers}, "
            f"{m.pooling} pooling on {Path(config.data.data).name}")


def _batch_loss(train: Tensors, weights, noise: float, model, indices, carry) -> StepOutput:
    """Mean (class-weighted) cross-entropy of one batch of training sequences, with Gaussian
    noise of std ``noise`` added to their valid steps."""
    x, lengths, labels = train.batch(indices)
    if noise > 0:
        mask = valid_mask(lengths, x.size(1)).unsqueeze(-1)
        x = x + noise * torch.randn_like(x) * mask
    loss = F.cross_entropy(model(x, lengths).float(), labels, weight=weights)
    return StepOutput(loss, None, int(labels.numel()))


def train_classifier(config: ClassifyConfig, run_dir: str | Path, *, resume: bool = False,
                     notify: Callable[[str], None] = print) -> dict:
    """Train a classifier; returns the run summary with validation and test metrics.

    The run folder gets checkpoints, metrics.jsonl, curves.png and (with a test split)
    confusion.png; ``resume=True`` continues the run in ``run_dir`` exactly.
    """
    check_config_types(config)  # a config built in Python: 2.5 failed deep in slicing
    config.train.check()  # its seed and device are used before the Trainer checks them
    with cpu_threads(config.threads), hold_run_folder(run_dir):
        return _train(config, Path(run_dir), resume, notify)


def _training_data_digest(data) -> str:
    """sha256 of the training and validation sequences (as loaded, before normalization) and
    their labels: what a resumed run must train on again."""
    parts = [part for part in (data.train, data.validation) if part is not None]
    return data_digest([array for part in parts
                        for array in (*part.sequences, part.labels.astype(np.int64))])


def _train(config: ClassifyConfig, run_dir: Path, resume: bool, notify) -> dict:
    start = time.perf_counter()
    config.model.check()
    make_paths_absolute(config.data, "data", "test", builtin=BUNDLED_SETS)
    saved_classes, labels_as_written = None, True
    if resume:
        # the seed draws the validation split (prepare_data), so it is data as well
        last = check_resumed_settings(run_dir, {
            "data": (config.data, ("data", "validation_fraction", "batch_size", "normalize")),
            "train": (config.train, ("seed",)),
            "model": (config.model, model_shape_keys(config.model))},
            builtin=tuple(BUNDLED_SETS))
        with reading_record(last.path):
            saved_classes = list(last.meta["class_names"])
        # kept for the run's life: its class names stay in the form they were saved in
        labels_as_written = bool(last.meta.get("labels_as_written", False))
    data = prepare_data(config.data, config.train.seed, class_names=saved_classes,
                        aeon_forms=not labels_as_written)
    digest = _training_data_digest(data)
    if resume and last.meta.get("data_sha256") not in (None, digest):
        # the same file with other numbers: the normalizer is refitted and the weights would
        # go on training on data they do not describe, silently
        raise ValueError(f"the training data differs from the data the run in {run_dir} was "
                         f"trained on (same classes, other sequences or values); resume with "
                         f"the same data, or start a new run with --out")
    device = config.train.device
    train = Tensors.from_sequences(data.train.sequences, data.train.labels, data.normalizer, device)
    # Without a validation part the training sequences stand in (selection is then by train loss).
    held_out = data.validation or data.train
    validation = Tensors.from_sequences(held_out.sequences, held_out.labels, data.normalizer,
                                        device)
    num_classes = len(data.class_names)
    weights = class_weights(data.train.labels, num_classes, config.data.class_weights)
    weights = weights.to(device) if weights is not None else None
    torch.manual_seed(config.train.seed)  # the same initial weights for the same seed
    model = SequenceClassifier(data.train.channels, num_classes, config.model)
    sources = {"train": data.train.source, "validation": held_out.source,
               "test": data.test.source if data.test is not None else None}
    meta = {"task": TASK, "config": asdict(config), "class_names": data.class_names,
            "labels_as_written": labels_as_written,
            "channels": data.train.channels, "channel_names": data.train.channel_names,
            "normalization": data.normalizer.to_dict(),
            "sources": sources, "split": data.describe(), "title": _title(config),
            "data_sha256": digest}

    def evaluate(model) -> dict:
        scored = score(model, validation)
        return {k: scored[k] for k in ("loss", "accuracy", "macro_f1")}

    batches = ShuffledBatches(len(train), config.data.batch_size, seed=config.train.seed)
    loss_fn = functools.partial(_batch_loss, train, weights, config.data.noise)
    trainer = Trainer(model, config.train, batches=batches, loss_fn=loss_fn, evaluate_fn=evaluate,
                      run_dir=run_dir, meta=meta, notify=notify)
    if resume:
        step = trainer.resume(run_dir)
        notify(f"resuming from step {step} ({trainer.elapsed / 60:.1f} min trained)")
    parameters = sum(p.numel() for p in model.parameters())
    split = data.describe()
    notify(f"data {data.train.source.split(',')[0]}: {split['train']} train / "
           f"{split['validation']} validation / {split['test']} test sequences, "
           f"{data.train.channels} channels, {num_classes} classes; model {meta['title']} "
           f"({parameters:,} parameters)")
    with torch.no_grad():
        # The first call compiles the fused kernels (once per machine, about a minute): done
        # here so it does not eat into a --minutes budget. Eval mode draws no random numbers,
        # so a resumed run stays exact.
        model.eval()
        model(*train.batch(torch.arange(min(2, len(train))))[:2])
        model.train()
    result = trainer.fit()
    if result.status == "interrupted":  # Ctrl-C: saved, and the user wants out, not a score
        return {"task": TASK, "status": result.status, **result.progress(),
                "test": None, "run_dir": str(run_dir), "config": asdict(config),
                "stop_signal": result.stop_signal,
                # the one saved as the run stopped, to --resume from
                "checkpoint": saved_checkpoint(run_dir, result.steps)}
    best = load_checkpoint(run_dir, which="best")
    best.load_model(model)
    model.eval()
    test, confusion_png = None, None
    if data.test is not None:
        tensors = Tensors.from_sequences(data.test.sequences, data.test.labels, data.normalizer,
                                         device)
        test = _test_report(model, tensors, data.class_names, None, "")
        confusion_png = _plot_run_confusion(test, data.class_names, run_dir / CONFUSION_FILE,
                                            f"{meta['title']}: test", notify)
    return {
        "task": TASK, "status": result.status, **result.progress(),
        "seconds": round(time.perf_counter() - start, 1), "test": test, "sources": sources,
        "split": split, "class_names": data.class_names, "parameters": parameters,
        "run_dir": str(run_dir), "checkpoint": str(best.path), "curves": result.curves,
        "confusion_png": confusion_png,
        "config": asdict(config),
    }


@dataclass
class LoadedClassifier:
    model: SequenceClassifier
    config: ClassifyConfig
    class_names: list[str]
    normalizer: Normalizer
    checkpoint: Path
    step: int
    #: the training CSV's feature columns, by which evaluation files are matched; None for
    #: other sources and for runs saved before they were recorded
    channel_names: list[str] | None = None
    #: False for runs saved before .ts labels were read as written: their class names are in
    #: the form aeon's reader gave them (see classify.data.load_split)
    labels_as_written: bool = True

    def tensors(self, sequences: list[np.ndarray], labels=None) -> Tensors:
        """Raw (T_i, C) sequences, normalized with the training statistics, as tensors."""
        channels = len(self.normalizer.mean)
        if len(sequences) == 0:
            raise ValueError("no sequences given; pass a list of (T, C) arrays")
        arrays = []
        for i, sequence in enumerate(sequences):
            if isinstance(sequence, torch.Tensor):
                sequence = sequence.detach().cpu().numpy()
            sequence = np.asarray(sequence)
            # (x - mean) / std would broadcast a (T, 1) sequence to C channels without a word
            if sequence.ndim != 2 or len(sequence) < 1 or sequence.shape[1] != channels:
                raise ValueError(f"sequence {i} has shape {sequence.shape}; the model takes (T, "
                                 f"{channels}) arrays, T >= 1 steps of {channels} channels")
            # as the data loader: a NaN sequence was given a class name like any other
            arrays.append(checked_values(sequence, f"sequence {i}"))
        labels = np.zeros(len(sequences), np.int64) if labels is None else labels
        return Tensors.from_sequences(arrays, labels, self.normalizer)

    def predict(self, sequences: list[np.ndarray]) -> tuple[list[str], np.ndarray]:
        """Class names (N,) and class probabilities (N, K) of raw (T_i, C) sequences."""
        tensors = self.tensors(sequences)
        with torch.no_grad():
            probabilities = torch.softmax(self.model(tensors.x, tensors.lengths), dim=-1).numpy()
        return [self.class_names[k] for k in probabilities.argmax(axis=-1)], probabilities


def load_classifier(path: str | Path, *, which: str = "best") -> LoadedClassifier:
    """A trained classifier with its classes and normalization from a run folder or checkpoint."""
    checkpoint = load_checkpoint(path, which=which)
    require_task(checkpoint, TASK, "a sequence classifier")
    meta = checkpoint.meta
    with reading_record(checkpoint.path):
        config = config_from_dict(ClassifyConfig, meta["config"])
        class_names, channels = list(meta["class_names"]), int(meta["channels"])
        normalizer = Normalizer.from_dict(meta["normalization"])
        channel_names = meta.get("channel_names")
        channel_names = None if channel_names is None else [str(c) for c in channel_names]
        labels_as_written = bool(meta.get("labels_as_written", False))
    model = SequenceClassifier(channels, len(class_names), config.model)
    checkpoint.load_model(model)
    model.eval()
    return LoadedClassifier(model, config, class_names, normalizer, checkpoint.path,
                            checkpoint.step, channel_names, labels_as_written)


def evaluate_classifier(path: str | Path, data: str | None = None, split: str = "test", *,
                        which: str = "best", confusion_png: str | Path | None = None) -> dict:
    """Accuracy, macro F1 and the per-class report of a checkpoint.

    ``data=None`` scores ``split`` ("test", "validation" or "train") of the run's own data,
    re-carved exactly as in training; ``data`` (a bundled set's name or a file) scores that
    instead: its ``split`` for a bundled set, the whole file otherwise.
    """
    if split not in ("test", "validation", "train"):
        raise ValueError(f"split must be 'test', 'validation' or 'train'; got {split!r}")
    if confusion_png is not None:
        _check_picture_path(Path(confusion_png))
    loaded = load_classifier(path, which=which)
    with cpu_threads(loaded.config.threads):
        return _evaluate(loaded, data, split, confusion_png)


def _check_picture_path(png: Path) -> None:
    """A confusion matrix replaces only an earlier picture rnnkit drew: any file was replaced,
    the data file itself among them (probe, 2026-12-08)."""
    if png.suffix.lower() != ".png":
        raise ValueError(f"confusion_png names the PNG to write, ending in .png; got {png}")
    if png.exists() and not (png.is_file() and drawn_by_rnnkit(png)):
        raise ValueError(f"confusion_png {png} exists and carries no rnnkit mark (a picture "
                         f"replaces only one rnnkit drew; those drawn before 2026-12-08 carry "
                         f"none); choose a new path, or delete it if it is an old picture")


def _evaluate(loaded: LoadedClassifier, data: str | None, split: str, confusion_png) -> dict:
    channels = loaded.model.input_size
    if data is not None:
        if split == "validation":
            raise ValueError("split='validation' is part of the run's own data; score it "
                             "without data= (--data on the command line)")
        if split == "train" and not is_bundled(data):
            # a file has no train part: it is scored whole, which was reported as "train"
            raise ValueError(f"split='train' names a bundled set's training part, and {data!r} "
                             f"is a file, which is scored whole; leave the split (--split) out")
        part = load_split(data, split if is_bundled(data) else "test", loaded.class_names,
                          channels, what="evaluation data", channel_names=loaded.channel_names,
                          aeon_forms=not loaded.labels_as_written)
    elif split == "test":
        if loaded.config.data.test is None and not is_bundled(loaded.config.data.data):
            raise ValueError(f"the run was trained on file {loaded.config.data.data!r} without a "
                             f"test file; pass the data to score (--data FILE)")
        part = load_split(loaded.config.data.test or loaded.config.data.data, "test",
                          loaded.class_names, channels, what="test data",
                          channel_names=loaded.channel_names,
                          aeon_forms=not loaded.labels_as_written)
    else:
        # the run's own classes, in its order: the data's own sorted names may differ from
        # those it was saved with (see labels_as_written)
        prepared = prepare_data(loaded.config.data, loaded.config.train.seed, with_test=False,
                                class_names=loaded.class_names,
                                aeon_forms=not loaded.labels_as_written)
        part = getattr(prepared, split)
        if part is None:
            raise ValueError("the run had no validation part (validation_fraction=0)")
    start = time.perf_counter()
    report = _test_report(loaded.model, loaded.tensors(part.sequences, part.labels),
                          loaded.class_names, confusion_png, f"{part.source}")
    return {"task": TASK, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
            "data": part.source, "split": split, **report,
            "seconds": round(time.perf_counter() - start, 2)}
