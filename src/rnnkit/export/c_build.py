"""Building and running a C export: the generated test program, compiler discovery, timing.

``{name}_test.c`` embeds the check inputs (B, T, I) (or token ids (B, T)) and PyTorch's outputs
(B, T, O). It runs each batch row b as its own stream from a reset state and prints
``max_abs_diff`` = max over b, t, o of |y_C[b, t, o] - y_torch[b, t, o]|; ``--outputs`` also
prints every y_C row, which :func:`run_check` parses so that the comparison is made in Python by
:func:`rnnkit.export.check.compare`. ``--bench N`` times N steps and prints ``ns_per_step``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

#: how export_c compiles the check: strict C99 with warnings, the optimization users get by default
CHECK_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic")
#: how time_c_step compiles by default: the fastest code for this machine
BENCH_FLAGS = ("-std=c99", "-O3", "-march=native")
CHECK_DESCRIPTION = "the check inputs (each row a stream)"
_COMPILERS = ("cc", "gcc", "clang")
_VALUES_PER_LINE = 8
_COMPILE_TIMEOUT_S = 600
_RUN_TIMEOUT_S = 300

_TEST_MAIN = r"""
static void step_at(%(name)s_state *s, int position, float *y)
{
    %(step_call)s
}

/* every stream from a reset state; returns the exit status (1: an output y off by more than
   TOLERANCE + RELATIVE_TOLERANCE |y|, or NaN) */
static int check(int print_outputs)
{
    %(name)s_state s;
    float y[OUT];
    double max_diff = 0.0;
    int nan_seen = 0, past_limit = 0;
    memset(&s, 0xff, sizeof s); /* NaN garbage that reset must clear */
    for (int row = 0; row < STREAMS; ++row) {
        %(name)s_reset(&s);
        for (int t = 0; t < STEPS; ++t) {
            const float *want = expected + (long)(row * STEPS + t) * OUT;
            step_at(&s, row * STEPS + t, y);
            if (print_outputs)
                printf("y %%d %%d", row, t);
            for (int o = 0; o < OUT; ++o) {
                double diff = (double)y[o] - (double)want[o];
                diff = diff < 0.0 ? -diff : diff;
                if (diff != diff)
                    nan_seen = 1;
                else if (diff > max_diff)
                    max_diff = diff;
                if (diff > TOLERANCE + RELATIVE_TOLERANCE * (want[o] < 0.0f ? -want[o] : want[o]))
                    past_limit = 1;
                if (print_outputs)
                    printf(" %%.9g", (double)y[o]);
            }
            if (print_outputs)
                printf("\n");
        }
    }
    if (nan_seen)
        printf("max_abs_diff nan\n");
    else
        printf("max_abs_diff %%.9g\n", max_diff);
    return nan_seen || past_limit;
}

static double now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1e9 + (double)now.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median over REPEATS timed runs of `steps` steps, after one untimed warm-up run */
static int bench(long steps)
{
    %(name)s_state s;
    float y[OUT];
    double per_step[REPEATS];
    float checksum = 0.0f; /* printed, so no compiler may drop the steps */
    for (int run = 0; run <= REPEATS; ++run) {
        int position = 0;
        double start;
        %(name)s_reset(&s);
        start = now_ns();
        for (long n = 0; n < steps; ++n) {
            step_at(&s, position, y);
            checksum += y[0];
            position = position + 1 == STREAMS * STEPS ? 0 : position + 1;
        }
        if (run > 0)
            per_step[run - 1] = (now_ns() - start) / (double)steps;
    }
    qsort(per_step, REPEATS, sizeof per_step[0], by_value);
    printf("ns_per_step %%.2f\n", per_step[REPEATS / 2]);
    printf("checksum %%g\n", (double)checksum);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--bench") == 0) {
        long steps = strtol(argv[2], NULL, 10);
        if (steps < 1) {
            fprintf(stderr, "--bench needs a positive number of steps; got %%s\n", argv[2]);
            return 2;
        }
        return bench(steps);
    }
    if (argc == 2 && strcmp(argv[1], "--outputs") == 0)
        return check(1);
    if (argc != 1) {
        fprintf(stderr, "usage: %%s [--outputs | --bench STEPS]\n", argv[0]);
        return 2;
    }
    return check(0);
}
"""


def c_float(value: float) -> str:
    """A C float literal for a finite float32 value that parses back to the same float."""
    text = "%.9g" % value
    if "." not in text and "e" not in text:  # "1" or "-0": 1f would not be a float literal
        text += ".0"
    return text + "f"


def c_array(declaration: str, values) -> list[str]:
    """``declaration = { ... };`` lines for a flat sequence of numbers (floats or ints)."""
    text = [c_float(v) if isinstance(v, float) else str(v) for v in values]
    rows = [", ".join(text[i:i + _VALUES_PER_LINE]) for i in range(0, len(text), _VALUES_PER_LINE)]
    return [f"{declaration} = {{"] + [f"    {row}," for row in rows] + ["};"]


def check_program_source(graph, name: str, inputs, expected, tolerance: float,
                         relative_tolerance: float) -> str:
    """``{name}_test.c``: the check inputs (B, T, ...) and PyTorch's outputs (B, T, O) embedded."""
    upper = name.upper()
    streams, steps = int(inputs.shape[0]), int(inputs.shape[1])
    if graph.embedding is not None:
        data = c_array(f"static const int inputs[{inputs.numel()}]",
                       [int(v) for v in inputs.flatten().tolist()])
        step_call = f"{name}_step(s, inputs[position], y);"
    else:
        data = c_array(f"static const float inputs[{inputs.numel()}]",
                       inputs.float().flatten().tolist())
        step_call = f"{name}_step(s, inputs + (long)position * {upper}_INPUT_SIZE, y);"
    data += c_array(f"static const float expected[{expected.numel()}]",
                    expected.float().flatten().tolist())
    return "\n".join([
        f"/* {name}_test.c: generated by rnnkit.export.export_c; checks {name}.c against PyTorch.",
        f" *   ./{name}_test            prints max |C - PyTorch| over {CHECK_DESCRIPTION};",
        f" *                            exits 1 past the limit {tolerance:g} + "
        f"{relative_tolerance:g} |y|",
        f" *   ./{name}_test --outputs  also prints each step's outputs: y <row> <step> <values>",
        f" *   ./{name}_test --bench N  times N steps, prints the median ns_per_step */",
        "#define _POSIX_C_SOURCE 199309L /* clock_gettime */",
        "#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", "#include <time.h>",
        "", f'#include "{name}.h"', "",
        f"#define STREAMS {streams}", f"#define STEPS {steps}",
        f"#define OUT {upper}_OUTPUT_SIZE", f"#define TOLERANCE {tolerance!r}",
        f"#define RELATIVE_TOLERANCE {relative_tolerance!r}", "#define REPEATS 7",
        "", *data, _TEST_MAIN % {"name": name, "step_call": step_call}])


