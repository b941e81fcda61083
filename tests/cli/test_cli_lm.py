"""`rnnkit train lm`, `evaluate` and `generate` from the command line, and every bad input.

Oracles: the library functions the commands call (the CLI must report what they compute), a
second identical call (determinism), and file digests (an error must leave files untouched).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from one_line import assert_one_line_error
from rnnkit.cli.main import main
from rnnkit.training import load_checkpoint

from corpora import tiny_text

TINY = ["--hidden", "16", "--embedding", "8", "--batch-size", "4", "--window", "16",
        "--no-progress", "--set", "data.eval_rows=2", "--set", "train.eval_every=6"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-corpus") / "corpus.txt"
    path.write_text(tiny_text(6000), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-run") / "run"
    code = main(["train", "lm", "--corpus", str(corpus), "--steps", "12", "--out", str(out),
                 "--json", "--sample-length", "20", *TINY])
    assert code == 0
    return out


def test_train_prints_json_with_test_bpc_bars_and_a_sample(corpus, tmp_path, capsys):
    code, out, err = run(["train", "lm", "--corpus", corpus, "--steps", "6", "--out",
                          tmp_path / "run", "--json", "--sample-length", "25", *TINY], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["steps"] == 6 and result["status"] == "completed"
    assert set(result["compressors_bpc"]) >= {"zlib-9", "bzip2-9"}
    assert len(result["sample"]) == 25
    assert result["test"]["bpc"] > 0
    assert "training characters" in err  # progress notes go to stderr under --json


def test_json_stays_alone_on_stdout_with_the_progress_bar(corpus, tmp_path, capsys):
    """With the bar on, the validation lines written above it go to stderr with the bar; they
    used to go to stdout (tqdm.write's default) in front of the --json result."""
    with_bar = [a for a in TINY if a != "--no-progress"]
    code, out, err = run(["train", "lm", "--corpus", corpus, "--steps", "6", "--out",
                          tmp_path / "run", "--json", "--sample-length", "5", *with_bar], capsys)
    assert code == 0
    assert json.loads(out)["steps"] == 6
    assert "step 6: validation" in err


def test_ctrl_c_saves_and_exits_without_scoring(corpus, tmp_path, capsys, monkeypatch):
    """Ctrl-C finishes the step, saves, says how to continue and exits with 130 (128 + SIGINT);
    it used to go on to the test score, dynamic evaluation and the sample."""
    from interrupts import ctrl_c_at_call
    from rnnkit.tasks.lm import task as lm_task

    ctrl_c_at_call(monkeypatch, lm_task, "_lm_loss", 4)
    out_dir = tmp_path / "run"
    code, out, _ = run(["train", "lm", "--corpus", corpus, "--steps", "12", "--out", out_dir,
                        "--sample-length", "20", *TINY], capsys)
    assert code == 130
    assert f"interrupted at step 4; checkpoint saved, continue with --resume {out_dir}" in out
    assert "test:" not in out and "sample" not in out
    assert (out_dir / "checkpoints" / "step-00000004").is_dir()


def test_sigterm_saves_and_exits_with_143(corpus, tmp_path, capsys, monkeypatch):
    """SIGTERM (kill, timeout, a scheduler) ended the run at once, losing the steps since its
    last checkpoint. Oracle: the checkpoint of the step it came in, and 128 + SIGTERM."""
    import signal

    from interrupts import ctrl_c_at_call
    from rnnkit.tasks.lm import task as lm_task

    ctrl_c_at_call(monkeypatch, lm_task, "_lm_loss", 4, sent=signal.SIGTERM)
    out_dir = tmp_path / "run"
    code, out, _ = run(["train", "lm", "--corpus", corpus, "--steps", "12", "--out", out_dir,
                        "--sample-length", "20", *TINY], capsys)
    assert code == 143
    assert (f"interrupted by SIGTERM at step 4; checkpoint saved, continue with --resume "
            f"{out_dir}") in out
    assert "test:" not in out and (out_dir / "checkpoints" / "step-00000004").is_dir()
    # --json names the checkpoint saved as the run stopped (it said null), to --resume from
    ctrl_c_at_call(monkeypatch, lm_task, "_lm_loss", 3, sent=signal.SIGTERM)
    code, out, _ = run(["train", "lm", "--corpus", corpus, "--steps", "12", "--out",
                        tmp_path / "again", "--json", *TINY], capsys)
    result = json.loads(out)
    assert (code, result["status"], result["stop_signal"]) == (143, "interrupted", 15)
    assert result["checkpoint"] == str(tmp_path / "again" / "checkpoints" / "step-00000003")


def test_evaluate_reports_what_the_library_computes(trained_run, capsys):
    from rnnkit.tasks.lm.task import evaluate_lm

    code, out, _ = run(["evaluate", "--checkpoint", trained_run, "--json"], capsys)
    assert code == 0
    assert json.loads(out)["bpc"] == evaluate_lm(trained_run)["bpc"]
    code, out, _ = run(["evaluate", "--checkpoint", trained_run], capsys)
    assert code == 0 and "bits per character" in out


def test_generate_is_repeatable_with_a_seed(trained_run, capsys):
    argv = ["generate", "--checkpoint", trained_run, "--prompt", "And", "--length", "30",
            "--seed", "5", "--json"]
    first = json.loads(run(argv, capsys)[1])["text"]
    second = json.loads(run(argv, capsys)[1])["text"]
    assert first == second and len(first) == 30
    code, out, _ = run(["generate", "--checkpoint", trained_run, "--prompt", "And",
                        "--length", "10", "--beam", "3"], capsys)
    assert code == 0 and out.startswith("And")


def test_resume_continues_a_finished_run_to_a_larger_step_limit(corpus, tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert run(["train", "lm", "--corpus", corpus, "--steps", "6", "--out", out_dir,
                "--sample-length", "0", *TINY], capsys)[0] == 0
    code, out, err = run(["train", "lm", "--resume", out_dir, "--steps", "9", "--json",
                          "--sample-length", "0", "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads(out)["steps"] == 9
    assert "resuming from step 6" in err
    # a limit the run has already reached: nothing is trained, and that is said
    code, out, err = run(["train", "lm", "--resume", out_dir, "--steps", "9", "--json",
                          "--sample-length", "0", "--no-progress"], capsys)
    assert code == 0 and json.loads(out)["steps"] == 9, err
    assert ("nothing to train: the run is at step 9, where its step limit (--steps, "
            "train.max_steps = 9) is already reached; raise it to train on") in err
    # another seed would draw other window lengths (random_length) from here on
    code, _, err = run(["train", "lm", "--resume", out_dir, "--steps", "12", "--seed", "5",
                        "--sample-length", "0", "--no-progress"], capsys)
    assert code == 2 and "train.seed was 0" in err and "now 5" in err, err


def test_resume_past_a_damaged_checkpoint_warns_once_and_keeps_it(corpus, tmp_path, capsys):
    """The resumed run saves step 12 again: the damaged step-12 folder is set aside under
    another name, byte for byte, not replaced (oracle: its files as they were before)."""
    out_dir = tmp_path / "run"
    assert run(["train", "lm", "--corpus", corpus, "--steps", "12", "--out", out_dir,
                "--sample-length", "0", *TINY], capsys)[0] == 0
    newest = sorted((out_dir / "checkpoints").glob("step-*"))[-1]
    with open(newest / "model.safetensors", "ab") as model_file:
        model_file.write(b"damage")
    damaged_files = {f.name: f.read_bytes() for f in newest.iterdir()}
    code, out, err = run(["train", "lm", "--resume", out_dir, "--steps", "14", "--json",
                          "--sample-length", "0", "--no-progress"], capsys)
    assert code == 0, err
    assert "resuming from step 6" in err
    # the settings check, the resume and the final scoring each load the run: one warning
    assert err.count(f"skipping checkpoint {newest} is damaged") == 1, err
    aside = newest.with_name(newest.name + ".skipped")
    assert (f"moved the checkpoint {newest}, which could not be loaded, aside to {aside.name}"
            in err), err
    assert {f.name: f.read_bytes() for f in aside.iterdir()} == damaged_files
    # the run's own step 12 is a new, intact checkpoint, and evaluate loads its newest
    assert (newest / "checkpoint.json").is_file() and newest.exists()
    code, out, err = run(["evaluate", "--checkpoint", out_dir, "--json"], capsys)
    assert code == 0 and "damaged" not in err, err


def test_a_curves_picture_that_cannot_be_written_is_a_warning_not_a_failed_run(
        corpus, tmp_path, capsys):
    """curves.png replaced by a folder: the resumed run trained and saved its checkpoint, then
    failed on the picture, skipping the test score and the sample. Oracle: `evaluate` of the
    saved checkpoint gives the score the run printed."""
    out_dir = tmp_path / "run"
    assert run(["train", "lm", "--corpus", corpus, "--steps", "6", "--out", out_dir,
                "--sample-length", "0", *TINY], capsys)[0] == 0
    (out_dir / "curves.png").unlink()
    (out_dir / "curves.png").mkdir()
    code, out, err = run(["train", "lm", "--resume", out_dir, "--steps", "9", "--json",
                          "--sample-length", "0", "--no-progress"], capsys)
    assert code == 0, err
    assert "could not write" in err and "curves.png" in err
    result = json.loads(out)
    assert result["steps"] == 9 and result["curves"] is None
    code, scored, err = run(["evaluate", "--checkpoint", out_dir, "--json"], capsys)
    assert code == 0, err
    assert json.loads(scored)["bpc"] == result["test"]["bpc"]


def _digest(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty"),
    (b"\x00\x01binary\x00data", "binary"),
    (b"abc\xff\xfedef", "not UTF-8"),
    (b"tiny text\n", "less than one batch"),
    (b"the word was in the beginning. " * 2 + b"in the word ", "less than one batch"),
])
def test_bad_corpus_is_one_line_error(tmp_path, capsys, content, fragment):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    code, _, err = run(["train", "lm", "--corpus", path, "--steps", "3", "--out",
                        tmp_path / "run", *TINY], capsys)
    assert_one_line_error(code, err, fragment)


def test_a_runs_corpus_moved_away_is_named_as_the_runs_own(tmp_path, capsys):
    """Resume and evaluate read the run's own corpus: gone, the error says it is the run's
    (not just that no such corpus exists) and what to do; evaluate with --corpus still works.
    Oracle: the same evaluation before the move."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(3000), encoding="utf-8")
    out_dir = tmp_path / "run"
    assert run(["train", "lm", "--corpus", corpus, "--steps", "6", "--out", out_dir,
                "--sample-length", "0", *TINY], capsys)[0] == 0
    code, before, _ = run(["evaluate", "--checkpoint", out_dir, "--json"], capsys)
    assert code == 0
    moved = corpus.rename(tmp_path / "moved.txt")
    code, _, err = run(["train", "lm", "--resume", out_dir, "--steps", "8", "--no-progress"],
                       capsys)
    assert_one_line_error(code, err, f"was trained on {str(corpus)!r}, which no longer exists; "
                                     f"restore it at that path to resume")
    # another corpus at --resume is a change of setting, missing or not: said as that
    elsewhere = tmp_path / "elsewhere.txt"
    code, _, err = run(["train", "lm", "--resume", out_dir, "--corpus", elsewhere, "--steps",
                        "8", "--no-progress"], capsys)
    assert_one_line_error(code, err, f"data.corpus was {str(corpus)!r}")
    assert "no longer exists" not in err
    code, _, err = run(["evaluate", "--checkpoint", out_dir], capsys)
    assert_one_line_error(code, err, "which no longer exists; restore it at that path, or "
                                     "score another text with --corpus")
    code, after, err = run(["evaluate", "--checkpoint", out_dir, "--corpus", moved, "--json"],
                           capsys)
    assert code == 0, err
    assert json.loads(after)["bpc"] == json.loads(before)["bpc"]


def test_the_corpus_size_a_too_small_corpus_is_told_to_reach_trains(tmp_path, capsys):
    """The error names the least corpus size that holds one batch (TINY: 4 x (16 + 1) = 68
    training characters, so 76 in all). Oracle: a corpus of that size trains, one character
    less does not."""
    text = "in the beginning was the word and the word was with god "
    short = tmp_path / "short.txt"
    short.write_text((text * 2)[:40], encoding="utf-8")
    code, _, err = run(["train", "lm", "--corpus", short, "--steps", "1", "--out",
                        tmp_path / "run", *TINY], capsys)
    assert_one_line_error(code, err, "use a corpus of at least 76 characters")
    for size, trains in ((76, True), (75, False)):
        corpus = tmp_path / f"corpus{size}.txt"
        corpus.write_text((text * 2)[:size], encoding="utf-8")
        code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "1", "--out",
                            tmp_path / f"run{size}", "--sample-length", "0", *TINY], capsys)
        assert (code == 0) == trains, err


def test_an_out_below_a_file_names_the_path_without_the_errno(tmp_path, capsys):
    """The operating system's message came raw: "[Errno 20] Not a directory: '.../sub'"."""
    (tmp_path / "afile").write_text("a user's file")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text to train on. " * 40)
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out",
                        tmp_path / "afile" / "sub", *TINY], capsys)
    assert_one_line_error(code, err, f"the run folder {tmp_path / 'afile' / 'sub'} cannot be "
                                     f"made: {tmp_path / 'afile'} is a file, not a folder; "
                                     f"choose another folder")
    assert "Errno" not in err and (tmp_path / "afile").read_text() == "a user's file"


def test_missing_and_corrupt_checkpoints_are_one_line_errors(trained_run, tmp_path, capsys):
    code, _, err = run(["evaluate", "--checkpoint", tmp_path / "nowhere"], capsys)
    assert_one_line_error(code, err, "does not exist")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    for weights in broken.rglob("model.safetensors"):
        weights.write_bytes(weights.read_bytes()[:-10])  # every checkpoint truncated
    code, _, err = run(["generate", "--checkpoint", broken], capsys)
    assert_one_line_error(code, err, "damaged")


def test_prompt_outside_the_vocabulary_is_an_error_unless_skipped(trained_run, capsys):
    code, out, err = run(["generate", "--checkpoint", trained_run, "--prompt", "Zebra €"],
                         capsys)
    assert_one_line_error(code, err, "never saw", "--unknown skip")
    assert out == ""  # nothing printed before the error
    code, _, _ = run(["generate", "--checkpoint", trained_run, "--prompt", "Zebra €",
                      "--unknown", "skip", "--length", "5"], capsys)
    assert code == 0


def test_a_skipped_prompt_is_shown_as_the_model_read_it(trained_run, capsys):
    """--unknown skip printed (and reported) the typed prompt, not the text the model
    continued. Oracle: the vocabulary, and generate() on the kept characters."""
    from rnnkit.tasks.lm.generate import generate
    from rnnkit.tasks.lm.task import load_lm

    loaded = load_lm(trained_run)
    unseen = next(c for c in "€¤§©®ÆØ" if c not in loaded.vocabulary)
    seen = "".join(c for c in "the cat" if c in loaded.vocabulary)
    code, out, err = run(["generate", "--checkpoint", trained_run, "--prompt", seen + unseen,
                          "--unknown", "skip", "--length", "6", "--seed", "3", "--json"], capsys)
    assert code == 0 and f"dropped 1 character(s) the model never saw from the prompt: " \
                         f"{unseen!r}" in err
    assert "nothing is left" not in err  # the kept characters are the prompt
    result = json.loads(out)
    assert (result["prompt"], result["dropped_characters"]) == (seen, unseen)
    assert result["text"] == "".join(generate(loaded, seen, length=6, seed=3))
    code, out, _ = run(["generate", "--checkpoint", trained_run, "--prompt", seen + unseen,
                        "--unknown", "skip", "--length", "6", "--seed", "3"], capsys)
    assert out == seen + result["text"] + "\n"


def test_unknown_config_key_and_bad_values_are_one_line_errors(corpus, tmp_path, capsys):
    code, _, err = run(["train", "lm", "--corpus", corpus, "--set", "model.hiden=3"], capsys)
    assert_one_line_error(code, err, "model.hiden")
    code, _, err = run(["train", "lm", "--corpus", corpus, "--set", "train.minutes=soon"], capsys)
    assert_one_line_error(code, err, "train.minutes")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"train": {"learning_rat": 0.1}}))
    code, _, err = run(["train", "lm", "--corpus", corpus, "--config", config], capsys)
    assert_one_line_error(code, err, "train.learning_rat")


