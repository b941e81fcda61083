"""Data for sequence classification: the splits, per-channel normalization, padded tensors.

The training split of a set is carved into train and validation parts, stratified by class and
seeded; the test split is the set's official one (bundled sets) or a separate file. Every
sequence (T_i, C) is normalized per channel with the mean and standard deviation of the
training part's valid steps only, ``x' = (x - mu) / sigma`` with mu, sigma (C,), so nothing
about the validation or test data leaks into the model. The statistics travel in the
checkpoint, so a trained model needs nothing else to score new sequences.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.scaling import standardization
from rnnkit.data.sequences import (
    BUNDLED_SETS, SequenceDataError, SequenceSet, aeon_label_form, load_sequences,
    match_by_value,
)


@dataclass
class DataConfig:
    data: str = "JapaneseVowels"  #: a set bundled with aeon (by name) or a .ts/.npz/.csv file
    test: str | None = None  #: test file; bundled sets default to their official test split
    #: of the training split, stratified and seeded; 0 (measured best on small sets, see
    #: docs/guide/classification.md): train on all of it and check on the training sequences
    validation_fraction: float = 0.0
    batch_size: int = 32
    normalize: bool = True  #: per-channel standardization with training statistics
    class_weights: str = "none"  #: "none" or "balanced" (weights N / (K * N_k) in the loss)
    noise: float = 0.7  #: augmentation: std of Gaussian noise added to normalized training steps

    def check(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"data.validation_fraction must be in [0, 1); got "
                             f"{self.validation_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1; got {self.batch_size}")
        if not 0.0 <= self.noise < math.inf:
            raise ValueError(f"data.noise must be a finite number >= 0; got {self.noise}")
        if self.class_weights not in ("none", "balanced"):
            raise ValueError(f"data.class_weights must be 'none' or 'balanced'; got "
                             f"{self.class_weights!r}")


def is_bundled(name: str) -> bool:
    return name.lower() in {n.lower() for n in BUNDLED_SETS}


class Normalizer:
    """Per-channel ``(x - mean) / std``; mean, std (C,) from the training part's valid steps."""

    def __init__(self, mean, std) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, sequences: list[np.ndarray], enabled: bool = True) -> "Normalizer":
        channels = sequences[0].shape[1]
        if not enabled:
            return cls(np.zeros(channels), np.ones(channels))
        return cls(*standardization(np.concatenate(sequences, axis=0)))  # (sum_i T_i, C)

    def __call__(self, sequence: np.ndarray) -> np.ndarray:
        return ((sequence - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> "Normalizer":
        return cls(values["mean"], values["std"])


@dataclass
class Tensors:
    """A split as padded tensors: x (N, T_max, C) float32 (zero past each length), lengths (N,)
    int64, labels (N,) int64."""

    x: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray], labels, normalizer: Normalizer,
                       device: str = "cpu") -> "Tensors":
        normalized = [normalizer(s) for s in sequences]
        lengths = np.array([len(s) for s in normalized], dtype=np.int64)
        x = np.zeros((len(normalized), int(lengths.max()), normalized[0].shape[1]), np.float32)
        for row, sequence in zip(x, normalized):
            row[:len(sequence)] = sequence
        return cls(torch.from_numpy(x).to(device), torch.from_numpy(lengths).to(device),
                   torch.as_tensor(np.asarray(labels), dtype=torch.int64).to(device))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: torch.Tensor):
        """(x (B, T_b, C), lengths (B,), labels (B,)), T_b the longest selected sequence."""
        indices = indices.to(self.lengths.device)
        lengths = self.lengths[indices]
        return self.x[indices, :int(lengths.max())], lengths, self.labels[indices]


