"""`rnnkit forecast train` and `rnnkit forecast predict`: parse, call the library, print."""

from __future__ import annotations

import argparse
import sys

from .runs import add_run_flags, flag_overrides, json_text, printer, resolve_run

# Friendly flags of `forecast train` and the config keys they set.
_TRAIN_FLAGS = {
    "data": "data.data", "time_col": "data.time_col", "value_col": "data.value_cols",
    "covariate_col": "data.covariate_cols", "horizon": "data.horizon",
    "holdout": "data.holdout", "season": "data.season", "window": "data.window",
    "validation": "data.validation", "interval": "data.interval",
    "cell": "model.cell", "hidden": "model.hidden_size", "layers": "model.layers",
    "decoder": "model.decoder", "output": "model.output", "highway": "model.highway",
    "ensemble": "model.ensemble", "lr": "train.learning_rate", "minutes": "train.minutes",
    "steps": "train.max_steps", "seed": "train.seed", "device": "train.device",
}


def _add_data_flags(parser) -> None:
    parser.add_argument("--time-col", metavar="C", help="time column of a CSV/Parquet file "
                        "(default: one named time/date/year/...; rows: row numbers, time-named "
                        "columns ignored)")
    parser.add_argument("--value-col", metavar="V", action="append",
                        help="target column (repeat for several; default: every numeric one)")
    parser.add_argument("--covariate-col", metavar="U", action="append",
                        help="known input column that is not forecast (repeatable)")


def add_forecast(commands) -> None:
    parser = commands.add_parser(
        "forecast", help="time-series forecasting: train with baselines, predict to CSV",
        description="Forecast a time series with a recurrent network, scored beside the "
                    "naive, seasonal-naive and AR(p) baselines.")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    train = actions.add_parser(
        "train", help="train on a series and score a tail holdout beside the baselines",
        description="Train on all but the last rows of a series (built-in: sunspots, co2, "
                    "nile, elnino, macrodata, lynx, shampoo, airline, solar; or a CSV/Parquet "
                    "file), forecast the held-out rows and print MASE, RMSE and sMAPE for the "
                    "model, naive, seasonal naive and AR(p) in one table.")
    train.add_argument("--data", help="built-in series name or CSV/TSV/Parquet file "
                       "(default sunspots)")
    _add_data_flags(train)
    train.add_argument("--horizon", type=int, help="steps forecast from one origin H (default 20)")
    train.add_argument("--holdout", type=int, help="test rows at the end (default: the horizon)")
    train.add_argument("--season", type=int, help="seasonal period m for MASE and seasonal "
                       "naive (default: the series' own, else 1)")
    train.add_argument("--window", type=int, help="context steps per training window W")
    train.add_argument("--validation", type=int, help="rows before the holdout for choosing "
                       "the best checkpoint (default 0: train on all, keep the last)")
    train.add_argument("--interval", type=float, help="prediction-interval coverage (0.8)")
    train.add_argument("--cell", choices=("gru", "lstm", "rnn"))
    train.add_argument("--hidden", type=int, help="hidden size per member")
    train.add_argument("--layers", type=int)
    train.add_argument("--decoder", choices=("direct", "autoregressive"))
    train.add_argument("--output", choices=("point", "gaussian", "quantile"))
    train.add_argument("--highway", type=int, help="lags of the linear path (0: off)")
    train.add_argument("--ensemble", type=int, help="members averaged in the forecast")
    train.add_argument("--lr", type=float, help="peak learning rate")
    train.add_argument("--steps", type=int, help="optimizer steps (default 800)")
    train.add_argument("--minutes", type=float, help="training time budget")
    train.add_argument("--seed", type=int)
    # kept for scripts written when it was listed: cpu is the only device forecasting takes
    train.add_argument("--device", help=argparse.SUPPRESS)
    train.add_argument("--backtest", type=int, default=0, metavar="FOLDS",
                       help="also backtest at FOLDS earlier origins (a model trained per fold)")
    train.add_argument("--backtest-step", type=int, metavar="ROWS",
                       help="rows between backtest origins (default: the horizon)")
    add_run_flags(train, "forecast")
    train.set_defaults(handler=run_forecast_train)

    predict = actions.add_parser(
        "predict", help="forecast past the end of a series with a trained model",
        description="Forecast --horizon steps after the last row of --data with a trained "
                    "model; writes a CSV of point forecasts and interval bounds and a PNG.")
    predict.add_argument("--checkpoint", required=True, metavar="DIR",
                         help="a run folder of `rnnkit forecast train`")
    predict.add_argument("--data", required=True, help="built-in series name or file")
    _add_data_flags(predict)
    predict.add_argument("--horizon", type=int, help="steps to forecast (default: trained H)")
    predict.add_argument("--out", metavar="CSV", default="forecast.csv",
                         help="forecast CSV to write, a PNG beside it; an earlier forecast "
                              "there is replaced, any other file refused")
    predict.add_argument("--json", action="store_true", help="print the result as JSON")
    predict.set_defaults(handler=run_forecast_predict)
    parser.set_defaults(handler=lambda args: (parser.print_help(sys.stderr), 2)[1])


