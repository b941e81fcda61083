"""The character LM task end to end on a tiny corpus: training, checkpoints, resume, generation.

Oracles: the untrained model's own loss and the uniform distribution's log V (training must
beat both), an uninterrupted run (a resumed run must equal it exactly on one thread), the
in-memory model (a reloaded checkpoint must score the same), and independent recomputation of
bits per character.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from rnnkit.data.text import CharVocabulary, CorpusError
from rnnkit.tasks.lm import task as lm_task
from rnnkit.tasks.lm.generate import generate, generate_beam
from rnnkit.tasks.lm.model import CharLanguageModel, ModelConfig
from rnnkit.tasks.lm.task import (
    LMConfig, bits_per_character, compressor_bars, evaluate_lm, load_lm, train_lm,
)
from rnnkit.training import NonFiniteLossError, TrainConfig, load_checkpoint

from corpora import tiny_text
from interrupts import ctrl_c_at_call
from pictures import assert_picture

@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_text(), encoding="utf-8")
    return str(path)


def small_config(corpus: str, **train) -> LMConfig:
    config = LMConfig()
    config.data.corpus = corpus
    config.data.batch_size, config.data.window = 8, 24
    config.data.eval_rows, config.data.eval_window = 4, 64
    config.model = ModelConfig(cell="lstm", embedding_dim=12, hidden_size=24, dropout=0.1)
    settings = dict(max_steps=40, minutes=None, eval_every=10, log_every=5, warmup_steps=5,
                    learning_rate=1e-2, progress=False)
    settings.update(train)
    config.train = TrainConfig(**settings)
    return config


def quiet(_line: str) -> None:
    pass


def test_training_lowers_the_loss_below_the_untrained_model_and_uniform(corpus, tmp_path):
    config = small_config(corpus, max_steps=120, eval_every=40)
    data = lm_task.prepare_data(config.data)
    torch.manual_seed(config.train.seed)
    untrained = CharLanguageModel(len(data.vocabulary), config.model).eval()
    valid = data.vocabulary.encode(data.split.validation, unknown="skip")
    before = bits_per_character(untrained, valid, rows=4, window=64)["bpc"]
    result = train_lm(config, tmp_path / "run", notify=quiet)
    uniform = math.log2(len(data.vocabulary))
    assert result["validation"]["bpc"] < before - 1.0
    assert result["test"]["bpc"] < uniform - 1.0
    history = [r for r in load_metrics(tmp_path / "run") if r["split"] == "train"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert_picture(tmp_path / "run" / "curves.png")


def load_metrics(run_dir):
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_bits_per_character_equals_an_independent_recomputation():
    torch.manual_seed(0)
    model = CharLanguageModel(7, ModelConfig(hidden_size=8, embedding_dim=4)).eval()
    tokens = torch.randint(7, (203,))
    got = bits_per_character(model, tokens, rows=1, window=50)
    with torch.no_grad():
        logits, _ = model(tokens[None, :-1])  # one pass over the whole row, no windows
    nats = F.cross_entropy(logits[0], tokens[1:], reduction="sum").item()
    assert got["characters"] == 202
    assert got["bpc"] == pytest.approx(nats / 202 / math.log(2), rel=1e-5)
    assert got["perplexity"] == pytest.approx(2 ** got["bpc"])


def test_bits_per_character_scores_without_dropout_and_keeps_the_mode():
    # Oracle: the same model scored in eval mode. In train mode its dropout made the held-out
    # score change from call to call.
    torch.manual_seed(0)
    model = CharLanguageModel(7, ModelConfig(hidden_size=8, embedding_dim=4, dropout=0.5))
    tokens = torch.randint(7, (203,))
    scored_in_train_mode = bits_per_character(model, tokens, rows=2, window=50)
    assert model.training
    model.eval()
    assert scored_in_train_mode == bits_per_character(model, tokens, rows=2, window=50)
    assert not model.training


def test_checkpoint_round_trip_gives_identical_evaluation(corpus, tmp_path):
    config = small_config(corpus, max_steps=20)
    result = train_lm(config, tmp_path / "run", notify=quiet)
    loaded = load_lm(tmp_path / "run")
    data = lm_task.prepare_data(config.data, vocabulary=loaded.vocabulary)
    tokens = loaded.vocabulary.encode(data.split.test, unknown="skip")
    direct = bits_per_character(loaded.model, tokens, rows=4, window=64)
    assert evaluate_lm(tmp_path / "run")["bpc"] == direct["bpc"] == result["test"]["bpc"]


def _parameters(run_dir):
    return load_checkpoint(run_dir, which="last").model_state


@pytest.mark.usefixtures("single_thread")
def test_interrupted_and_resumed_equals_uninterrupted(corpus, tmp_path, monkeypatch):
    config = small_config(corpus)
    config.data.random_length = True  # the window draws must be replayed too
    whole = train_lm(config, tmp_path / "whole", notify=quiet)

    original = lm_task._lm_loss
    ctrl_c_at_call(monkeypatch, lm_task, "_lm_loss", 17)
    first = train_lm(config, tmp_path / "split", notify=quiet)
    assert first["status"] == "interrupted" and first["steps"] == 17
    assert first["test"] is None  # Ctrl-C stops there: no test score
    monkeypatch.setattr(lm_task, "_lm_loss", original)
    second = train_lm(config, tmp_path / "split", resume=True, notify=quiet)

    assert second["steps"] == whole["steps"] == 40
    assert second["test"] == whole["test"]
    assert second["validation"] == whole["validation"]
    expected, got = _parameters(tmp_path / "whole"), _parameters(tmp_path / "split")
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    # The metrics file reads as one run: each step once, with the same numbers (the record at
    # step 20 averages steps 16-20 across the interruption), timings aside.
    def numbers(run):
        return [{k: v for k, v in r.items() if k not in ("elapsed", "per_second")}
                for r in load_metrics(tmp_path / run)]
    assert numbers("split") == numbers("whole")


@pytest.mark.parametrize("edit", ["shorter", "same-length"])
def test_a_corpus_edited_since_training_is_refused_on_resume_and_evaluate(corpus, tmp_path,
                                                                         edit):
    """Only the characters were compared: an edited corpus with the same characters gave
    another 90/5/5 split, so evaluate scored training text as "unseen" and a resumed run
    trained on the old test text. Oracle: the split the run recorded."""
    train_lm(small_config(corpus, max_steps=5), tmp_path / "run", notify=quiet)
    text = Path(corpus).read_text(encoding="utf-8")
    # the same characters: drop the first tenth, or swap its two halves
    tenth = len(text) // 10
    edited = text[tenth:] if edit == "shorter" else text[tenth:2 * tenth] + text[:tenth] + \
        text[2 * tenth:]
    assert sorted(set(edited)) == sorted(set(text)) and edited != text
    Path(corpus).write_text(edited, encoding="utf-8")
    with pytest.raises(ValueError, match="changed since the run was trained") as info:
        evaluate_lm(tmp_path / "run")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="differs from the one the run") as info:
        train_lm(small_config(corpus, max_steps=8), tmp_path / "run", resume=True, notify=quiet)
    assert "\n" not in str(info.value)
    # another text given on purpose is scored as asked
    assert evaluate_lm(tmp_path / "run", corpus=corpus)["bpc"] > 0


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_nonfinite_loss_stops_and_leaves_the_last_checkpoint_untouched(corpus, tmp_path,
                                                                        monkeypatch):
    config = small_config(corpus, eval_every=5)
    run = tmp_path / "run"
    calls = {"n": 0}
    before_nan = {}
    original = lm_task._lm_loss

    def nan_at_step_8(model, window, carry):
        calls["n"] += 1
        output = original(model, window, carry)
        if calls["n"] == 8:
            before_nan.update(_digest(run / "checkpoints"))
            return output._replace(loss=output.loss * float("nan"))
        return output

    monkeypatch.setattr(lm_task, "_lm_loss", nan_at_step_8)
    with pytest.raises(NonFiniteLossError, match="step 8") as caught:
        train_lm(config, run, notify=quiet)
    assert "\n" not in str(caught.value)
    assert before_nan and _digest(run / "checkpoints") == before_nan
    assert load_checkpoint(run).step == 5


def test_nonfinite_loss_can_skip_the_step_and_count_it(corpus, tmp_path, monkeypatch):
    config = small_config(corpus, max_steps=15, on_nonfinite="skip")
    calls = {"n": 0}
    original = lm_task._lm_loss

    def nan_at_call_4(model, window, carry):
        calls["n"] += 1
        output = original(model, window, carry)
        return output._replace(loss=output.loss * float("inf")) if calls["n"] == 4 else output

    monkeypatch.setattr(lm_task, "_lm_loss", nan_at_call_4)
    result = train_lm(config, tmp_path / "run", notify=quiet)
    assert result["skipped_steps"] == 1 and result["steps"] == 15
    assert math.isfinite(result["test"]["bpc"])


def test_time_budget_stops_the_run(corpus, tmp_path):
    config = small_config(corpus, max_steps=None, minutes=0.02)  # 1.2 s
    result = train_lm(config, tmp_path / "run", notify=quiet)
    assert result["status"] == "time budget"
    assert result["train_seconds"] >= 1.2


def test_bf16_autocast_trains_on_cpu(corpus, tmp_path):
    config = small_config(corpus, max_steps=10, precision="bf16")
    result = train_lm(config, tmp_path / "run", notify=quiet)
    assert math.isfinite(result["test"]["bpc"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    path = folder / "corpus.txt"
    path.write_text(tiny_text(), encoding="utf-8")
    train_lm(small_config(str(path), max_steps=30), folder / "run", notify=quiet)
    return load_lm(folder / "run")


def test_generation_is_deterministic_under_a_seed(trained):
    first = "".join(generate(trained, "And the", length=60, seed=3))
    again = "".join(generate(trained, "And the", length=60, seed=3))
    other = "".join(generate(trained, "And the", length=60, seed=4))
    assert first == again and len(first) == 60
    assert first != other
    assert set(first) <= set(trained.vocabulary.characters)


@pytest.mark.parametrize("length", [0, 2.5, True])
def test_a_bad_length_fails_when_generate_is_called(trained, length):
    """2.5 passed the early check and failed with a TypeError at the first next()."""
    with pytest.raises(ValueError, match="length must be an integer >= 1"):
        generate(trained, "And", length=length)
    with pytest.raises(ValueError, match="length must be an integer >= 1"):
        generate_beam(trained, "And", length=length, beam_width=2)



def test_a_numpy_integer_length_is_taken(trained):
    """The length check refused np.int64, which worked before it and which beam_search
    takes. Oracle: the same calls with a Python int."""
    import numpy as np

    assert "".join(generate(trained, "And", length=np.int64(5), seed=1)) == \
        "".join(generate(trained, "And", length=5, seed=1))
    assert generate_beam(trained, "And", length=np.int64(3), beam_width=2) == \
        generate_beam(trained, "And", length=3, beam_width=2)


def test_generation_leaves_the_callers_grad_mode_and_training_flag_alone(trained):
    """The streaming generator held no_grad across its yields, so the caller's code between
    two characters built no graph (and two interleaved generators left it off for good); and
    both decoders left a training model in eval mode."""
    model = trained.model
    model.train()
    try:
        first = generate(trained, "And", length=5, seed=1)
        second = generate(trained, "The", length=5, seed=2)
        next(first), next(second)
        assert torch.is_grad_enabled()
        assert (torch.ones(1, requires_grad=True) * 2).requires_grad
        list(first), list(second)
        assert torch.is_grad_enabled() and model.training
        stopped = generate(trained, "And", length=50)
        next(stopped)
        stopped.close()  # the caller stops early
        assert model.training
        generate_beam(trained, "And", length=4, beam_width=2)
        assert model.training and torch.is_grad_enabled()
    finally:
        model.eval()


def test_greedy_sampling_equals_beam_width_one_and_a_plain_argmax_loop(trained):
    greedy = "".join(generate(trained, "The", length=25, temperature=0.0))
    model, vocabulary = trained.model, trained.vocabulary
    tokens = vocabulary.encode("The")[None]
    text = []
    with torch.no_grad():
        logits, state = model(tokens)
        for _ in range(25):
            token = logits[0, -1].argmax()
            text.append(vocabulary.decode(token.view(1)))
            logits, state = model(token.view(1, 1), state)
    assert greedy == "".join(text) == generate_beam(trained, "The", length=25, beam_width=1)


def test_prompt_with_unknown_characters_is_an_error_or_skipped(trained):
    with pytest.raises(CorpusError, match="never saw") as caught:
        generate(trained, "héllo€", length=5)
    assert "€" in str(caught.value) and "\n" not in str(caught.value)
    skipped = "".join(generate(trained, "héllo€", length=20, seed=1, unknown="skip"))
    plain = "".join(generate(trained, "hllo", length=20, seed=1))
    assert skipped == plain


def test_compressor_bars_match_the_compressors_directly():
    import bz2
    import zlib

    text = tiny_text(5000)
    bars = compressor_bars(text)
    assert bars["zlib-9"] == 8 * len(zlib.compress(text.encode(), 9)) / len(text)
    assert bars["bzip2-9"] == 8 * len(bz2.compress(text.encode(), 9)) / len(text)


def test_vocabulary_is_stored_with_the_checkpoint(trained, tmp_path):
    text = tiny_text()
    split = lm_task.split_text(text)
    assert trained.vocabulary == CharVocabulary.from_text(split.train)


@pytest.mark.parametrize("settings, match", [
    ({"hidden_size": 2**63}, "model.hidden_size must be at most 2,147,483,647; got 9,223,"),
    ({"embedding_dim": 2**62}, "model.embedding_dim must be at most 2,147,483,647; got 4,"),
    ({"layers": 10**12}, "model.layers must be at most 1,024; got 1,000,000,000,000"),
    ({"layers": 0}, "model.layers must be >= 1; got 0"),
])
def test_sizes_past_any_machine_are_one_line_errors(settings, match):
    """2**63 failed with torch's overflow traceback, and 10**12 layers were built one by one
    until memory ran out."""
    with pytest.raises(ValueError, match=f"^{match}") as excinfo:
        CharLanguageModel(10, ModelConfig(**settings))
    assert "\n" not in str(excinfo.value)


def test_tied_weights_need_equal_sizes_and_share_the_matrix():
    with pytest.raises(ValueError, match="embedding_dim == hidden_size"):
        CharLanguageModel(10, ModelConfig(embedding_dim=8, hidden_size=16, tie_weights=True))
    model = CharLanguageModel(10, ModelConfig(embedding_dim=16, hidden_size=16, tie_weights=True))
    assert model.head.weight is model.embedding.weight


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_train(corpus, tmp_path, cell):
    config = small_config(corpus, max_steps=10)
    config.model.cell = cell
    result = train_lm(config, tmp_path / "run", notify=quiet)
    assert math.isfinite(result["test"]["bpc"])


def test_rnnkit_and_torch_layers_give_the_same_model_function(corpus):
    """The benchmark swaps in torch.nn.LSTM: with the same weights it must compute the same."""
    torch.manual_seed(0)
    ours = CharLanguageModel(11, ModelConfig(hidden_size=16, embedding_dim=8, layers=2)).eval()
    theirs = CharLanguageModel(11, ModelConfig(hidden_size=16, embedding_dim=8, layers=2,
                                               implementation="torch")).eval()
    theirs.load_state_dict(ours.state_dict())
    tokens = torch.randint(11, (3, 20))
    torch.testing.assert_close(ours(tokens)[0], theirs(tokens)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule, lr", [("sgd", 0.5), ("rms", 1e-2)])
def test_dynamic_evaluation_is_causal_and_adapts(rule, lr):
    from rnnkit.tasks.lm.dynamic import dynamic_bits_per_character

    torch.manual_seed(0)
    model = CharLanguageModel(9, ModelConfig(hidden_size=16, embedding_dim=8)).eval()
    before = [p.detach().clone() for p in model.parameters()]
    tokens = torch.randint(9, (7,)).repeat(170)  # a short repeating pattern: adaptation pays
    static = bits_per_character(model, tokens, rows=2, window=50)
    # lr 0: nothing is learned, so the score is the static one.
    frozen = dynamic_bits_per_character(model, tokens, rows=2, window=50, lr=0.0, rule=rule)
    assert frozen["bpc"] == pytest.approx(static["bpc"], rel=1e-6)
    # Causal: the first window is scored before any update, so with one window in all the
    # score cannot depend on the learning rate.
    short = tokens[:40]
    assert dynamic_bits_per_character(model, short, rows=1, window=64, lr=1.0,
                                      rule=rule)["bpc"] == \
        pytest.approx(bits_per_character(model, short, rows=1, window=64)["bpc"], rel=1e-6)
    adapted = dynamic_bits_per_character(model, tokens, rows=2, window=50, lr=lr, rule=rule)
    assert adapted["bpc"] < static["bpc"] - 0.1
    for parameter, original in zip(model.parameters(), before):
        assert torch.equal(parameter, original)  # the caller's model is untouched


def test_rms_rule_first_step_is_lr_times_the_gradient_sign():
    """Oracle: after one update, v = (1 - beta) g^2, bias-corrected to g^2, so the step is
    lr * g / |g| = lr * sign(g) for every weight with a nonzero gradient."""
    import copy

    from rnnkit.tasks.lm.dynamic import dynamic_bits_per_character

    torch.manual_seed(0)
    model = CharLanguageModel(9, ModelConfig(hidden_size=8, embedding_dim=4)).eval()
    tokens = torch.randint(9, (2 * 64 + 1,))
    # Two windows: the second is scored after one update; compare with a hand-made update.
    result = dynamic_bits_per_character(model, tokens, rows=1, window=64, lr=1e-2, rule="rms")
    stepped = copy.deepcopy(model)
    logits, state = stepped(tokens[None, :64])
    F.cross_entropy(logits.reshape(-1, 9), tokens[1:65]).backward()
    with torch.no_grad():
        for p in stepped.parameters():
            p.sub_(1e-2 * p.grad / (p.grad.abs() + 1e-8))
        state = tuple(s.detach() for s in state)
        second, _ = stepped(tokens[None, 64:128], state)
        first = F.cross_entropy(model(tokens[None, :64])[0].reshape(-1, 9), tokens[1:65],
                                reduction="sum")
        expected = first + F.cross_entropy(second.reshape(-1, 9), tokens[65:129],
                                           reduction="sum")
    assert result["loss"] == pytest.approx(expected.item() / 128, rel=1e-5)


def test_sgd_rule_with_decay_follows_the_documented_formula():
    """Oracle: theta <- theta - lr g + decay (theta_trained - theta), by hand over three
    windows. The pull was taken after the gradient step, which shrank the step by 1 - decay
    (even the first, where the pull is zero)."""
    import copy

    from rnnkit.tasks.lm.dynamic import dynamic_bits_per_character

    torch.manual_seed(0)
    model = CharLanguageModel(9, ModelConfig(hidden_size=8, embedding_dim=4)).eval()
    tokens = torch.randint(9, (3 * 32 + 1,))
    lr, decay = 0.5, 0.5
    result = dynamic_bits_per_character(model, tokens, rows=1, window=32, lr=lr, decay=decay)
    stepped = copy.deepcopy(model)
    trained = [p.detach().clone() for p in model.parameters()]
    total, state = 0.0, None
    for start in range(0, 96, 32):
        logits, state = stepped(tokens[None, start:start + 32], state)
        loss = F.cross_entropy(logits.reshape(-1, 9), tokens[start + 1:start + 33],
                               reduction="sum")
        total += loss.item()
        stepped.zero_grad()
        (loss / 32).backward()
        with torch.no_grad():
            for p, anchor in zip(stepped.parameters(), trained):
                p.copy_(p - lr * p.grad + decay * (anchor - p))
        state = tuple(s.detach() for s in state)
    assert result["loss"] == pytest.approx(total / 96, rel=1e-5)


def test_dynamic_evaluation_rejects_an_unknown_rule():
    from rnnkit.tasks.lm.dynamic import dynamic_bits_per_character

    model = CharLanguageModel(9, ModelConfig(hidden_size=8, embedding_dim=4))
    with pytest.raises(ValueError, match="rule must be one of"):
        dynamic_bits_per_character(model, torch.randint(9, (100,)), rows=1, rule="adam")


@pytest.mark.parametrize("key, value, message", [
    ("rule", "adam", "dynamic.rule must be one of"),
    ("lr", -1.0, "dynamic.lr must be a finite number >= 0"),
    ("lr", float("nan"), "dynamic.lr must be a finite number >= 0"),
    ("decay", float("inf"), "dynamic.decay must be a finite number >= 0"),
    ("rows", 0, "dynamic.rows must be a positive int"),
    # a float or a bool passed, trained the whole run and then failed inside the scoring;
    # the config's types are now checked first, as a config file's are
    ("window", 2.5, "config key 'dynamic.window' must be an integer; got 2.5"),
    ("rows", 1.5, "config key 'dynamic.rows' must be an integer; got 1.5"),
    ("window", True, "config key 'dynamic.window' must be an integer; got True"),
    ("lr", "1e-3", "config key 'dynamic.lr' must be a number; got '1e-3'"),
])
def test_a_bad_dynamic_setting_fails_before_training(corpus, tmp_path, key, value, message):
    config = small_config(corpus)
    setattr(config.dynamic, key, value)
    with pytest.raises(ValueError, match=message):
        lm_task.train_lm(config, tmp_path / "run", notify=quiet)
    assert not (tmp_path / "run").exists()  # nothing was trained or written


def test_a_non_finite_dynamic_rate_for_evaluate_is_refused(tmp_path):
    """evaluate's --dynamic-lr overrides the saved rate; a NaN one used to score nan bpc."""
    with pytest.raises(ValueError, match="dynamic.lr must be a finite number"):
        lm_task.evaluate_lm(tmp_path / "no-run-needed", dynamic_lr=float("nan"))