def stratified_split(labels: np.ndarray, fraction: float, seed: int):
    """Indices (train, validation): round(fraction * N_k) of each class k to validation, at
    least one per class with two or more members when fraction > 0, and never a class's last
    member (training sees every class), chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        take = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            take = max(take, 1)
        take = min(take, len(members) - 1)
        validation.extend(members[:take])
        train.extend(members[take:])
    return np.sort(np.array(train, np.int64)), np.sort(np.array(validation, np.int64))


def subset(data: SequenceSet, indices: np.ndarray, what: str) -> SequenceSet:
    return SequenceSet([data.sequences[i] for i in indices], data.labels[indices],
                       data.class_names, f"{data.source}, {what}",
                       None if data.ids is None else [data.ids[i] for i in indices],
                       data.channel_names)


def load_split(name: str, split: str, class_names: list[str] | None = None,
               channels: int | None = None, what: str = "data",
               channel_names: list[str] | None = None, own_data: bool = False,
               aeon_forms: bool = False) -> SequenceSet:
    """One split of a bundled set, or a file, checked against the training set's classes and
    channels; labels are re-indexed into ``class_names``. Where both the training data and this
    split name their channels (CSV columns), they are matched by name: the columns may come in
    another order, but other names are an error.

    ``own_data``: this is the data a run with ``class_names`` was trained on (resumed, or
    re-carved to score its validation part), so it must hold each of them and no other.
    ``aeon_forms``: they were saved before .ts labels were read as written (2026-12-06), so a
    .ts file's or bundled set's labels are matched to them in the form aeon's reader gave them
    then (lower case, "nan" as "NaN").
    """
    data = load_sequences(name, split=split)
    if channels is not None and data.channels != channels:
        raise SequenceDataError(f"{what} {name!r} has {data.channels} channels but the model "
                                f"was trained on {channels}; pass sequences with the same "
                                f"channels as the training data")
    if channel_names is not None and data.channel_names is not None \
            and data.channel_names != list(channel_names):
        if sorted(data.channel_names) != sorted(channel_names):
            raise SequenceDataError(f"{what} {name!r} has channels {', '.join(data.channel_names)}"
                                    f" but the model was trained on "
                                    f"{', '.join(channel_names)}; name the feature columns as "
                                    f"in the training file")
        # the same columns in another order: put them in the training order
        order = [data.channel_names.index(c) for c in channel_names]
        data = dataclasses.replace(data, sequences=[s[:, order] for s in data.sequences],
                                   channel_names=list(channel_names))
    if class_names is None:
        return data
    index = {n: i for i, n in enumerate(class_names)}
    unknown = [n for n in data.class_names if n not in index]
    if unknown and aeon_forms and (is_bundled(name) or Path(name).suffix.lower() == ".ts"):
        older = [aeon_label_form(n) for n in data.class_names]
        if len(set(older)) == len(older) and all(n in index for n in older):
            data, unknown = dataclasses.replace(data, class_names=older), []
    if unknown:  # the same number written another way ("1" for a class "1.0")
        same_value = match_by_value(unknown, class_names)
        data = dataclasses.replace(data, class_names=[same_value.get(n, n)
                                                      for n in data.class_names])
        unknown = [n for n in unknown if n not in same_value]
    if unknown:
        if own_data:  # the file changed under the run: its weights mean other data
            raise SequenceDataError(f"{what} {name!r} has label {unknown[0]!r}, which the run "
                                    f"was not trained on (its classes: {', '.join(class_names)})"
                                    f"; start a new run with --out for other classes")
        raise SequenceDataError(f"{what} {name!r} has label {unknown[0]!r}, which is not a class "
                                f"of the training data ({', '.join(class_names)}); use the "
                                f"training set's labels")
    labels = np.array([index[data.class_names[k]] for k in data.labels], np.int64)
    present = set(labels.tolist())
    absent = [n for i, n in enumerate(class_names) if i not in present] if own_data else []
    if absent:
        raise SequenceDataError(f"{what} {name!r} has no sequence of class {absent[0]!r}, which "
                                f"the run was trained on; start a new run with --out for other "
                                f"classes")
    return SequenceSet(data.sequences, labels, list(class_names), data.source, data.ids,
                       data.channel_names)


@dataclass
class PreparedData:
    train: SequenceSet
    validation: SequenceSet | None  # None when validation_fraction is 0
    test: SequenceSet | None  # None for a file without a test file
    normalizer: Normalizer
    class_names: list[str]

    def describe(self) -> dict:
        return {part: (len(getattr(self, part)) if getattr(self, part) is not None else 0)
                for part in ("train", "validation", "test")}


def prepare_data(config: DataConfig, seed: int, *, with_test: bool = True,
                 class_names: list[str] | None = None, aeon_forms: bool = False
                 ) -> PreparedData:
    """Load the training split, carve the validation part, fit the normalizer, load the test.

    ``class_names``: those of the run this data trained (resumed, or re-carved to score it),
    so that each class keeps its index (the data's own sorted names otherwise); ``aeon_forms``
    as in :func:`load_split`."""
    config.check()
    full = load_split(config.data, "train", class_names, what="training data",
                      own_data=class_names is not None, aeon_forms=aeon_forms)
    if len(full.class_names) < 2:
        raise SequenceDataError(f"{full.source} has a single class ({full.class_names[0]!r}); "
                                f"classification needs at least two")
    train_idx, valid_idx = stratified_split(full.labels, config.validation_fraction, seed)
    train = subset(full, train_idx, f"{len(train_idx)} for training")
    validation = subset(full, valid_idx, f"{len(valid_idx)} held out for validation") \
        if len(valid_idx) else None
    test = None
    if with_test and (config.test is not None or is_bundled(config.data)):
        test = load_split(config.test or config.data, "test", full.class_names, full.channels,
                          what="test data", channel_names=full.channel_names,
                          aeon_forms=aeon_forms)
    return PreparedData(train, validation, test, Normalizer.fit(train.sequences, config.normalize),
                        full.class_names)


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """None for "none"; for "balanced" (K,) weights N / (K * N_k), 0 for an absent class."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.divide(len(labels), num_classes * counts, out=np.zeros(num_classes),
                        where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)