def format_table(table: dict, *, title: str = "") -> str:
    """The metrics table: one row per method, MASE / RMSE / sMAPE (and interval coverage).

    Columns are as wide as their longest cell, so that large values (an RMSE of 6e10) never
    run into their neighbours; errors of a million and more are written with 4 significant
    digits."""
    def scaled(value: float) -> str:
        return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.4g}"

    rows = [[name, f"{m['mase']:.3f}", scaled(m["rmse"]), f"{m['smape']:.1f}",
             "" if m.get("coverage") is None else f"{m['coverage']:.2f}"]
            for name, m in table.items()]
    header = ["method", "MASE", "RMSE", "sMAPE", "coverage"]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    lines = [title] if title else []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width)
                                             for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_forecast_train(args) -> int:
    from rnnkit.tasks.forecast.task import ForecastConfig, train_forecast
    from rnnkit.training.trainer import RunInterrupted

    say = printer(args)
    config, run_dir = resolve_run(args, ForecastConfig, "forecast",
                                   flag_overrides(args, _TRAIN_FLAGS))
    try:
        result = train_forecast(config, run_dir, resume=bool(args.resume), notify=say,
                                backtest_folds=args.backtest, backtest_step=args.backtest_step)
    except RunInterrupted as stop:  # saved; the trainer said how to continue
        if args.json:  # a script reading --json gets a document, as from the other trainers
            # the trainer's progress, as train lm reports it
            progress = {} if stop.result is None else stop.result.progress()
            print(json_text({"task": "forecast", "status": "interrupted", **progress,
                             "stop_signal": stop.stop_signal, "run_dir": str(run_dir),
                             "checkpoint": stop.checkpoint}))
        raise  # the exit status of the signal, as for every interrupted command
    say("")
    say(format_table(result["table"], title=f"holdout: last {result['holdout']} rows of "
                     f"{config.data.data} (MASE scale: seasonal naive, m={result['season']})"))
    if result["mase_undefined_for"]:
        names = ", ".join(result["mase_undefined_for"])
        say(f"MASE is nan: the training part of {names} repeats itself exactly at lag "
            f"m={result['season']}, so the seasonal-naive error MASE divides by is 0; compare "
            f"the methods by RMSE and sMAPE")
    if "backtest" in result:
        backtest = result["backtest"]
        say("")
        say(format_table(backtest["mean"], title=f"rolling-origin backtest: mean over "
                         f"{len(backtest['folds'])} origins {backtest['step']} rows apart"))
    plot = f"forecast plot {result['forecast_png']}, " if result["forecast_png"] else ""
    say(f"\n{plot}holdout CSV {result['holdout_csv']}; trained in "
        f"{result['train_seconds']:.0f} s; checkpoint in {run_dir}")
    if args.json:
        print(json_text(result))
    return 0


def run_forecast_predict(args) -> int:
    from rnnkit.tasks.forecast.task import predict_forecast

    result = predict_forecast(args.checkpoint, args.data, horizon=args.horizon, out=args.out,
                              time_col=args.time_col, value_cols=args.value_col,
                              covariate_cols=args.covariate_col)
    if args.json:
        print(json_text(result))
    else:
        horizon, bounded = result["horizon"], result["interval_steps"]
        coverage = f"{100 * result['interval']:g}%"
        intervals = (f"with {coverage} intervals" if bounded == horizon
                     else f"{coverage} intervals for steps 1-{bounded} only, as far as the model "
                          f"was trained to forecast; later bounds are NaN" if bounded
                     else "without intervals: the run holds no residual quantiles, so the "
                          "bounds are NaN")
        print(f"wrote {horizon} forecast steps ({intervals}) to {result['csv']}"
              + (f" and {result['png']}" if result["png"] else ""))
    return 0
