"""The sequence-classification task end to end on small generated data, and every bad input.

Oracles: the untrained model and chance (training must beat both), an independent count of
accuracy and per-class F1 from the predictions, each sequence run alone (a padded batch must
give the same logits), torch.nn's layers on a PackedSequence with the same weights, the
in-memory model (a reloaded checkpoint must score the same), an uninterrupted run (a resumed
run must equal it exactly), and training-only statistics recomputed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.sequences import SequenceDataError
from rnnkit.tasks.classify import task as classify_task
from rnnkit.tasks.classify.data import (
    Normalizer, Tensors, class_weights, prepare_data, stratified_split,
)
from rnnkit.tasks.classify.model import POOLINGS, ModelConfig, SequenceClassifier
from rnnkit.tasks.classify.task import (
    ClassifyConfig, DataConfig, evaluate_classifier, load_classifier, score, train_classifier,
)
from rnnkit.training import TrainConfig

from interrupts import ctrl_c_at_call
from pictures import PLOTTING, assert_picture
from tolerances import assert_close

NAMES = ["low", "mid", "high"]


def make_sequences(n: int, seed: int, channels: int = 2, names=NAMES):
    """n sequences (T_i, C), T_i in 4..12; the class sets the level and slope of channel 0."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(names), size=n)
    sequences = []
    for k in labels:
        t = np.arange(rng.integers(4, 13))[:, None]
        x = rng.normal(0.0, 0.3, size=(len(t), channels)) + 5.0  # offset: normalization matters
        x[:, :1] += (k - 1.0) * (1.0 + 0.1 * t)
        sequences.append(x)
    return sequences, np.array([names[k] for k in labels])


def save_npz(path, sequences, labels):
    array = np.empty(len(sequences), dtype=object)
    array[:] = sequences
    np.savez(path, X=array, y=labels)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classify-data")
    return {"train": save_npz(folder / "train.npz", *make_sequences(90, seed=1)),
            "test": save_npz(folder / "test.npz", *make_sequences(60, seed=2))}


def small_config(files, **train) -> ClassifyConfig:
    settings = dict(max_steps=60, max_epochs=None, minutes=None, eval_every=20, log_every=5,
                    warmup_steps=5, learning_rate=1e-2, progress=False)
    settings.update(train)
    return ClassifyConfig(
        data=DataConfig(data=files["train"], test=files["test"], validation_fraction=0.2,
                        batch_size=16),
        model=ModelConfig(hidden_size=8, dropout=0.1, attention_size=8, pooling="attention"),
        train=TrainConfig(**settings))


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("classify-run") / "run"
    return run_dir, train_classifier(small_config(files), run_dir, notify=quiet)


def independent_scores(labels: np.ndarray, predictions: np.ndarray, k: int):
    """Accuracy and macro F1 counted directly (classes present in labels or predictions)."""
    f1 = []
    for c in range(k):
        tp = int(np.sum((labels == c) & (predictions == c)))
        fp = int(np.sum((labels != c) & (predictions == c)))
        fn = int(np.sum((labels == c) & (predictions != c)))
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(labels == predictions)), float(np.mean(f1))


def test_training_lowers_the_loss_and_beats_the_untrained_model(files, trained):
    run_dir, result = trained
    config = small_config(files)
    data = prepare_data(config.data, config.train.seed)
    test = Tensors.from_sequences(data.test.sequences, data.test.labels, data.normalizer)
    torch.manual_seed(config.train.seed)
    untrained = SequenceClassifier(2, 3, config.model)
    assert result["test"]["loss"] < score(untrained, test)["loss"] - 0.5
    assert result["test"]["accuracy"] > 0.8  # chance is about 1/3
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in history if r["split"] == "train"]
    assert train_losses[-1] < 0.5 * train_losses[0]
    assert result["split"] == {"train": 72, "validation": 18, "test": 60}
    assert set(result["validation"]) >= {"loss", "accuracy", "macro_f1"}
    assert_picture(run_dir / "confusion.png")
    assert result["class_names"] == sorted(NAMES)


@pytest.mark.parametrize("shape", [(20, 1), (20, 3), (2,), (0, 2)])
def test_predict_refuses_sequences_of_another_shape(trained, shape):
    """A (T, 1) sequence for a 2-channel model was broadcast to 2 channels and classified."""
    loaded = load_classifier(trained[0])
    with pytest.raises(ValueError, match=r"sequence 1 has shape .*takes \(T, 2\) arrays") as info:
        loaded.predict([np.zeros((5, 2)), np.zeros(shape)])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value, needle", [(np.nan, "NaN or infinite value (step 3, channel 1)"),
                                           (np.inf, "NaN or infinite value (step 3, channel 1)"),
                                           (1e39, "beyond float32's range")])
