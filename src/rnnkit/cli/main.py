"""Entry point of the `rnnkit` command."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys

from .classify import add_classify
from .export import add_export
from .forecast import add_forecast
from .lm import add_evaluate, add_generate, add_train
from .runs import json_text, release_claimed_run_folder


def _add_info(commands) -> None:
    parser = commands.add_parser(
        "info", help="versions, threads, usable backends and installed extras",
        description="Print versions, thread counts, CPU features, for every backend and "
                    "deployment path whether it is usable on this machine and why not, and "
                    "which optional extras are installed.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=_run_info)


def _run_info(args) -> int:
    from .info import collect_info, format_info

    info = collect_info()
    print(json_text(info) if args.json else format_info(info))
    return 0


def _add_demo(commands) -> None:
    # The defaults are DemoConfig's, filled in by _run_demo: importing it here would load torch
    # for every command, before Ctrl-C is handled (main).
    parser = commands.add_parser(
        "demo", help="train a small network on the adding problem (seconds)",
        description="Train a recurrent network on the adding problem (generated data, no "
                    "download) and report its test MSE beside the mean predictor's 1/6.",
    )
    parser.add_argument("--cell", choices=("gru", "lstm", "rnn"), help="default: gru")
    parser.add_argument("--hidden", type=int, help="hidden size (default: 64)")
    parser.add_argument("--steps", type=int, help="sequence length T (default: 50)")
    parser.add_argument("--train-steps", type=int, help="optimizer steps (default: 1200)")
    parser.add_argument("--seed", type=int, help="default: 0")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_run_demo)


_DEMO_FLAGS = {"cell": "cell", "hidden": "hidden_size", "steps": "steps",
               "train_steps": "train_steps", "seed": "seed"}  # flag -> DemoConfig field


def _run_demo(args) -> int:
    from rnnkit.tasks.demo import DemoConfig, run_demo

    for name in ("hidden", "steps", "train_steps"):
        least = 2 if name == "steps" else 1  # the adding problem marks two steps
        if getattr(args, name) is not None and getattr(args, name) < least:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {least}; got "
                             f"{getattr(args, name)}")
    config = DemoConfig(**{field: getattr(args, flag) for flag, field in _DEMO_FLAGS.items()
                           if getattr(args, flag) is not None})
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    log(f"rnnkit demo: adding problem, T={config.steps}, {config.cell.upper()} "
        f"H={config.hidden_size}, {config.train_steps} steps of batch {config.batch_size}")
    result = run_demo(config, log=log)
    if args.json:
        print(json_text(result))
    else:
        ratio = result["mean_predictor_mse"] / max(result["test_mse"], 1e-12)
        # a model worse than the mean (too few steps) is said to be, not "0x lower"
        comparison = f"{ratio:.0f}x lower" if ratio >= 1 else f"{1 / ratio:.1f}x higher"
        print(f"test MSE {result['test_mse']:.5f}   (always predicting the mean: "
              f"{result['mean_predictor_mse']:.5f}; {comparison})")
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse with rnnkit's one-line errors: a bad option or value (``--hidden abc``) prints
    ``rnnkit: error: ...`` and the --help to read, not the whole usage block before it. The
    subcommands' parsers are of this class too (add_subparsers makes them of the parent's)."""

    # argparse reads a word after an option as the option's value only if it does not look
    # like another option, and it knows negative numbers only as -5 or -.5: ``--lr -1e3`` and
    # ``--lr -inf`` read as a missing value. These are numbers too, so that the value's own
    # check answers (no rnnkit option starts with a dash and a digit, "inf" or "nan").
    # Options are taken by their whole names only: argparse's default reads a prefix (--hid)
    # as the option it starts, so a misspelling could pass as another option, and a prefix
    # that works today would turn ambiguous when an option with the same start is added.
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-(\.?\d|inf(inity)?$|nan$)", re.IGNORECASE)

    def error(self, message: str):
        self.exit(2, f"rnnkit: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="rnnkit", description="Recurrent neural networks on PyTorch.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_demo(commands)
    add_train(commands)
    add_evaluate(commands)
    add_generate(commands)
    add_classify(commands)
    add_forecast(commands)
    add_export(commands)
    _add_info(commands)
    return parser


#: flags that name a file, folder or dataset: "" would be read as the working folder (a corpus
#: of every text file there, a checkpoint search from "."), or as "not given" by `x or default`
_NAME_FLAGS = ("corpus", "checkpoint", "data", "test", "out", "resume", "config", "name")
_EMPTY_HINTS = {"corpus": "name a built-in corpus (kjv), a UTF-8 text file or a folder of them",
                "checkpoint": "name a run folder or one of its checkpoint folders",
                "config": "name a .toml or .json config file, or leave --config out",
                "resume": "name the folder of the run to continue",
                "out": "name a folder or file, or leave --out out for the default",
                "test": "leave it out for no test part (or the set's own)",
                "name": "name the C files and symbols, or leave --name out for rnnkit_model"}


#: --data (and --test) name what each task reads, by the command's module
_DATA_HINTS = {"rnnkit.cli.classify": "name a UCR/UEA set bundled with aeon (such as GunPoint) "
                                      "or a .ts, .npz or .csv file",
               "rnnkit.cli.forecast": "name a built-in series (such as sunspots) or a .csv, "
                                      ".tsv or .parquet file"}


#: OSErrors whose cause is most likely the path itself (not a full disk, say)
_PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP}

