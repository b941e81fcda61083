import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import rnnkit
from one_line import assert_one_line_error
from rnnkit.cli.main import main


def test_info_json_lists_versions_and_backends(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rnnkit"] == rnnkit.__version__
    assert info["threads"] >= 1
    backends = {b["name"]: b for b in info["backends"]}
    assert backends["reference"]["usable"] is True
    deployment = {row["name"]: row for row in info["deployment"]}
    assert set(deployment) == {"streaming", "onnx", "c"}
    onnx_installed = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
    assert deployment["onnx"]["usable"] is bool(onnx_installed)
    compiler = any(shutil.which(name) for name in ("cc", "gcc", "clang"))
    assert ("no C compiler" in deployment["c"]["detail"]) is (not compiler and not os.environ.get("CC"))


def test_info_lists_the_extras_and_how_to_install_a_missing_one(capsys, monkeypatch):
    """info reported only the export extra, so a user could not tell why PNGs, the AR row or
    the bundled sets were missing. Oracle: importlib's view of each module, with statsmodels
    made unimportable."""
    from rnnkit.cli.info import EXTRAS

    monkeypatch.setitem(sys.modules, "statsmodels", None)  # find_spec: None, as if missing
    assert main(["info", "--json"]) == 0
    extras = {row["name"]: row for row in json.loads(capsys.readouterr().out)["extras"]}
    assert set(extras) == {"data", "timeseries", "classify", "plot", "export"} == set(EXTRAS)
    for name, (modules, _) in EXTRAS.items():
        present = all(importlib.util.find_spec(module) for module in modules)
        assert extras[name]["usable"] is present, name
    assert "missing statsmodels: pip install 'rnnkit[timeseries]'" in extras["timeseries"]["detail"]
    assert main(["info"]) == 0
    assert re.search(r"\n  timeseries +missing +forecasting", capsys.readouterr().out)


def test_info_names_a_cc_that_is_no_program(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "gcc-typo"))
    assert main(["info", "--json"]) == 0
    deployment = {row["name"]: row for row in json.loads(capsys.readouterr().out)["deployment"]}
    assert deployment["c"]["usable"] is False
    assert "gcc-typo" in deployment["c"]["detail"] and "names no program" in deployment["c"]["detail"]


def test_info_json_reports_the_dense_engine_in_use(capsys):
    from rnnkit.backends import BACKENDS

    if BACKENDS["fused"].unavailable() is not None:
        pytest.skip(f"fused backend unavailable here: {BACKENDS['fused'].unavailable()}")
    from rnnkit.backends import fused

    try:
        for engine in ("mkl", "packed"):
            fused.set_dense_engine(engine)
            assert main(["info", "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["fused_dense_engine"].startswith(engine)
    finally:
        fused.set_dense_engine("auto")


def test_info_text_names_every_backend(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "reference" in out and "usable" in out


@pytest.mark.parametrize("command", [[], ["info"], ["demo"]])
def test_every_command_has_help(command):
    result = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", *command, "--help"],
                            capture_output=True, text=True, check=True)
    assert "usage: rnnkit" in result.stdout


def test_demo_help_states_the_config_defaults_and_the_run_uses_them(monkeypatch):
    """The demo's flags take DemoConfig's defaults when the run starts (the parser no longer
    imports it, as that loads torch): the help must name the same values, and a run without
    flags must get them. Oracle: DemoConfig's own field defaults."""
    import rnnkit.tasks.demo as demo

    defaults = demo.DemoConfig()
    help_text = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", "demo", "--help"],
                               capture_output=True, text=True, check=True).stdout
    flat = " ".join(help_text.split())
    assert f"default: {defaults.cell}" in flat
    for flag, value in (("hidden size", defaults.hidden_size), ("sequence length T", defaults.steps),
                        ("optimizer steps", defaults.train_steps)):
        assert f"{flag} (default: {value})" in flat
    assert f"--seed SEED default: {defaults.seed}" in flat
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda config, log: seen.append(config) or {
        "test_mse": 0.1, "mean_predictor_mse": 1 / 6, "config": {}})
    assert main(["demo"]) == 0 and seen == [defaults]
    assert main(["demo", "--cell", "lstm", "--seed", "3"]) == 0
    assert seen[1] == demo.DemoConfig(cell="lstm", seed=3)