def test_unknown_option_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "lm", "--hidden-size", "3"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --hidden-size" in capsys.readouterr().err


def test_existing_run_folder_is_not_overwritten(trained_run, corpus, capsys):
    before = _digest(trained_run)
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out",
                        trained_run, *TINY], capsys)
    assert_one_line_error(code, err, "already holds a run", "--resume")
    assert _digest(trained_run) == before


def test_every_command_has_help(capsys):
    for command in (["train", "lm"], ["evaluate"], ["generate"], ["train"]):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0
        assert "usage: rnnkit" in capsys.readouterr().out


# -- found by an adversarial review (2026-12-04) ---------------------------------------------
@pytest.mark.parametrize("options, fragment", [
    # named by the flags, not by the Python API's parameters (probe, 2026-12-08)
    (["--top-k", "0"], "--top-k must be an integer >= 1 (or leave it out to keep every token)"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--temperature", "inf"], "--temperature must be finite and >= 0"),
    (["--temperature", "0", "--top-p", "7"], "--top-p must be in (0, 1]"),
    (["--length", "0"], "--length must be an integer >= 1"),
    (["--beam", "0"], "--beam must be an integer >= 1"),
    (["--beam", "2", "--length", "-3"], "--length must be an integer >= 1"),
    (["--beam", "2", "--temperature", "0.5"], "drop --top-k/--top-p/--temperature/--seed"),
    (["--beam", "2", "--seed", "1"], "with no randomness"),  # was accepted and ignored
])
def test_bad_sampling_options_fail_before_anything_is_printed(trained_run, capsys, options,
                                                              fragment):
    code, out, err = run(["generate", "--checkpoint", trained_run, "--prompt", "And",
                          *options], capsys)
    assert_one_line_error(code, err, fragment)
    assert out == ""  # the prompt used to be echoed before the error


def test_a_bad_dynamic_rate_is_named_by_its_flag(trained_run, capsys):
    code, out, err = run(["evaluate", "--checkpoint", trained_run, "--dynamic-lr", "-1"], capsys)
    assert_one_line_error(code, err, "--dynamic-lr must be a finite number >= 0; got -1.0")
    assert out == ""


def test_text_the_model_cannot_score_is_an_error_not_zero_bits(trained_run, tmp_path, capsys):
    """Digits the model never saw: nothing to score, which read as a perfect 0.000 bpc."""
    digits = tmp_path / "digits.txt"
    digits.write_text("0123456789" * 50, encoding="utf-8")
    code, out, err = run(["evaluate", "--checkpoint", trained_run, "--corpus", digits], capsys)
    assert_one_line_error(code, err, "the test text has 0 character(s) the model knows")
    assert out == ""


def test_evaluate_counts_unknown_characters_and_refuses_a_text_mostly_unknown(trained_run,
                                                                             tmp_path, capsys):
    """A text the model can read only a few characters of used to be scored on those few (a
    warning on stderr, nothing in the result)."""
    known = tiny_text(6000)
    some = tmp_path / "some.txt"  # every 10th character one the model never saw
    some.write_text("".join("#" if i % 10 == 9 else c for i, c in enumerate(known)),
                    encoding="utf-8")
    text = some.read_text(encoding="utf-8")
    expected = text[len(text) * 95 // 100:].count("#")  # the test part: the last 5%
    code, out, _ = run(["evaluate", "--checkpoint", trained_run, "--corpus", some, "--json"],
                       capsys)
    assert code == 0 and expected > 0
    assert json.loads(out)["unknown_characters"] == expected
    code, out, _ = run(["evaluate", "--checkpoint", trained_run, "--corpus", some], capsys)
    assert f"{expected:,} characters outside the model's vocabulary were skipped" in out
    mostly = tmp_path / "mostly.txt"  # two unknown characters for each known one
    mostly.write_text("".join(c + "##" for c in known), encoding="utf-8")
    code, out, err = run(["evaluate", "--checkpoint", trained_run, "--corpus", mostly], capsys)
    assert_one_line_error(code, err, "characters are not in the model's vocabulary")
    assert out == ""


def test_resume_refuses_another_corpus_batch_size_or_a_checkpoint_folder(trained_run, corpus,
                                                                         tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    before = _digest(run_dir)
    shifted = tmp_path / "shifted.txt"  # as many characters, one of them another
    shifted.write_text(corpus.read_text(encoding="utf-8").replace("z", "!"), encoding="utf-8")
    code, _, err = run(["train", "lm", "--resume", run_dir, "--corpus", shifted, "--steps",
                        "20", "--no-progress"], capsys)
    assert_one_line_error(code, err, "data.corpus was")
    code, _, err = run(["train", "lm", "--resume", run_dir, "--batch-size", "8", "--steps",
                        "20", "--no-progress"], capsys)
    assert_one_line_error(code, err, "data.batch_size was 4", "now 8")
    # another model: the saved weights would not fit (a torch size-mismatch line, naming no key)
    code, _, err = run(["train", "lm", "--resume", run_dir, "--hidden", "24", "--steps",
                        "20", "--no-progress"], capsys)
    assert_one_line_error(code, err, "model.hidden_size was 16", "now 24")
    code, _, err = run(["train", "lm", "--resume", run_dir, "--cell", "gru", "--steps",
                        "20", "--no-progress"], capsys)
    assert_one_line_error(code, err, "model.cell was 'lstm'", "now 'gru'")
    step = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    code, _, err = run(["train", "lm", "--resume", step, "--steps", "20", "--no-progress"],
                       capsys)
    assert_one_line_error(code, err, "is one of its checkpoints", f"--resume {run_dir}")
    code, _, err = run(["train", "lm", "--resume", run_dir / "checkpoints", "--steps", "20",
                        "--no-progress"], capsys)
    assert_one_line_error(code, err, "holds its checkpoints", f"--resume {run_dir}")
    assert _digest(run_dir) == before


def test_out_inside_a_run_or_on_a_file_is_refused(trained_run, corpus, tmp_path, capsys):
    """A new run nested in another's checkpoints could neither be resumed nor told apart from
    it (evaluate read the outer run's checkpoint); a file as --out gave a bare errno."""
    before = _digest(trained_run)
    step = sorted((trained_run / "checkpoints").glob("step-*"))[-1]
    for inside in (trained_run / "checkpoints", step, step / "deeper"):
        code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out", inside,
                            *TINY], capsys)
        assert_one_line_error(code, err, f"is inside the run {trained_run}", "choose a folder")
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out",
                        trained_run / "metrics.jsonl", *TINY], capsys)
    assert_one_line_error(code, err, "--out must be a folder")
    assert _digest(trained_run) == before