def test_predict_refuses_values_the_data_loader_refuses(trained, value, needle):
    """A NaN sequence was given a class name (with NaN probabilities)."""
    loaded = load_classifier(trained[0])
    bad = np.zeros((5, 2))
    bad[3, 1] = value
    with pytest.raises(ValueError, match="sequence 1 has") as info:
        loaded.predict([np.zeros((5, 2)), bad])
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("values", [np.array([[1 + 5j, 2], [3, 4]]),
                                    np.array([["1", "2"], ["3", "4"]]),
                                    np.array([["1", 2.0], [3.0, 4.0]], dtype=object)],
                         ids=["complex", "text", "object"])
def test_predict_refuses_values_that_are_not_real_numbers(trained, values):
    """The float32 cast dropped the imaginary part (only NumPy's ComplexWarning) and read
    text as numbers. Oracle: the dtype named in a one-line error."""
    loaded = load_classifier(trained[0])
    with pytest.raises(ValueError, match=rf"^sequence 1 has dtype {values.dtype}, not real "
                                         rf"numbers; convert it to float") as info:
        loaded.predict([np.zeros((5, 2)), values])
    assert "\n" not in str(info.value)


def test_predict_takes_tensors_as_it_takes_arrays(trained):
    """A torch tensor failed with AttributeError ('Tensor' object has no attribute 'astype').
    Oracle: the same sequences as NumPy arrays."""
    loaded = load_classifier(trained[0])
    sequences = [np.random.default_rng(k).normal(size=(4 + k, 2)) for k in range(3)]
    names, probabilities = loaded.predict(sequences)
    tensor_names, tensor_probabilities = loaded.predict([torch.from_numpy(s) for s in sequences])
    assert tensor_names == names
    np.testing.assert_array_equal(tensor_probabilities, probabilities)


def test_reported_metrics_equal_an_independent_computation(files, trained):
    run_dir, result = trained
    loaded = load_classifier(run_dir)
    sequences, names = make_sequences(60, seed=2)  # the test file's contents
    predicted, probabilities = loaded.predict(sequences)
    assert probabilities.shape == (60, 3)
    assert_close(torch.from_numpy(probabilities.sum(axis=1)), torch.ones(60))
    labels = np.array([loaded.class_names.index(n) for n in names])
    predictions = np.array([loaded.class_names.index(n) for n in predicted])
    accuracy, macro_f1 = independent_scores(labels, predictions, 3)
    assert result["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert result["test"]["macro_f1"] == pytest.approx(macro_f1, abs=1e-12)
    matrix = np.array(result["test"]["confusion"])
    assert matrix.sum() == 60 and np.trace(matrix) == round(accuracy * 60)


def test_checkpoint_load_and_evaluate_reproduce_the_test_scores(files, trained):
    run_dir, result = trained
    evaluated = evaluate_classifier(run_dir)
    assert evaluated["accuracy"] == result["test"]["accuracy"]
    assert evaluated["macro_f1"] == result["test"]["macro_f1"]
    assert evaluated["loss"] == pytest.approx(result["test"]["loss"], rel=1e-6)
    on_file = evaluate_classifier(run_dir, data=files["test"])
    assert on_file["accuracy"] == result["test"]["accuracy"]
    validation = evaluate_classifier(run_dir, split="validation")
    assert validation["loss"] == pytest.approx(result["validation"]["loss"], rel=1e-6)


def test_without_a_validation_part_the_training_sequences_are_checked(files, tmp_path):
    config = small_config(files, max_steps=4, eval_every=2)
    config.data.validation_fraction = 0.0
    result = train_classifier(config, tmp_path / "run", notify=quiet)
    assert result["split"] == {"train": 90, "validation": 0, "test": 60}
    loaded = load_classifier(tmp_path / "run")
    sequences, names = make_sequences(90, seed=1)  # the training file's contents
    labels = np.array([loaded.class_names.index(n) for n in names])
    on_train = score(loaded.model, loaded.tensors(sequences, labels))
    assert result["validation"]["loss"] == pytest.approx(on_train["loss"], rel=1e-5)
    assert result["validation"]["accuracy"] == on_train["accuracy"]
    with pytest.raises(ValueError, match="no validation part"):
        evaluate_classifier(tmp_path / "run", split="validation")


def test_normalization_uses_training_statistics_only(files):
    config = small_config(files).data
    data = prepare_data(config, seed=0)
    steps = np.concatenate(data.train.sequences)  # validation and test steps excluded
    assert np.allclose(data.normalizer.mean, steps.mean(axis=0))
    assert np.allclose(data.normalizer.std, steps.std(axis=0))
    restored = Normalizer.from_dict(json.loads(json.dumps(data.normalizer.to_dict())))
    assert np.array_equal(restored(steps), data.normalizer(steps))


def test_stratified_split_is_seeded_and_keeps_class_shares():
    labels = np.repeat(np.arange(3), [30, 20, 10])
    train, validation = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[validation]).tolist() == [6, 4, 2]
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(60))
    again = stratified_split(labels, 0.2, seed=3)[1]
    assert np.array_equal(validation, again)
    assert not np.array_equal(validation, stratified_split(labels, 0.2, seed=4)[1])