def test_import_rnnkit_and_the_command_line_parser_load_no_torch():
    """`import rnnkit` and the parser import nothing heavy, so a command's handler loads torch
    inside main's Ctrl-C handling. Oracle: sys.modules of a fresh interpreter; the lazy names
    still resolve to the classes of their modules."""
    code = ("import sys, rnnkit, rnnkit.cli.main as m; m.build_parser(); "
            "print('torch' in sys.modules); "
            "from rnnkit.layers.presets import LSTM; print(rnnkit.LSTM is LSTM); "
            "print(all(hasattr(rnnkit, name) for name in rnnkit.__all__))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "True", "True"]


def test_ctrl_c_while_torch_loads_is_one_line_and_exit_status_130():
    """Ctrl-C during the first seconds of a command, while torch is being imported, printed a
    traceback (torch loaded in `import rnnkit`, before main could catch it). Simulated by an
    import hook that raises KeyboardInterrupt at `import torch`. Oracle: main's own message
    and exit status for Ctrl-C."""
    code = """
import importlib.abc, sys
class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from rnnkit.cli.main import main
sys.exit(main(["demo", "--train-steps", "1"]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "rnnkit: interrupted\n"


@pytest.mark.parametrize("option, value, fragment", [
    ("--train-steps", "0", "--train-steps must be >= 1; got 0"),
    ("--hidden", "-3", "--hidden must be >= 1; got -3"),
    ("--steps", "1", "--steps must be >= 2; got 1"),
])
def test_demo_rejects_too_small_sizes_like_every_usage_error(capsys, option, value, fragment):
    """Exit status 2 and one ``rnnkit: error:`` line, as every other command (it exited 1)."""
    code = main(["demo", option, value])
    assert_one_line_error(code, capsys.readouterr().err, fragment)


def test_demo_json_result(capsys):
    assert main(["demo", "--steps", "6", "--hidden", "8", "--train-steps", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["steps"] == 6 and result["test_mse"] >= 0


def test_demo_compares_its_mse_with_the_mean_either_way(capsys, monkeypatch):
    """A model worse than always predicting the mean was reported as "0x lower". Oracle: the
    ratio of the two numbers the line prints."""
    import rnnkit.tasks.demo as demo

    for test_mse, words in ((0.5, "3.0x higher"), (0.01, "17x lower")):
        monkeypatch.setattr(demo, "run_demo", lambda config, log: {
            "test_mse": test_mse, "mean_predictor_mse": 1 / 6, "config": {}})
        assert main(["demo", "--steps", "6", "--hidden", "8", "--train-steps", "3"]) == 0
        assert words in capsys.readouterr().out


def test_info_reports_the_bf16_instructions_as_the_cpu_flags_say(capsys):
    """Oracle: /proc/cpuinfo's flags (the bf16 paths need AMX-BF16 or AVX512-BF16, and oneDNN)."""
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the CPU flags are read from /proc/cpuinfo, which this OS lacks")
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    assert main(["info", "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["bf16_instructions"]
    expected = next((name for name in ("amx_bf16", "avx512_bf16") if name in flags), "none")
    assert reported == (expected if torch.backends.mkldnn.is_available() else "none")


def test_info_json_says_which_kernel_runs_the_bf16_products_here(capsys):
    from rnnkit.backends import BACKENDS
    from rnnkit.backends.fused import bf16_products_kernel

    if BACKENDS["fused"].unavailable() is not None:
        pytest.skip(f"fused backend unavailable here: {BACKENDS['fused'].unavailable()}")
    assert main(["info", "--json"]) == 0
    # the oracle: the op the fused backend asks before it multiplies in bfloat16
    assert json.loads(capsys.readouterr().out)["fused_bf16_products"] == (bf16_products_kernel()
                                                                          or "none")


def test_json_text_writes_non_finite_numbers_as_null():
    from rnnkit.cli.runs import json_text

    value = {"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": (2, "x")}
    assert json.loads(json_text(value)) == {"a": None, "b": [1.5, None, {"c": None}],
                                            "d": [2, "x"]}


@pytest.mark.parametrize("argv, flag, hint", [
    (["train", "lm", "--corpus", ""], "--corpus", "name a built-in corpus (kjv)"),
    (["evaluate", "--checkpoint", ""], "--checkpoint", "name a run folder"),
    (["generate", "--checkpoint", "", "--prompt", "a"], "--checkpoint", "name a run folder"),
    (["export", "--checkpoint", "", "--format", "numpy", "--out", "x"], "--checkpoint",
     "name a run folder"),
    (["classify", "train", "--test", ""], "--test", "leave it out"),
    # --data names what the command's task reads ("a file or folder" fitted neither)
    (["classify", "train", "--data", ""], "--data", "a .ts, .npz or .csv file"),
    (["forecast", "train", "--data", ""], "--data", "a .csv, .tsv or .parquet file"),
    (["forecast", "predict", "--checkpoint", "run", "--data", "sunspots", "--out", ""], "--out",
     "name a folder or file"),
    (["train", "lm", "--config", ""], "--config", "a .toml or .json config file"),
    (["train", "lm", "--set", "data.corpus=\"\""], "data.corpus", ""),
])
def test_an_empty_name_is_refused_before_anything_runs(argv, flag, hint, tmp_path, monkeypatch,
                                                         capsys):
    """"" is the working folder to Path: --corpus "" trained on every text file there, and
    --checkpoint "" searched it; `x or default` read --test "" as no test file (the training
    data was then scored as the test) and --out "" as forecast.csv. Oracle: the working
    folder, which must stay as it was, and main's one-line usage error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a user's file, not a corpus\n" * 200)
    code = main(argv)
    assert_one_line_error(code, capsys.readouterr().err, f"{flag} is empty", hint)
    # (a new run's default folder is made and removed again; runs/ itself may stay, empty)
    assert [p.name for p in tmp_path.rglob("*") if not p.is_dir()] == ["notes.txt"]


def test_an_empty_export_out_is_not_told_to_fall_back_to_a_default(capsys):
    """export's --out is required, and "leave --out out for the default" was the advice."""
    code = main(["export", "--checkpoint", "run", "--format", "numpy", "--out", ""])
    assert_one_line_error(code, capsys.readouterr().err, "--out is empty; name the folder to "
                                                         "write to")


def test_a_shape_mistake_is_bad_input_exit_status_2(monkeypatch, capsys):
    """ShapeMismatchError is a RuntimeError too (torch.nn's class for it); the exit status
    told failures from bad input by RuntimeError and turned it into 1. Oracle: exit status 2
    of every other bad input."""
    from rnnkit.errors import ShapeMismatchError

    def bad_shape(args):
        raise ShapeMismatchError("input.size(-1) must equal input_size=3; got 4")

    import rnnkit.cli.main as cli_main

    monkeypatch.setattr(cli_main, "_run_info", bad_shape)
    assert_one_line_error(main(["info"]), capsys.readouterr().err, "must equal input_size")


def test_sizes_too_large_for_the_machine_are_one_line_and_other_bugs_keep_their_traceback(
        monkeypatch, capsys):
    """--hidden 10**12 printed torch's allocator traceback. Oracle: the allocator's own first
    line in the message; a RuntimeError that is not about memory still propagates."""
    import rnnkit.cli.main as cli_main

    def allocate(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 24000000000000 bytes.")

    monkeypatch.setattr(cli_main, "_run_info", allocate)
    assert main(["info"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: out of memory (")
    assert "24000000000000 bytes" in lines[0] and "choose smaller sizes" in lines[0]

    def bug(args):
        raise RuntimeError("an index out of range in rnnkit's own code")

    monkeypatch.setattr(cli_main, "_run_info", bug)
    with pytest.raises(RuntimeError, match="index out of range"):
        main(["info"])


@pytest.mark.parametrize("seed", [str(-2 ** 63 - 1), str(2 ** 64)])
def test_a_seed_outside_torch_s_range_is_refused_by_every_command(seed, capsys):
    """A seed past 2**64-1 gave "Overflow when unpacking long long", naming no flag. Oracle:
    torch.manual_seed's range, -2**63..2**64-1 (its ends are taken)."""
    for argv in (["demo"], ["generate", "--checkpoint", "x", "--prompt", "a"]):
        code = main([*argv, "--seed", seed])
        assert_one_line_error(code, capsys.readouterr().err, f"--seed must be an integer in "
                                                            f"-2**63..2**64-1; got {seed}")
    import torch

    torch.manual_seed(2 ** 64 - 1)
    torch.manual_seed(-2 ** 63)
    for outside in (2 ** 64, -2 ** 63 - 1):
        with pytest.raises((ValueError, RuntimeError, OverflowError)):
            torch.manual_seed(outside)


@pytest.mark.parametrize("seed", [-3, 2 ** 64 - 1])
def test_the_demo_takes_every_seed_torch_takes(seed, monkeypatch, capsys):
    """The demo seeds its test data with seed + 1, which overflowed at 2**64-1 (a flag-less
    "Overflow when unpacking long long"); negative seeds worked and must keep working. Oracle:
    the run's exit status with a tiny configuration."""
    code = main(["demo", "--seed", str(seed), "--steps", "4", "--hidden", "4",
                 "--train-steps", "1", "--json"])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment, command", [
    (["train", "lm", "--hidden", "abc"], "argument --hidden: invalid int value: 'abc'",
     "rnnkit train lm"),
    (["frobnicate"], "invalid choice: 'frobnicate'", "rnnkit"),
    (["export", "--format", "numpy"], "the following arguments are required: --checkpoint",
     "rnnkit export"),
])
def test_argparse_errors_are_one_line_like_every_other_bad_input(argv, fragment, command,
                                                                 capsys):
    """A value of the wrong type printed argparse's usage block and then the error. Oracle:
    argparse's own message, kept, with exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"rnnkit: error: {err.split('rnnkit: error: ', 1)[1]}"
    assert_one_line_error(2, err, fragment, f"(see {command} --help)")


@pytest.fixture(scope="module")
def one_run_per_task(tmp_path_factory):
    """A tiny finished run of each task: {task: run folder}."""
    pytest.importorskip("statsmodels", reason="the forecast run's baselines need statsmodels")
    from corpora import tiny_text

    folder = tmp_path_factory.mktemp("task-runs")
    corpus = folder / "corpus.txt"
    corpus.write_text(tiny_text(4000), encoding="utf-8")
    rng = np.random.default_rng(0)
    X = np.empty(12, dtype=object)
    X[:] = [rng.normal(size=(5, 2)) for _ in range(12)]
    np.savez(folder / "seqs.npz", X=X, y=np.array(["a", "b"] * 6))
    commands = {
        "lm": ["train", "lm", "--corpus", corpus, "--steps", "2", "--hidden", "8",
               "--embedding", "4", "--batch-size", "2", "--window", "8", "--sample-length", "0",
               "--set", "data.eval_rows=2"],
        "classify": ["classify", "train", "--data", folder / "seqs.npz", "--test",
                     folder / "seqs.npz", "--steps", "2", "--hidden", "4"],
        "forecast": ["forecast", "train", "--horizon", "4", "--window", "10", "--hidden", "4",
                     "--ensemble", "1", "--steps", "2", "--set", "data.warmup=2"],
    }
    runs = {}
    for task, argv in commands.items():
        runs[task] = folder / task
        code = main([str(a) for a in argv + ["--out", runs[task], "--no-progress"]])
        assert code == 0, task
    return runs


#: (task, the command that uses that task's checkpoints, as the error names it and as it runs)
USES = [("lm", "rnnkit evaluate", ["evaluate", "--checkpoint", "{run}"]),
        ("classify", "rnnkit classify evaluate", ["classify", "evaluate", "--checkpoint", "{run}"]),
        ("forecast", "rnnkit forecast predict",
         ["forecast", "predict", "--checkpoint", "{run}", "--data", "sunspots", "--out",
          "{tmp}/next.csv"])]


@pytest.mark.parametrize("given,used_by", [(a, b) for a, *_ in USES for b, *_ in USES
                                           if a != b])
def test_another_tasks_checkpoint_names_the_command_that_takes_it(one_run_per_task, given,
                                                                  used_by, tmp_path, capsys):
    """Oracle: the command the message names runs on that checkpoint."""
    fill = lambda argv, run: [a.format(run=run, tmp=tmp_path) for a in argv]  # noqa: E731
    run = one_run_per_task[given]
    _, _, wrong = next(use for use in USES if use[0] == used_by)
    _, named, right = next(use for use in USES if use[0] == given)
    code = main(fill(wrong, run))
    err = capsys.readouterr().err
    assert_one_line_error(code, err, f"is a {given!r} checkpoint", named)
    assert main(fill(right, run)) == 0, capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1e3", "-inf", "-Infinity", "-nan", "-5", "-.5"])
def test_a_negative_number_after_an_option_is_its_value(value):
    """argparse took ``--lr -1e3`` and ``--lr -inf`` for a missing value ("expected one
    argument"), so the range check that names the fix never ran. Oracle: the ``--lr=VALUE``
    spelling, which argparse never misreads."""
    from rnnkit.cli.main import build_parser

    spaced = build_parser().parse_args(["train", "lm", "--lr", value])
    joined = build_parser().parse_args(["train", "lm", f"--lr={value}"])
    assert str(spaced.lr) == str(joined.lr) == str(float(value))


@pytest.mark.parametrize("word", ["-x", "-infx", "-nano"])
def test_a_dash_word_that_is_no_number_is_still_an_unknown_option(word, capsys):
    from rnnkit.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "lm", "--lr", word])
    assert "expected one argument" in capsys.readouterr().err


@pytest.mark.parametrize("argv, command", [(["demo", "--bogus"], "rnnkit demo"),
                                           (["train", "lm", "--bogus", "3"], "rnnkit train lm"),
                                           (["classify", "train", "--zzz"], "rnnkit classify train"),
                                           (["--zzz"], "rnnkit"),
                                           (["train", "lm", "--hid", "16"], "rnnkit train lm")])
def test_an_unknown_option_points_to_its_commands_help(argv, command, capsys):
    """"unrecognized arguments" came from the top-level parser and said "see rnnkit --help",
    which lists no command's options. Oracle: the command the words name. A prefix of an
    option (--hid for --hidden) is no option either: argparse took it for the whole one."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    unknown = " ".join(a for a in argv if a.startswith("-") or a.isdigit())
    assert_one_line_error(exit_info.value.code, err,
                          f"unrecognized arguments: {unknown} (see {command} --help)")


@pytest.mark.parametrize("argv", [[], ["train"], ["classify"], ["forecast"]], ids=" ".join)
def test_a_command_without_its_action_prints_the_help_to_stderr(argv, capsys):
    """The help went to stdout with exit status 2: a usage error's output belongs on stderr,
    and stdout (read by scripts, --json) stays empty. Oracle: the parser's own usage line."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: rnnkit")


def test_info_json_has_the_same_keys_where_the_fused_kernels_cannot_load(capsys, monkeypatch):
    """Without the fused kernels (no compiler, RNNKIT_DISABLE_FUSED=1) the fused_* keys were
    missing, and a script reading them failed with a KeyError. Oracle: the keys of a machine
    where they load, as null."""
    from rnnkit.backends.fused import build

    assert main(["info", "--json"]) == 0
    keys = {key for key in json.loads(capsys.readouterr().out) if key.startswith("fused_")}
    assert keys == {"fused_simd", "fused_dense_engine", "fused_bf16_products"} or \
        build.load_error() is not None
    monkeypatch.setattr(build, "load_error", lambda: "no compiler (simulated)")
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {key: info[key] for key in info if key.startswith("fused_")} == dict.fromkeys(
        ("fused_simd", "fused_dense_engine", "fused_bf16_products"))
    assert main(["info"]) == 0
    assert "fused_simd" not in capsys.readouterr().out  # the text leaves unknowns out


@pytest.mark.parametrize("number, status", [(errno.ENOSPC, 1), (errno.EIO, 1),
                                            (errno.ENOENT, 2), (errno.EACCES, 2)])
def test_a_full_disk_is_a_failed_run_not_bad_input(number, status, monkeypatch, capsys):
    """Writing the result to a full disk (`rnnkit info --json > /dev/full`) exited 2, the
    status of bad input. Oracle: the comment in main(): 1 the run failed, 2 bad input."""
    import rnnkit.cli.info as info_command

    def fail(*_args, **_kwargs):
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(info_command, "collect_info", fail)
    assert main(["info", "--json"]) == status
    assert capsys.readouterr().err.startswith("rnnkit: error: ")