def test_resume_needs_a_run_of_the_same_task(trained_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(["train", "lm", "--resume", empty, "--steps", "20"], capsys)
    assert_one_line_error(code, err, "--resume takes the --out folder of an earlier "
                                     "`rnnkit train lm`", "holds no run")
    before = _digest(trained_run)
    code, _, err = run(["classify", "train", "--resume", trained_run, "--steps", "20"], capsys)
    # it used to fail on the first config key the other task lacks ("unknown key 'dynamic'")
    assert_one_line_error(code, err, "holds a 'lm' run, not a 'classify' one",
                          f"rnnkit train lm --resume {trained_run}")
    assert _digest(trained_run) == before


def test_minutes_alone_lifts_a_step_limit_and_steps_alone_a_time_limit(trained_run):
    """--resume --minutes M gives a run limited by steps more time (it trained nothing)."""
    from rnnkit.cli.lm import _overrides
    from rnnkit.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "lm", "--resume", str(trained_run), "--minutes", "2"])
    assert "train.max_steps=null" in _overrides(args)
    assert "train.minutes=null" in _overrides(parser.parse_args(["train", "lm", "--steps", "5"]))


def test_corpus_without_newlines_trains_and_samples(tmp_path, capsys):
    """The sample used to start from a newline, failing at the very end of the run."""
    corpus = tmp_path / "one-line.txt"
    corpus.write_text(tiny_text(6000).replace("\n", " "), encoding="utf-8")
    code, out, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out",
                          tmp_path / "run", "--json", "--sample-length", "10", *TINY], capsys)
    assert code == 0, err
    assert len(json.loads(out)["sample"]) == 10