@pytest.mark.parametrize("fraction", [0.2, 0.6, 0.9])
def test_stratified_split_keeps_every_class_in_training(fraction):
    """A one-member class went wholly to validation when round(fraction) was 1 (fraction >
    0.5), and with only such classes the training part was empty (an IndexError)."""
    labels = np.array([0, 0, 0, 0, 0, 1, 2, 3, 3])
    train, validation = stratified_split(labels, fraction, seed=0)
    assert sorted(np.unique(labels[train]).tolist()) == [0, 1, 2, 3]
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(9))
    assert stratified_split(np.arange(4), fraction, seed=0)[0].tolist() == [0, 1, 2, 3]


def test_a_channel_varying_on_a_tiny_scale_is_scaled_and_a_constant_one_centred():
    """std > 1e-8 was absolute: a channel in farads (std 5e-9) reached the model as ~1e-9."""
    rng = np.random.default_rng(0)
    sequences = [np.stack([rng.normal(3.0, 2.0, 50), rng.normal(0.0, 5e-9, 50),
                           np.full(50, 7.25)], axis=1) for _ in range(4)]
    normalized = np.concatenate([Normalizer.fit(sequences)(s) for s in sequences])
    assert np.allclose(normalized.std(axis=0), [1.0, 1.0, 0.0], atol=1e-5)
    assert np.allclose(normalized.mean(axis=0), 0.0, atol=1e-5)


def test_a_channel_whose_spread_underflows_is_centred_not_divided_by_zero():
    """Values 0 and 1e-200 differ, but their std squares to 0: dividing by it gave inf and NaN.
    Oracle: such a channel is treated like a constant one (scale 1), and it is the same rule
    the forecaster's scaler uses."""
    from rnnkit.tasks.forecast.windows import Scaler

    sequences = [np.array([[0.0, 1.0], [1e-200, 2.0]]), np.array([[0.0, 3.0], [1e-200, 4.0]])]
    normalizer = Normalizer.fit(sequences)
    normalized = np.concatenate([normalizer(s) for s in sequences])
    assert np.isfinite(normalized).all()
    assert normalizer.std[0] == 1.0 and np.all(normalized[:, 0] == 0.0)
    scaler = Scaler.fit(np.concatenate(sequences))
    np.testing.assert_array_equal(normalizer.mean, scaler.mean)
    np.testing.assert_array_equal(normalizer.std, scaler.std)


def test_a_split_keeps_each_sequences_csv_id():
    """Oracle: the ids of the sequences each part holds, looked up by their contents."""
    from rnnkit.data.sequences import SequenceSet
    from rnnkit.tasks.classify.data import subset

    sequences = [np.full((2, 1), float(k)) for k in range(6)]
    data = SequenceSet(sequences, np.array([0, 1, 0, 1, 0, 1]), ["a", "b"], "file",
                       ids=[f"id{k}" for k in range(6)])
    part = subset(data, np.array([4, 1]), "validation")
    assert part.ids == [f"id{int(s[0, 0])}" for s in part.sequences] == ["id4", "id1"]