def find_c_compiler() -> list[str] | None:
    """The C compiler command: $CC (which may carry flags) if set, else cc, gcc or clang; None
    if there is none. A $CC naming no program raises CBuildError: the user asked for that
    compiler, and a check skipped for a typo would pass unnoticed."""
    configured = os.environ.get("CC", "").strip()
    if configured:
        try:
            command = shlex.split(configured)
        except ValueError as error:  # an unclosed quote: shlex says "No closing quotation"
            raise CBuildError(f"CC={configured!r} is not a valid command line ({error}); set CC "
                              f"to an installed C compiler (gcc, clang) or unset it") from None
        if not shutil.which(command[0]):
            raise CBuildError(f"CC={configured!r} names no program found on PATH; set CC to an "
                              f"installed C compiler (gcc, clang) or unset it")
        return command
    for candidate in _COMPILERS:
        path = shutil.which(candidate)
        if path:
            return [path]
    return None


class CBuildError(RuntimeError):
    """The C check could not build or run the exported code (compiler error, crash, timeout)."""


def compile_c(compiler: list[str], sources, output: Path, flags=CHECK_FLAGS) -> None:
    """Compile and link ``sources`` into ``output``; CBuildError with the first error line."""
    command = [*compiler, *map(str, sources), *flags, "-o", str(output), "-lm"]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=_COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CBuildError(f"C compiler {compiler[0]} took over {_COMPILE_TIMEOUT_S} s on "
                          f"{Path(sources[0]).name}") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        first = (errors or lines or [f"exit status {result.returncode}"])[0]
        names = ", ".join(Path(source).name for source in sources)
        raise CBuildError(f"C compiler {compiler[0]} failed on {names}: {first}")


def _run(program: Path, *args: str, expect: str) -> subprocess.CompletedProcess:
    """Run a built test program; CBuildError if it crashed or printed no ``expect`` line.

    Status 1 (outputs past the tolerance) is not an error here: the caller compares."""
    try:
        result = subprocess.run([str(program), *args], capture_output=True, text=True,
                                timeout=_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CBuildError(f"{program.name} ran over {_RUN_TIMEOUT_S} s") from None
    if result.returncode not in (0, 1) or expect not in result.stdout:
        tail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise CBuildError(f"{program.name} exited with status {result.returncode}: {tail}")
    return result


def run_check(sources: dict[str, str], name: str, compiler: list[str],
              flags=CHECK_FLAGS) -> np.ndarray:
    """Write ``sources`` ({filename: text}) to a temporary folder, compile ``{name}.c`` with
    ``{name}_test.c`` there and run ``--outputs``. Returns the C outputs (B, T, O) as float32.

    Building away from the export folder leaves it no build files, and lets export_c check
    the code before writing it."""
    with tempfile.TemporaryDirectory(prefix="rnnkit_c_") as build:
        build = Path(build)
        for filename, text in sources.items():
            (build / filename).write_text(text, encoding="utf-8")
        program = build / f"{name}_test"
        compile_c(compiler, [build / f"{name}.c", build / f"{name}_test.c"], program, flags)
        stdout = _run(program, "--outputs", expect="max_abs_diff").stdout
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("y "):
            fields = line.split()
            rows[int(fields[1]), int(fields[2])] = [float(v) for v in fields[3:]]
    streams = 1 + max(row for row, _ in rows)
    steps = 1 + max(step for _, step in rows)
    # "%.9g" identifies a float32 uniquely but is not its exact value: round back to float32
    return np.array([[rows[row, step] for step in range(steps)] for row in range(streams)],
                    dtype=np.float32)


def time_c_step(folder, name: str = "rnnkit_model", steps: int = 20000,
                flags=BENCH_FLAGS) -> float:
    """Nanoseconds per step of an exported model: ``{name}_test --bench steps`` compiled with
    ``flags`` (default -O3 -march=native) in a temporary folder. RuntimeError without a compiler."""
    compiler = find_c_compiler()
    if compiler is None:
        raise CBuildError("no C compiler found (set CC to one)")
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="rnnkit_c_") as build:
        program = Path(build) / f"{name}_bench"
        compile_c(compiler, [folder / f"{name}.c", folder / f"{name}_test.c"], program, flags)
        stdout = _run(program, "--bench", str(int(steps)), expect="ns_per_step").stdout
    for line in stdout.splitlines():
        if line.startswith("ns_per_step "):
            return float(line.split()[1])
    raise CBuildError(f"{name}_bench printed no ns_per_step line")