@pytest.mark.parametrize("setting, fragment", [
    (["--device", "foo"], "train.device must be a torch device"),
    (["--set", "data.eval_window=0"], "data.eval_window must be a positive int"),
])
def test_bad_device_and_data_settings_fail_before_training(corpus, tmp_path, capsys, setting,
                                                           fragment):
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out",
                        tmp_path / "run", *TINY, *setting], capsys)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_folder_of_a_run_that_left_no_checkpoint_is_not_reused(corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"split": "train", "step": 1, "loss": 9.0}\n')
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "3", "--out", run_dir,
                        *TINY], capsys)
    assert_one_line_error(code, err, "metrics of an earlier run")


def test_damaged_best_checkpoint_falls_back_and_edited_records_are_one_line_errors(
        trained_run, tmp_path, capsys):
    import shutil

    from rnnkit.training.checkpoint import read_index

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    best = run_dir / "checkpoints" / read_index(run_dir)["best"]
    intact = [p for p in sorted((run_dir / "checkpoints").glob("step-*")) if p != best]
    (best / "state.safetensors").write_bytes(b"")
    code, out, err = run(["evaluate", "--checkpoint", run_dir, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["checkpoint"] == str(intact[-1])  # the newest intact one
    assert f"skipping checkpoint {best} is damaged" in err
    for record in ("[]", '{"sha256": {}}'):
        for step in (run_dir / "checkpoints").glob("step-*"):
            (step / "checkpoint.json").write_text(record)
        code, _, err = run(["evaluate", "--checkpoint", run_dir], capsys)
        assert_one_line_error(code, err, "damaged")


def test_set_wins_over_a_named_flag_for_the_same_key(tmp_path):
    """The guide said the named flags win; the code applies --set last (the guide now says
    so). Oracle: the resolved config."""
    from rnnkit.cli.lm import _overrides
    from rnnkit.cli.main import build_parser
    from rnnkit.cli.runs import resolve_run
    from rnnkit.tasks.lm.task import LMConfig

    args = build_parser().parse_args(["train", "lm", "--hidden", "768", "--set",
                                      "model.hidden_size=512", "--out", str(tmp_path / "r")])
    config, _ = resolve_run(args, LMConfig, "lm", _overrides(args))
    assert config.model.hidden_size == 512


def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    """Both took runs/lm-<time>: their checkpoints overwrote each other's and their metrics
    mixed. Oracle: the folders made."""
    import time as time_module

    from rnnkit.cli.lm import _overrides
    from rnnkit.cli.main import build_parser
    from rnnkit.cli.runs import resolve_run
    from rnnkit.tasks.lm.task import LMConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time_module, "strftime", lambda pattern: "20261205-120000")
    folders = []
    for _ in range(2):
        args = build_parser().parse_args(["train", "lm"])
        folders.append(resolve_run(args, LMConfig, "lm", _overrides(args))[1])
    assert folders == [Path("runs/lm-20261205-120000"), Path("runs/lm-20261205-120000-2")]
    assert all(folder.is_dir() for folder in folders)


def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    code, _, err = run(["train", "lm", "--corpus", "empty.txt"], capsys)
    assert_one_line_error(code, err, "empty")
    assert not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("flag", ["--resume", "--out"])
def test_an_empty_run_folder_is_refused(flag, tmp_path, monkeypatch, capsys):
    """--resume "" started a new run without a word, and --out "" took the default folder."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["train", "lm", flag, ""], capsys)
    assert_one_line_error(code, err, f"{flag} is empty")
    assert not (tmp_path / "runs").exists()


def test_resume_from_inside_a_run_names_the_run_folder(trained_run, monkeypatch, capsys):
    """Run from inside a checkpoint, the hint said "use --resume ." (the parent of "." is
    "."). Oracle: the run folder."""
    step = sorted((trained_run / "checkpoints").glob("step-*"))[-1]
    monkeypatch.chdir(step)
    code, _, err = run(["train", "lm", "--resume", "."], capsys)
    assert_one_line_error(code, err, f"use --resume {trained_run.resolve()}")


@pytest.mark.parametrize("flag", ["--out", "--resume"])
def test_a_run_folder_another_process_trains_in_is_refused_untouched(corpus, trained_run, flag,
                                                                    capsys):
    """The same --out given twice, or --resume of a run that is still training, used to start a
    second trainer in the folder (interleaved checkpoints; a resume truncates the metrics the
    first is appending to). Oracle: a second process holding the folder's lock, and the
    folder's digests before and after."""
    from run_holder import Holder

    digests = lambda: {p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                       for p in sorted(trained_run.rglob("*")) if p.is_file()}
    before = digests()
    holder = Holder(trained_run)
    try:
        code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "2", flag, trained_run,
                            *TINY], capsys)
    finally:
        holder.release()
    assert_one_line_error(code, err, f"another process is training in {trained_run}")
    assert digests() == before