def test_a_channel_far_from_zero_is_scaled():
    """A threshold relative to the mean (std > 1e-6 |mean|) left a channel of time stamps
    (about 1.7e9, spread 600 s) unscaled, reaching the model as values in the hundreds."""
    rng = np.random.default_rng(1)
    sequences = [np.stack([1.7e9 + rng.uniform(0.0, 600.0, 40), rng.normal(0.0, 1.0, 40)],
                          axis=1) for _ in range(3)]
    normalizer = Normalizer.fit(sequences)
    steps = np.concatenate(sequences).astype(np.float64)
    np.testing.assert_allclose(normalizer.std, steps.std(axis=0))
    normalized = np.concatenate([normalizer(s) for s in sequences])
    assert np.allclose(normalized.std(axis=0), 1.0, atol=1e-4)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_a_padded_batch_gives_each_sequence_its_own_logits(cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(3, 4, ModelConfig(cell=cell, hidden_size=6, layers=2,
                                                 bidirectional=bidirectional, pooling=pooling,
                                                 attention_size=5, dropout=0.0)).eval()
    lengths = torch.tensor([5, 1, 9, 3])
    x = torch.randn(4, 9, 3) * 10.0  # garbage past each length, where it must not matter
    with torch.no_grad():
        batched = model(x, lengths)
        alone = torch.cat([model(x[i:i + 1, :n], lengths[i:i + 1])
                           for i, n in enumerate(lengths.tolist())])
    assert_close(batched, alone, what=f"{cell} bidirectional={bidirectional} {pooling}")


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_torch_layers_give_the_same_logits_with_the_same_weights(cell, pooling):
    torch.manual_seed(1)
    config = ModelConfig(cell=cell, hidden_size=7, layers=2, pooling=pooling, dropout=0.0)
    ours = SequenceClassifier(4, 3, config).eval()
    theirs = SequenceClassifier(4, 3, ModelConfig(**{**vars(config),
                                                     "implementation": "torch"})).eval()
    theirs.load_state_dict(ours.state_dict())
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 4)
    with torch.no_grad():
        assert_close(ours(x, lengths), theirs(x, lengths), what=f"{cell} {pooling}")


def test_interrupted_and_resumed_equals_uninterrupted(files, tmp_path, monkeypatch):
    config = small_config(files, max_steps=24, eval_every=8)
    whole = train_classifier(config, tmp_path / "whole", notify=quiet)
    original = classify_task._batch_loss
    ctrl_c_at_call(monkeypatch, classify_task, "_batch_loss", 11)
    first = train_classifier(config, tmp_path / "split", notify=quiet)
    assert first["status"] == "interrupted" and first["steps"] == 11
    assert first["test"] is None  # Ctrl-C stops there: no test score
    monkeypatch.setattr(classify_task, "_batch_loss", original)
    second = train_classifier(config, tmp_path / "split", resume=True, notify=quiet)
    assert second["steps"] == whole["steps"] == 24
    assert second["validation"] == whole["validation"]
    assert second["test"] == whole["test"]


def test_resuming_on_training_data_whose_values_changed_is_refused(tmp_path):
    """Same file, same classes, other numbers: --resume refitted the normalizer and trained on
    under it without a word (review 2026-12-06). Oracle: the run folder's files, untouched by
    the refused resume, and a resume on the data as it was."""
    sequences, labels = make_sequences(60, seed=1)
    files = {"train": save_npz(tmp_path / "train.npz", sequences, labels),
             "test": save_npz(tmp_path / "test.npz", *make_sequences(20, seed=2))}
    train_classifier(small_config(files, max_steps=8), tmp_path / "run", notify=quiet)
    before = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*"))
    save_npz(tmp_path / "train.npz", [s * 2.0 for s in sequences], labels)
    with pytest.raises(ValueError) as info:
        train_classifier(small_config(files, max_steps=12), tmp_path / "run", resume=True,
                         notify=quiet)
    assert "\n" not in str(info.value) and "training data differs" in str(info.value)
    assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*")) == before
    save_npz(tmp_path / "train.npz", sequences, labels)
    resumed = train_classifier(small_config(files, max_steps=12), tmp_path / "run",
                               resume=True, notify=quiet)
    assert resumed["steps"] == 12


def test_balanced_class_weights_follow_n_over_k_times_count():
    weights = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4, "balanced")
    assert_close(weights, torch.tensor([6 / 12, 6 / 4, 6 / 8, 0.0]))
    assert class_weights(np.array([0, 1]), 2, "none") is None


def one_line_error(error_type, call, *words):
    with pytest.raises(error_type) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_unknown_dataset_name_is_a_one_line_error_without_network(tmp_path):
    config = ClassifyConfig(data=DataConfig(data="NoSuchSet"))
    one_line_error(SequenceDataError, lambda: train_classifier(config, tmp_path, notify=quiet),
                   "NoSuchSet", "JapaneseVowels", "never downloaded")


