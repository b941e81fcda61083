"""`rnnkit forecast train` and `rnnkit forecast predict` from the command line, and bad input.

Oracles: the library the commands call (a checkpoint loaded with ``load_forecaster`` must give
the forecast and the scores the command reported), the calendar (forecast stamps continue the
series), and the one-line error contract (exit code 2, one ``rnnkit: error:`` line on stderr).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import math
import sys

import numpy as np
import pytest

from one_line import assert_one_line_error
from pictures import PLOTTING, assert_picture
from rnnkit.cli.main import main
from rnnkit.data.timeseries import load_series
from rnnkit.tasks.forecast.metrics import forecast_metrics
from rnnkit.tasks.forecast.task import load_forecaster
from rnnkit.tasks.forecast.windows import feature_rows

pytestmark = pytest.mark.usefixtures("single_thread")

needs_statsmodels = pytest.mark.skipif(importlib.util.find_spec("statsmodels") is None,
                                       reason="statsmodels is not installed")

TINY = ["--horizon", "4", "--window", "10", "--hidden", "4", "--ensemble", "1", "--highway",
        "3", "--steps", "6", "--no-progress", "--set", "data.warmup=2", "--set",
        "train.eval_every=3", "--set", "train.warmup_steps=1"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_quietly(argv):
    """``main`` in a module-scoped fixture (no capsys there): (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def write_series(path, rows: int = 60, bad: dict | None = None):
    """date, two value columns and a covariate; ``bad`` {(row, column): text} replaces cells."""
    t = np.arange(rows)
    noise = np.random.default_rng(3).normal(scale=0.1, size=(2, rows))
    u = np.sin(t / 3.0)
    columns = {"a": np.sin(t / 5.0) + 0.8 * u + noise[0],
               "b": 10 + 3 * np.cos(t / 7.0) + noise[1], "u": u}
    dates = np.datetime64("2022-03-01") + t
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["date", *columns])
        for i in range(rows):
            cells = [repr(float(values[i])) for values in columns.values()]
            for (row, name), text in (bad or {}).items():
                if row == i:
                    cells[list(columns).index(name)] = text
            writer.writerow([str(dates[i]), *cells])
    return path


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory):
    return write_series(tmp_path_factory.mktemp("cli-forecast") / "series.csv")


@pytest.fixture(scope="module")
def sunspots_run(tmp_path_factory):
    if importlib.util.find_spec("statsmodels") is None:
        pytest.skip("the built-in sunspots series needs statsmodels (rnnkit[timeseries])")
    run_dir = tmp_path_factory.mktemp("cli-forecast-run") / "run"
    code, out, err = run_quietly(["forecast", "train", "--out", run_dir, "--json", *TINY])
    assert code == 0, err
    return run_dir, out, err


@pytest.fixture(scope="module")
def covariate_run(series_csv, tmp_path_factory):
    """An autoregressive model with a covariate, trained on the CSV file."""
    run_dir = tmp_path_factory.mktemp("cli-forecast-cov") / "run"
    code, out, err = run_quietly(["forecast", "train", "--data", series_csv, "--value-col", "a",
                                  "--value-col", "b", "--covariate-col", "u", "--decoder",
                                  "autoregressive", "--out", run_dir, "--json", *TINY])
    assert code == 0, err
    return run_dir, json.loads(out)


@needs_statsmodels
def test_train_json_has_the_table_the_checkpoint_reproduces(sunspots_run):
    run_dir, out, err = sunspots_run
    result = json.loads(out)  # stdout is the JSON alone; notes and the table go to stderr
    table = result["table"]
    assert list(table)[:3] == ["rnnkit GRU H=4", "naive", "seasonal naive"]
    assert list(table)[3].startswith("AR(") and result["holdout"] == 4
    assert result["config"]["train"]["max_steps"] == 6
    assert result["config"]["model"]["hidden_size"] == 4
    values = load_series("sunspots").values
    train, test = values[:-4], values[-4:]
    point = load_forecaster(run_dir).forecast(train, 4)["point"]
    assert table["rnnkit GRU H=4"]["mase"] == forecast_metrics(test, point, train, 11)["mase"]
    assert "MASE" in err and "seasonal naive" in err and "holdout: last 4 rows" in err