def test_the_summary_names_the_curves_only_when_they_were_written(corpus, tmp_path, capsys,
                                                                    monkeypatch):
    """Without matplotlib no curves.png is written, and the summary still named one. Oracle:
    the run folder's files."""
    from rnnkit.training import metrics

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now raises ImportError
    metrics._say_once.cache_clear()  # said once per process: perhaps by an earlier test
    out_dir = tmp_path / "run"
    code, out, err = run(["train", "lm", "--corpus", corpus, "--steps", "2", "--out", out_dir,
                          "--sample-length", "0", *TINY], capsys)
    assert code == 0, err
    assert not (out_dir / "curves.png").exists()
    assert "curves" not in out and "no plot of the curves was written" in err


@pytest.mark.parametrize("name", ["curves.png", "holdout.csv", "confusion.png"])
def test_a_new_run_refuses_a_folder_holding_a_file_it_would_write(name, corpus, tmp_path, capsys):
    """--out . in a project folder replaced the user's curves.png (or holdout.csv, forecast.png,
    ...) with the run's. Oracle: the file's bytes, unchanged."""
    (tmp_path / name).write_bytes(b"the user's own")
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "2", "--out", tmp_path,
                        *TINY], capsys)
    assert_one_line_error(code, err, f"holds {name}, which a run writes")
    assert (tmp_path / name).read_bytes() == b"the user's own"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_negative_sample_length_is_refused(corpus, tmp_path, capsys):
    """--sample-length -1 was read as 0 (no sample) without a word. Oracle: the --out folder,
    which must not be made."""
    code, _, err = run(["train", "lm", "--corpus", corpus, "--steps", "2", "--out",
                        tmp_path / "run", "--sample-length", "-1", *TINY], capsys)
    assert_one_line_error(code, err, "--sample-length must be >= 0 (0: no sample); got -1")
    assert not (tmp_path / "run").exists()