def test_nan_in_features_is_a_one_line_error(files, tmp_path):
    sequences, labels = make_sequences(10, seed=5)
    sequences[3][2, 1] = np.nan
    config = small_config(files)
    config.data.data = save_npz(tmp_path / "nan.npz", sequences, labels)
    one_line_error(SequenceDataError, lambda: train_classifier(config, tmp_path / "run",
                                                               notify=quiet),
                   "sequence 3", "NaN", "step 2, channel 1")


def test_unknown_pooling_is_a_one_line_error(files, tmp_path):
    config = small_config(files)
    config.model.pooling = "median"
    one_line_error(ValueError, lambda: train_classifier(config, tmp_path, notify=quiet),
                   "model.pooling", "'median'", "attention")


def test_test_file_with_other_channels_is_a_one_line_error(files, tmp_path):
    config = small_config(files)
    config.data.test = save_npz(tmp_path / "wide.npz", *make_sequences(6, seed=6, channels=3))
    one_line_error(SequenceDataError, lambda: train_classifier(config, tmp_path / "run",
                                                               notify=quiet),
                   "3 channels", "trained on 2")


def test_test_label_outside_the_training_classes_is_a_one_line_error(files, tmp_path):
    config = small_config(files)
    config.data.test = save_npz(tmp_path / "other.npz",
                                *make_sequences(6, seed=7, names=["low", "mid", "extreme"]))
    one_line_error(SequenceDataError, lambda: train_classifier(config, tmp_path / "run",
                                                               notify=quiet),
                   "'extreme'", "not a class of the training data")


def test_numeric_labels_written_another_way_are_the_same_class(tmp_path):
    """A run trained on labels saved as floats (classes "0.0", "1.0", "2.0") scores a file whose
    labels were saved as integers, and the other way round: "1" is the class "1.0". Oracle: the
    evaluation of the same file with the labels written as in training (identical numbers)."""
    sequences, names = make_sequences(90, seed=1)
    test_sequences, test_names = make_sequences(30, seed=2)
    code = {"low": 0, "mid": 1, "high": 2}
    as_ints = lambda labels: np.array([code[n] for n in labels])
    for trained_as, scored_as in ((np.float64, np.int64), (np.int64, np.float64)):
        folder = tmp_path / np.dtype(trained_as).name
        folder.mkdir()
        train = save_npz(folder / "train.npz", sequences, as_ints(names).astype(trained_as))
        same = save_npz(folder / "same.npz", test_sequences,
                        as_ints(test_names).astype(trained_as))
        other = save_npz(folder / "other.npz", test_sequences,
                         as_ints(test_names).astype(scored_as))
        config = small_config({"train": train, "test": other}, max_steps=20)
        result = train_classifier(config, folder / "run", notify=quiet)
        expected = evaluate_classifier(folder / "run", data=same)
        scored = evaluate_classifier(folder / "run", data=other)
        timing = {"data": None, "seconds": None}  # the file scored, and how long it took
        assert {**scored, **timing} == {**expected, **timing}
        assert result["test"]["accuracy"] == expected["accuracy"]


def test_a_number_matching_two_classes_is_not_guessed(tmp_path):
    """Classes "1" and "01" are both worth 1, so a label "1.0" stays unknown, as does a
    number of no class's value."""
    from rnnkit.tasks.classify.data import load_split

    sequences, _ = make_sequences(4, seed=3)
    for labels, classes, unknown in ((["1.0", "1", "01", "1"], ["1", "01"], "'1.0'"),
                                     ([2.5, 1.0, 2.0, 1.0], ["1", "2"], "'2.5'")):
        path = save_npz(tmp_path / "labels.npz", sequences, np.array(labels))
        one_line_error(SequenceDataError, lambda: load_split(path, "test", classes),
                       unknown, "not a class of the training data")


def test_a_run_folder_another_process_holds_is_refused_before_anything_is_written(files, trained):
    """The task itself holds its run folder while it trains (the CLI checks it too): a library
    call into a folder another process trains in raises. Oracle: a second process holding the
    folder's lock, and the folder's listing before and after."""
    from run_holder import Holder

    from rnnkit.training import RunFolderBusyError

    run_dir, _ = trained
    before = sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    holder = Holder(run_dir)
    try:
        with pytest.raises(RunFolderBusyError, match="another process is training in"):
            train_classifier(small_config(files), run_dir, resume=True, notify=quiet)
    finally:
        holder.release()
    assert sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == before