@needs_statsmodels
def test_predict_writes_the_csv_after_the_series(sunspots_run, tmp_path, capsys):
    run_dir, _, _ = sunspots_run
    target = tmp_path / "next.csv"
    code, out, err = run(["forecast", "predict", "--checkpoint", run_dir, "--data", "sunspots",
                          "--horizon", "6", "--out", target], capsys)
    assert code == 0, err
    # the interval's coverage is the run's (the columns say only _lower/_upper); the run was
    # trained for 4 steps, so its residual intervals stop there (it said "with intervals")
    coverage = json.loads(sunspots_run[1])["config"]["data"]["interval"]
    assert out.startswith(f"wrote 6 forecast steps ({100 * coverage:g}% intervals for steps 1-4 "
                          f"only, as far as the model was trained to forecast; later bounds are "
                          f"NaN) to {target}")
    with open(target, newline="") as file:
        rows = list(csv.DictReader(file))
    bounds = [math.isfinite(float(r["SUNACTIVITY_lower"] or "nan")) for r in rows]
    assert bounds == [True] * 4 + [False] * 2  # oracle: the CSV it wrote
    code, out, err = run(["forecast", "predict", "--checkpoint", run_dir, "--data", "sunspots",
                          "--horizon", "4", "--out", tmp_path / "four.csv"], capsys)
    assert code == 0 and out.startswith(f"wrote 4 forecast steps (with {100 * coverage:g}% "
                                        f"intervals)"), err
    # without its residual quantiles (deleted, as the error for a damaged file advises) a run
    # has no intervals at all, and says so
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "residual-quantiles.json").unlink()
    code, out, err = run(["forecast", "predict", "--checkpoint", copy, "--data", "sunspots",
                          "--horizon", "4", "--out", tmp_path / "none.csv"], capsys)
    assert code == 0 and out.startswith("wrote 4 forecast steps (without intervals: the run "
                                        "holds no residual quantiles, so the bounds are NaN)"), err
    assert [r["time"] for r in rows] == [str(y) for y in range(2009, 2015)]
    want = load_forecaster(run_dir).forecast(load_series("sunspots").values, 6)["point"][:, 0]
    np.testing.assert_allclose([float(r["SUNACTIVITY_forecast"]) for r in rows], want,
                               rtol=1e-5)
    assert_picture(target.with_suffix(".png"))
    code, out, _ = run(["forecast", "predict", "--checkpoint", run_dir, "--data", "sunspots",
                        "--out", tmp_path / "json.csv", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["horizon"] == 4 and result["time"][0] == "2009"
    assert result["interval"] == coverage
    np.testing.assert_allclose(np.asarray(result["forecast"]["point"])[:, 0], want[:4],
                               rtol=1e-6)


@needs_statsmodels
def test_resume_continues_a_finished_run(sunspots_run, tmp_path, capsys):
    import shutil

    run_dir, _, _ = sunspots_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    code, out, err = run(["forecast", "train", "--resume", copy, "--steps", "9", "--json",
                          "--no-progress"], capsys)
    assert code == 0, err
    assert "resuming from step 6" in err
    assert json.loads(out)["config"]["train"]["max_steps"] == 9
    code, _, err = run(["forecast", "train", "--out", run_dir, *TINY], capsys)
    assert_one_line_error(code, err, "already holds a run", "--resume")


def test_csv_run_with_a_covariate(covariate_run, series_csv):
    run_dir, result = covariate_run
    assert result["series"]["columns"] == ["a", "b"]
    assert result["series"]["covariate_columns"] == ["u"]
    series = load_series(str(series_csv), value_cols=["a", "b"], covariate_cols=["u"])
    rows = feature_rows(series.values, series.covariates)
    fitted = load_forecaster(run_dir)
    point = fitted.forecast(rows[:-4], 4, series.covariates[-4:])["point"]
    assert point.shape == (4, 2)
    assert result["table"][result["model"]]["mase"] == \
        forecast_metrics(series.values[-4:], point, series.values[:-4], 1)["mase"]


def test_predict_with_an_autoregressive_covariate_model_is_an_error(covariate_run, series_csv,
                                                                    tmp_path, capsys):
    run_dir, _ = covariate_run
    target = tmp_path / "never.csv"
    code, out, err = run(["forecast", "predict", "--checkpoint", run_dir, "--data", series_csv,
                          "--out", target], capsys)
    assert_one_line_error(code, err, "needs the covariates' future values",
                          "model.decoder=direct")
    assert out == "" and not target.exists()


@pytest.mark.parametrize("bad, flags, fragment", [
    (None, ["--value-col", "nosuch"], "has no column 'nosuch'"),
    ({(7, "a"): "lots"}, [], "column 'a' has non-numeric text 'lots' in row 8"),
    ({(3, "b"): ""}, [], "column 'b' has 1 missing value(s) (row 4)"),
    (None, ["--rows", "15"], "fewer than holdout 4 + validation 0 + window 10 + horizon 4 = 18"),
    (None, ["--decoder", "direct", "--holdout", "6"], "cannot forecast past"),
    (None, ["--decoder", "autoregressive", "--output", "quantile"],
     "needs model.decoder=direct"),
    # checked before training (these used to fail after it, leaving a run folder behind)
    (None, ["--season", "-3"], "data.season must be >= 1"),
    (None, ["--season", "0"], "data.season must be >= 1"),
    (None, ["--season", "100"], "shorter than one season (100)"),
    (None, ["--backtest", "-1"], "backtest folds (--backtest) must be >= 1 (0, the default, runs "
                                 "no backtest); got -1"),
    (None, ["--backtest", "1", "--backtest-step", "0"], "(--backtest-step) must be >= 1 rows"),
    (None, ["--backtest-step", "3"], "(--backtest-step) needs backtest folds (--backtest"),
    (None, ["--backtest", "50"], "50 backtest folds 4 rows apart need"),
    (None, ["--window", "4", "--set", "data.warmup=6"], "--set data.warmup=2"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, bad, flags, fragment):
    rows = 60
    if "--rows" in flags:
        rows, flags = int(flags[1]), flags[2:]
    path = write_series(tmp_path / "series.csv", rows=rows, bad=bad)
    code, out, err = run(["forecast", "train", "--data", path, *TINY, "--out",
                          tmp_path / "run", *flags], capsys)
    assert_one_line_error(code, err, fragment)
    assert out == "" and not (tmp_path / "run").exists()


def test_unknown_dataset_name_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run(["forecast", "train", "--data", "sunspot", "--out", tmp_path / "run",
                        *TINY], capsys)
    assert_one_line_error(code, err, "'sunspot' is neither a built-in series")


def test_help_for_forecast_and_its_actions(capsys):
    for command in (["forecast"], ["forecast", "train"], ["forecast", "predict"]):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0
        assert f"usage: rnnkit {' '.join(command)}" in capsys.readouterr().out
    assert main(["forecast"]) == 2  # no action: the help on stderr, a usage error's exit code
    assert "train" in capsys.readouterr().err


# -- found by an adversarial review (2026-12-04) ---------------------------------------------
def test_predict_refuses_other_columns_a_png_out_and_overwriting_its_data(covariate_run,
                                                                        series_csv, tmp_path,
                                                                        capsys):
    run_dir, _ = covariate_run
    notes = tmp_path / "notes.txt"  # any other file a typo could name
    notes.write_text("mine")
    holdout_before = (run_dir / "holdout.csv").read_bytes()
    for flags, *fragment in (
            (["--value-col", "a", "--covariate-col", "u"], "trained on 2 target column(s)",
             "pass one --value-col for each of the 2 trained, or leave the flag out"),
            (["--out", tmp_path / "plot.png"], "a PNG is written beside it"),
            (["--out", series_csv], "is the input data file"),
            (["--out", notes], "ending in .csv"),
            (["--out", run_dir / "holdout.csv"], f"inside the training run {run_dir}"),
            (["--horizon", "0"], "--horizon must be from 1 to 100000; got 0"),
            (["--horizon", "100001"], "--horizon must be from 1 to 100000; got 100001")):
        code, out, err = run(["forecast", "predict", "--checkpoint", run_dir, "--data",
                              series_csv, *flags], capsys)
        assert_one_line_error(code, err, *fragment)
        assert out == ""
    assert notes.read_text() == "mine"
    assert (run_dir / "holdout.csv").read_bytes() == holdout_before


@needs_statsmodels
def test_resume_on_other_data_is_refused(sunspots_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sunspots_run[0], run_dir)
    code, _, err = run(["forecast", "train", "--resume", run_dir, "--data", "nile", "--steps",
                        "9", "--no-progress"], capsys)
    assert_one_line_error(code, err, "data.data was 'sunspots'", "now 'nile'")
    # Another seed draws another batch order from the resumed step on: the result was neither
    # run, without a word (audit 2026-12-06; classify train refused it already)
    code, _, err = run(["forecast", "train", "--resume", run_dir, "--seed", "3", "--steps",
                        "9", "--no-progress"], capsys)
    assert_one_line_error(code, err, "train.seed was 0", "now 3")


@needs_statsmodels
def test_a_built_in_series_resumes_whatever_case_it_is_named_in(sunspots_run, tmp_path, capsys):
    """Built-in names are read in any case, but --resume --data SUNSPOTS was refused as other
    data ("was 'sunspots', now 'SUNSPOTS'"). Oracle: the resume without --data."""
    import shutil

    for spelling in ("SUNSPOTS", "Sunspots"):
        run_dir = tmp_path / spelling
        shutil.copytree(sunspots_run[0], run_dir)
        code, out, err = run(["forecast", "train", "--resume", run_dir, "--data", spelling,
                              "--steps", "9", "--no-progress", "--json"], capsys)
        assert code == 0, err
        assert json.loads(out)["config"]["data"]["data"] == "sunspots"


@needs_statsmodels
def test_a_quantile_run_keeps_its_interval_on_resume_and_a_point_run_may_change_it(
        series_csv, tmp_path, capsys):
    """A quantile model's interval is its trained outermost quantiles (0.1, 0.9): a resume with
    --interval 0.5 measured that 80% band and labelled it 50% (found by fuzzing, 2026-12-06).
    A point model's interval comes from residuals after training, so it may change."""
    quantile, point = tmp_path / "quantile", tmp_path / "point"
    for out, output in ((quantile, "quantile"), (point, "point")):
        code, _, err = run(["forecast", "train", "--data", series_csv, "--value-col", "a",
                            "--output", output, "--decoder", "direct", "--out", out, *TINY], capsys)
        assert code == 0, err
    code, _, err = run(["forecast", "train", "--resume", quantile, "--interval", "0.5",
                        "--steps", "9", "--no-progress"], capsys)
    assert_one_line_error(code, err, "data.interval was 0.8", "now 0.5")
    code, out, err = run(["forecast", "train", "--resume", point, "--interval", "0.5",
                          "--steps", "9", "--no-progress", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["config"]["data"]["interval"] == 0.5


@needs_statsmodels
def test_a_run_on_a_relative_path_is_resumed_from_another_folder(series_csv, tmp_path, capsys,
                                                                monkeypatch):
    """The saved config held the path as given, relative to where training ran."""
    monkeypatch.chdir(series_csv.parent)
    run_dir = tmp_path / "run"
    code, _, err = run(["forecast", "train", "--data", series_csv.name, "--value-col", "a",
                        "--out", run_dir, *TINY], capsys)
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["forecast", "train", "--resume", run_dir, "--steps", "8",
                        "--no-progress"], capsys)
    assert code == 0, err


def test_json_result_is_strict_json_when_a_metric_is_nan(tmp_path, capsys):
    """A constant series has a zero MASE scale, so MASE is NaN (forecasting.md): --json must
    still be JSON any parser reads (null), not Python's bare NaN token."""
    path = tmp_path / "constant.csv"
    path.write_text("year,v\n" + "".join(f"{2000 + i},5\n" for i in range(40)))
    code, out, err = run(["forecast", "train", "--data", path, "--out", tmp_path / "run",
                          "--json", *TINY], capsys)
    assert code == 0, err

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    result = json.loads(out, parse_constant=refuse)
    mase = [row["mase"] for row in result["table"].values()]
    assert None in mase  # the NaN the metrics gave, written as null
    assert "NaN" not in out


@needs_statsmodels
def test_predict_replaces_an_earlier_forecast_but_no_other_file(sunspots_run, tmp_path, capsys):
    """--out replaced any existing CSV, and the PNG beside it (a user's holiday.png for --out
    holiday.csv). Oracle: the files' bytes before and after; the same command run twice still
    replaces its own forecast."""
    import hashlib

    run_dir, _, _ = sunspots_run
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    users = tmp_path / "mine.csv"
    users.write_text("date,sales\n2020,5\n")
    holiday_png = tmp_path / "holiday.png"
    holiday_png.write_bytes(b"\x89PNG not a forecast")
    before = {path: digest(path) for path in (users, holiday_png)}
    for target, fragment in ((users, "is not a forecast rnnkit wrote"),
                             (tmp_path / "holiday.csv", "not an earlier forecast's")):
        code, out, err = run(["forecast", "predict", "--checkpoint", run_dir, "--data",
                              "sunspots", "--out", target], capsys)
        assert_one_line_error(code, err, fragment)
    assert {path: digest(path) for path in before} == before
    assert not (tmp_path / "holiday.csv").exists() and not (tmp_path / "mine.png").exists()
    again = tmp_path / "again.csv"
    for horizon in ("3", "5"):
        code, _, err = run(["forecast", "predict", "--checkpoint", run_dir, "--data", "sunspots",
                            "--horizon", horizon, "--out", again], capsys)
        assert code == 0, err
    with open(again, newline="") as file:
        assert len(list(csv.DictReader(file))) == 5


@needs_statsmodels
def test_a_device_other_than_the_cpu_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                           monkeypatch):
    """The model went to train.device while every window and forecast stayed on the CPU: on a
    GPU the first forward failed with a device mismatch (found by fuzzing, 2026-12-06). A GPU is
    simulated: the config check asks torch whether CUDA is there. `--device cpu`, which scripts
    may pass, still trains: oracle, the same run without it."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    code, _, err = run(["forecast", "train", "--device", "cuda", "--out", tmp_path / "run",
                        *TINY], capsys)
    assert_one_line_error(code, err, "forecasting runs on the CPU",
                          "train.device (--device) is 'cuda'")
    assert not (tmp_path / "run").exists()
    tables = []
    for name, flags in (("cpu", ["--device", "cpu"]), ("plain", [])):
        code, out, err = run(["forecast", "train", *flags, "--out", tmp_path / name, "--json",
                              *TINY], capsys)
        assert code == 0, err
        tables.append(json.loads(out)["table"])
    assert tables[0] == tables[1]


@needs_statsmodels
@pytest.mark.skipif(not PLOTTING, reason="matplotlib is not installed: no picture to fail")
def test_a_forecast_picture_that_cannot_be_written_leaves_the_holdout_csv(sunspots_run,
                                                                         tmp_path, capsys):
    """forecast.png replaced by a folder: the resumed run failed after training, before its
    summary. Oracle: the same resume of an untouched copy writes the same holdout.csv."""
    import shutil

    damaged, intact = tmp_path / "damaged", tmp_path / "intact"
    for run_dir in (damaged, intact):
        shutil.copytree(sunspots_run[0], run_dir)
    (damaged / "forecast.png").unlink()
    (damaged / "forecast.png").mkdir()
    results = {}
    for run_dir in (damaged, intact):
        code, out, err = run(["forecast", "train", "--resume", run_dir, "--steps", "9",
                              "--json", "--no-progress"], capsys)
        assert code == 0, err
        results[run_dir] = (json.loads(out), err)
    assert "could not write" in results[damaged][1] and "forecast.png" in results[damaged][1]
    assert results[damaged][0]["forecast_png"] is None
    assert results[damaged][0]["table"] == results[intact][0]["table"]
    assert (damaged / "holdout.csv").read_bytes() == (intact / "holdout.csv").read_bytes()


def test_without_matplotlib_the_summary_names_no_plot(tmp_path, capsys, monkeypatch):
    """The summary printed "forecast plot None". Oracle: the files the run wrote."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    path = write_series(tmp_path / "series.csv")
    code, out, err = run(["forecast", "train", "--data", path, "--value-col", "a", "--out",
                          tmp_path / "run", *TINY], capsys)
    assert code == 0, err
    summary = next(line for line in out.splitlines() if "holdout CSV" in line)
    assert "forecast plot" not in out
    assert summary.startswith(f"holdout CSV {tmp_path / 'run' / 'holdout.csv'}; trained in ")
    assert not list((tmp_path / "run").glob("*.png"))


def test_sigterm_stops_a_forecast_run_with_143(tmp_path, capsys, monkeypatch):
    """A forecast run reports its stop as a KeyboardInterrupt, which exited 130 whatever the
    signal. Oracle: 128 + SIGTERM, and the checkpoint of the step the signal came in."""
    import os
    import signal

    from rnnkit.tasks.forecast import fitting

    class TerminatedAtStep3(fitting.Trainer):
        def _train_step(self, batch, done):
            if self.step == 2:  # during step 3
                os.kill(os.getpid(), signal.SIGTERM)
            return super()._train_step(batch, done)

    monkeypatch.setattr(fitting, "Trainer", TerminatedAtStep3)
    path = write_series(tmp_path / "series.csv")
    code, out, err = run(["forecast", "train", "--data", path, "--value-col", "a", "--out",
                          tmp_path / "run", *TINY], capsys)
    assert code == 143, err
    assert "interrupted by SIGTERM at step 3; checkpoint saved" in out + err
    assert (tmp_path / "run" / "checkpoints" / "step-00000003").is_dir()
    # with --json stdout was empty, where train lm and classify train print their result
    code, out, err = run(["forecast", "train", "--data", path, "--value-col", "a", "--out",
                          tmp_path / "again", "--json", *TINY], capsys)
    assert code == 143, err
    document = json.loads(out)
    # the trainer's progress, as train lm reports it (it was missing): 3 steps, the last of
    # them the best one so far (without validation rows the training loss is the measure)
    assert document.pop("train_seconds") >= 0 and 0 < document.pop("epochs")
    assert list(document.pop("validation")) == ["loss"]
    assert document == {"task": "forecast", "status": "interrupted", "stop_signal": 15,
                        "steps": 3, "best_step": 3,
                        "run_dir": str(tmp_path / "again"), "checkpoint": str(
                            tmp_path / "again" / "checkpoints" / "step-00000003")}


def test_a_nan_mase_is_explained_and_named_by_column(tmp_path, covariate_run, capsys):
    """A column whose training part repeats itself at the season (here 0, 1, 0, 1, ... at
    m = 2) has no seasonal-naive error to scale by, so its MASE is NaN; the table showed nan
    with no word why. Oracle: numpy's lag-2 differences of each column, and the covariate
    run (no such column) with finite MASE and no note."""
    rows = 60
    t = np.arange(rows)
    columns = {"wave": np.sin(t / 4.0), "flip": (t % 2).astype(float)}
    path = tmp_path / "flip.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["date", *columns])
        for i in range(rows):
            writer.writerow([str(np.datetime64("2022-03-01") + i),
                             *(repr(float(v[i])) for v in columns.values())])
    code, out, err = run(["forecast", "train", "--data", path, "--season", "2", "--out",
                          tmp_path / "run", "--json", *TINY], capsys)
    assert code == 0, err
    result = json.loads(out)
    train_part = {name: v[:rows - result["holdout"]] for name, v in columns.items()}
    repeating = [name for name, v in train_part.items() if not np.abs(v[2:] - v[:-2]).any()]
    assert repeating == ["flip"] and result["mase_undefined_for"] == repeating
    assert all(metrics["mase"] is None for metrics in result["table"].values())  # JSON null
    assert ("MASE is nan: the training part of flip repeats itself exactly at lag m=2" in err
            and "compare the methods by RMSE and sMAPE" in err), err
    _, finished = covariate_run
    assert finished["mase_undefined_for"] == []
    assert all(np.isfinite(metrics["mase"]) for metrics in finished["table"].values())