#: OSErrors that are bad input (exit status 2); any other errno (a full disk, an I/O error) is
#: the run failing (1)
_INPUT_ERRNOS = _PATH_ERRNOS | {errno.EEXIST, errno.ENOTEMPTY, errno.EINVAL}


def _check_common_flags(args) -> None:
    seed = getattr(args, "seed", None)
    if seed is not None and not -2 ** 63 <= seed <= 2 ** 64 - 1:  # torch.manual_seed's range
        raise ValueError(f"--seed must be an integer in -2**63..2**64-1; got {seed}")
    for flag in _NAME_FLAGS:
        if getattr(args, flag, None) == "":
            option = "--" + flag.replace("_", "-")
            hint = _EMPTY_HINTS.get(flag, "name a file or folder")
            if flag == "data":
                module = getattr(getattr(args, "handler", None), "__module__", None)
                hint = _DATA_HINTS.get(module, hint)
            if flag == "out" and getattr(args, "out_required", False):  # no default to fall to
                hint = "name the folder to write to"
            raise ValueError(f"{option} is empty; {hint}")


def _one_line_errors() -> tuple[type[Exception], ...]:
    """rnnkit's errors that a command reports as one line, besides ValueError and OSError:
    imported when an error is being handled, as they import torch."""
    from rnnkit.errors import MissingExtraError
    from rnnkit.export.c_build import CBuildError
    from rnnkit.export.check import ExportMismatchError
    from rnnkit.training import NonFiniteLossError

    return MissingExtraError, NonFiniteLossError, ExportMismatchError, CBuildError  # failures last


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message (it may be replaced,
    e.g. by a caller capturing output, after the handler was installed)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``argv`` names: ``rnnkit train lm ...`` -> train lm's."""
    for word in argv:
        commands = [action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction)]
        if not commands or word not in commands[0].choices:
            if word.startswith("-") or not commands:
                continue  # an option of this level (a command word comes before its options)
            break
        parser = commands[0].choices[word]
    return parser


def main(argv: list[str] | None = None) -> int:
    # Show rnnkit's one-line notices (e.g. "building the fused CPU kernels") on stderr.
    notices = logging.getLogger("rnnkit")
    if not notices.handlers:
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        notices.addHandler(handler)
        notices.setLevel(logging.INFO)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # from the command's own parser, whose --help lists the options it takes
        _command_parser(parser, sys.argv[1:] if argv is None else argv).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    if not hasattr(args, "handler"):  # no command: a usage error, so the help goes to stderr
        parser.print_help(sys.stderr)
        return 2
    # torch loads inside this try (a command's handler imports what it needs; this module and
    # `import rnnkit` import nothing heavy), so Ctrl-C in the first seconds is one line too.
    try:
        _check_common_flags(args)
        from rnnkit.notices import once_per_command

        with once_per_command():  # it loads a run, or reads a corpus, several times
            return args.handler(args)
    except KeyboardInterrupt as interrupt:
        release_claimed_run_folder(args)
        print("rnnkit: interrupted", file=sys.stderr)
        return getattr(interrupt, "exit_status", 130)  # 143 for a run stopped by SIGTERM
    except BrokenPipeError:
        # The reader of stdout closed it (`rnnkit generate ... | head`): stop quietly as Unix
        # tools do, with the status of a process ended by SIGPIPE, not as bad input. stdout
        # goes to devnull, so that Python's flush at exit does not raise again.
        release_claimed_run_folder(args)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE (13)
    except (ValueError, OSError, *_one_line_errors()) as error:
        release_claimed_run_folder(args)
        # Bad input of every kind (corpus, checkpoint, config, option values) and a missing
        # optional package end here as one line; RNNKIT_DEBUG=1 shows the traceback instead.
        if os.environ.get("RNNKIT_DEBUG"):
            raise
        message = str(error)
        if isinstance(error, OSError) and error.filename is not None and error.strerror:
            # the operating system's own words ("[Errno 20] Not a directory: 'out/sub'"),
            # with the path first, and what to check where the path is the likely cause
            paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p)
            message = f"cannot use {paths}: {error.strerror}"
            if error.errno in _PATH_ERRNOS:
                message += "; check the path, and that you may read or write there"
        print(f"rnnkit: error: {message}", file=sys.stderr)
        # 1: the run failed; 2: bad input or a missing extra (ShapeMismatchError is both a
        # ValueError and a RuntimeError, so the failures are named, not told by base class)
        failed = isinstance(error, _one_line_errors()[1:]) or (
            isinstance(error, OSError) and error.errno is not None
            and error.errno not in _INPUT_ERRNOS)  # a full disk is no bad input
        return 1 if failed else 2
    except (MemoryError, RuntimeError) as error:  # after the clause above: some of those are
        release_claimed_run_folder(args)             # RuntimeErrors too
        # sizes too large for this machine (--hidden 10**12): torch's allocator says "can't
        # allocate memory"; any other RuntimeError is a bug, and its traceback is wanted
        if not (isinstance(error, MemoryError) or "can't allocate memory" in str(error)) \
                or os.environ.get("RNNKIT_DEBUG"):
            raise
        first = (str(error).strip().splitlines() or ["MemoryError"])[0]
        print(f"rnnkit: error: out of memory ({first}); choose smaller sizes (--hidden, "
              f"--batch-size, --layers, ...)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