def test_a_reader_that_closes_the_pipe_ends_generate_quietly(trained_run):
    """`rnnkit generate ... | head` printed "rnnkit: error: [Errno 32] Broken pipe" and exited
    2, the status of bad input. Oracle: what a Unix tool ended by SIGPIPE reports, 128 + 13,
    and nothing on stderr."""
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli.main", "generate", "--checkpoint", str(trained_run),
         "--length", "40000", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()  # as head does after its lines
    _, err = process.communicate(timeout=300)
    assert process.returncode == 141, err.decode()
    assert b"error" not in err and b"Traceback" not in err, err.decode()


def test_a_prompt_with_windows_line_ends_reads_as_the_corpus_did(trained_run, capsys):
    """A corpus's CRLF line ends are read as newlines, so '\\r' is never in the vocabulary, and
    a prompt pasted from the same file was refused for it. Oracle: the prompt with newlines."""
    from rnnkit.tasks.lm.task import load_lm

    assert "\r" not in load_lm(trained_run).vocabulary
    texts = []
    for prompt in ("the\r\nthe", "the\nthe"):
        code, out, err = run(["generate", "--checkpoint", trained_run, "--prompt", prompt,
                              "--length", "8", "--seed", "5", "--json"], capsys)
        assert code == 0, err
        texts.append((json.loads(out)["prompt"], json.loads(out)["text"]))
    assert texts[0] == texts[1] and texts[0][0] == "the\nthe"