def test_a_diverging_dynamic_score_at_the_end_of_training_is_noted_not_fatal(corpus, tmp_path):
    """The run and its static score stand; the note says how to score again. Oracle: the
    static score of the saved best checkpoint, which evaluate_lm gives, and the NaN itself."""
    config = small_config(corpus, max_steps=4, eval_every=2)
    config.dynamic.enabled, config.dynamic.lr = True, 1e30
    notes = []
    result = train_lm(config, tmp_path / "run", notify=notes.append)
    assert math.isnan(result["test"]["dynamic"]["bpc"])
    assert result["test"]["bpc"] == pytest.approx(lm_task.evaluate_lm(tmp_path / "run")["bpc"])
    [note] = [n for n in notes if "diverged" in n]
    assert ("dynamic evaluation diverged (nan bits per character) at dynamic.lr 1e+30" in note
            and f"--checkpoint {tmp_path / 'run'} --dynamic-lr 1e+29" in note), note


def test_the_built_in_corpus_wins_over_a_file_of_its_name(tmp_path, monkeypatch):
    """The loader takes the built-in name first, but making the config's paths absolute turned
    'kjv' into ./kjv when the working folder held such a file, and trained on that."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kjv").write_text(tiny_text(), encoding="utf-8")
    config = small_config("kjv", max_steps=1, eval_every=1)
    config.data.eval_rows, config.dynamic.enabled = 256, False  # the 200k-character test
    train_lm(config, tmp_path / "run", notify=quiet)
    saved = load_checkpoint(tmp_path / "run").meta["config"]["data"]
    assert saved["corpus"] == "kjv"
    builtin = lm_task.prepare_data(config.data)
    assert builtin.source != lm_task.prepare_data(small_config(str(tmp_path / "kjv")).data).source


def test_a_run_written_inside_its_corpus_folder_is_not_read_as_corpus(tmp_path):
    """`train lm --corpus .` puts its run below the corpus; the folder was read again after
    training (and by evaluate and --resume) with the checkpoints in it, a binary-file error.
    Oracle: the test score of the training run itself."""
    folder = tmp_path / "texts"
    folder.mkdir()
    text = tiny_text()
    (folder / "a.txt").write_text(text[: len(text) // 2], encoding="utf-8")
    (folder / "b.txt").write_text(text[len(text) // 2:], encoding="utf-8")
    config = small_config(str(folder), max_steps=20)
    config.dynamic.enabled = False
    result = train_lm(config, folder / "runs" / "lm", notify=quiet)
    assert evaluate_lm(folder / "runs" / "lm")["bpc"] == result["test"]["bpc"]


def test_a_run_in_the_corpus_folder_itself_is_refused_before_anything_is_written(tmp_path):
    """`train lm --corpus . --out .` trained, then read its own checkpoints as corpus files
    (and evaluate and --resume failed the same way). Oracle: the folder's listing before."""
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(tiny_text(), encoding="utf-8")
    config = small_config(str(folder), max_steps=2)
    with pytest.raises(ValueError, match="is the corpus folder; choose another --out"):
        train_lm(config, folder, notify=quiet)
    assert [p.name for p in folder.iterdir()] == ["a.txt"]