def test_a_run_trained_before_ts_labels_kept_their_case_still_reads_its_data(tmp_path):
    """Runs trained on a .ts file or a bundled set saved aeon's rewritten class names
    ("badminton", not "Badminton"). Their .ts data, now read as written, is matched to them;
    nothing else is case-folded. Oracle: aeon's own reading of the file's labels."""
    aeon = pytest.importorskip("aeon.datasets", reason="the bundled sets need aeon")
    from rnnkit.data.sequences import load_sequences
    from rnnkit.tasks.classify.data import load_split

    _, aeon_labels = aeon.load_classification("BasicMotions", split="test")
    saved = sorted(set(str(v) for v in aeon_labels))  # what such a run saved
    assert saved == ["badminton", "running", "standing", "walking"]
    part = load_split("BasicMotions", "test", saved, aeon_forms=True)
    assert part.class_names == saved
    assert [saved[k] for k in part.labels] == [str(v) for v in aeon_labels]
    # a run saved since then matches labels exactly, as it did before aeon's forms came in
    with pytest.raises(SequenceDataError, match="label 'Badminton', which is not a class"):
        load_split("BasicMotions", "test", saved)
    # and other formats are never case-folded, whatever the run
    written = load_sequences("BasicMotions", split="test")
    upper = ["sequence,label,x"] + [f"{i},{written.class_names[k]},{float(i)}"
                                    for i, k in enumerate(written.labels)]
    (tmp_path / "upper.csv").write_text("\n".join(upper) + "\n")
    with pytest.raises(SequenceDataError, match="not a class of the training data"):
        load_split(str(tmp_path / "upper.csv"), "test", saved, aeon_forms=True)


@pytest.mark.skipif(not PLOTTING, reason="the confusion matrix needs matplotlib (rnnkit[plot])")
def test_a_confusion_picture_replaces_only_an_earlier_one_of_rnnkits(files, trained, tmp_path):
    """confusion_png= replaced any file, the data file itself among them (probe, 2026-12-08).
    Oracle: the refused files' bytes before and after, and a second call over the picture
    the first one drew, which is allowed."""
    from rnnkit.training.metrics import drawn_by_rnnkit

    run_dir, _ = trained
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"\x89PNG\r\n\x1a\nnot rnnkit's")
    for path in (Path(files["test"]), notes, tmp_path / "matrix.txt"):
        before = path.read_bytes() if path.exists() else None
        with pytest.raises(ValueError) as info:
            evaluate_classifier(run_dir, confusion_png=path)
        assert "\n" not in str(info.value)
        assert (path.read_bytes() if path.exists() else None) == before
    picture = tmp_path / "matrix.png"
    first = evaluate_classifier(run_dir, confusion_png=picture)
    assert drawn_by_rnnkit(picture) and not drawn_by_rnnkit(notes)
    picture.write_bytes(picture.read_bytes() + b"trailing")  # still rnnkit's mark, other bytes
    assert evaluate_classifier(run_dir, confusion_png=picture)["accuracy"] == first["accuracy"]
    assert not picture.read_bytes().endswith(b"trailing")  # replaced by the second picture


@pytest.mark.parametrize("section, key, value, message", [
    ("data", "batch_size", 2.5, "config key 'data.batch_size' must be an integer; got 2.5"),
    ("data", "normalize", "no", "config key 'data.normalize' must be true or false; got 'no'"),
    ("data", "batch_size", True, "config key 'data.batch_size' must be an integer; got True"),
    ("model", "bidirectional", "no", "config key 'model.bidirectional' must be true or false"),
    ("train", "device", "gpu", "train.device must be a torch device such as 'cpu'"),
    ("train", "seed", 1.5, "config key 'train.seed' must be an integer; got 1.5"),
])
def test_a_config_built_in_python_is_typed_as_a_file_is(files, tmp_path, section, key, value,
                                                        message):
    """A file or --set is typed on reading; a config built in Python was not: 2.5 failed in
    slicing, "no" normalized, True was one row, and the seed and device reached numpy and torch
    raw (probe, 2026-12-08). Oracle: the same values in a config file are refused the same
    way, and the run folder is never made."""
    from rnnkit.training.config import ConfigError, resolve_config

    config = small_config(files)
    setattr(getattr(config, section), key, value)
    with pytest.raises(ValueError) as info:
        train_classifier(config, tmp_path / "run", notify=quiet)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()
    if section != "train":  # TrainConfig's own check words these; a file's reading the rest
        path = tmp_path / "config.json"
        path.write_text(json.dumps({section: {key: value}}))
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            resolve_config(ClassifyConfig, file=str(path))