def test_the_json_prompt_is_the_one_continued_and_dropped_characters_are_counted(
        trained_run, capsys):
    """An empty prompt continues a newline, but JSON reported "" for it; "dropped 1
    character(s)" counted distinct characters (three Z's dropped). Oracle: the run with the
    newline given, and the typed prompt."""
    from rnnkit.tasks.lm.task import load_lm

    unseen = next(c for c in "€¤§©®ÆØ" if c not in load_lm(trained_run).vocabulary)
    results = []
    for prompt, extra in (("", []), ("\n", []), (unseen * 3, ["--unknown", "skip"])):
        code, out, err = run(["generate", "--checkpoint", trained_run, "--prompt", prompt,
                              "--length", "8", "--seed", "5", "--json", *extra], capsys)
        assert code == 0, err
        results.append(json.loads(out))
    assert [r["prompt"] for r in results] == ["\n", "\n", "\n"]
    assert results[0]["text"] == results[1]["text"] == results[2]["text"]
    assert (f"dropped 3 character(s) the model never saw from the prompt: {unseen!r}; nothing "
            f"is left, so it continues a new line as with no prompt") in err


@pytest.mark.parametrize("command", ["evaluate", "generate", "resume"])
def test_a_config_key_this_version_does_not_know_names_the_checkpoint(trained_run, tmp_path,
                                                                       capsys, command):
    """A record written by a newer rnnkit (a config key this one lacks, its checksum intact)
    was reported as "unknown config key" alone, as if the user's flags were wrong. Oracle:
    the checkpoint's path in the one-line error, and the run's files unchanged."""
    import shutil

    from rnnkit.training.checkpoint import _record_digest

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    for step in (run_dir / "checkpoints").glob("step-*"):
        record = json.loads((step / "checkpoint.json").read_text())
        record["meta"]["config"]["model"]["new_knob"] = 1
        record["sha256"]["checkpoint.json"] = _record_digest(record)
        (step / "checkpoint.json").write_text(json.dumps(record))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    args = {"evaluate": ["evaluate", "--checkpoint", run_dir],
            "generate": ["generate", "--checkpoint", run_dir, "--length", "3"],
            "resume": ["train", "lm", "--resume", run_dir, "--steps", "20"]}[command]
    code, _, err = run(args, capsys)
    assert_one_line_error(code, err, "holds a record this rnnkit cannot read (unknown config "
                                     "key 'model.new_knob'")
    assert "another rnnkit version" in err and f"{run_dir}" in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_diverging_dynamic_evaluation_is_an_error_that_keeps_the_static_score(trained_run,
                                                                              capsys):
    """`evaluate --dynamic-lr 1e30` printed "nan bits per character" and exited 0 (probe,
    2026-12-08). Oracle: the static score `evaluate --json` gives, which the error repeats,
    and the run's own rate, which it suggests."""
    code, out, err = run(["evaluate", "--checkpoint", trained_run, "--json"], capsys)
    assert code == 0, err
    static = json.loads(out)["bpc"]
    saved = load_checkpoint(trained_run).meta["config"]["dynamic"]["lr"]
    code, out, err = run(["evaluate", "--checkpoint", trained_run, "--dynamic-lr", "1e30"],
                         capsys)
    assert_one_line_error(code, err, "dynamic evaluation diverged at lr 1e+30",
                          f"the static score is {static:.4f}", "use a smaller --dynamic-lr",
                          f"the run's own is {saved:g}")
    assert out == ""
