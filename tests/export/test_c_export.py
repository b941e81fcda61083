"""rnnkit.export.c_code.export_c: the generated C99 against the PyTorch modules.

Oracle: the source modules run eagerly (``StreamingGraph.eager_forward``, or the torch module
called directly) on the same inputs. Each exported model is checked twice: by export_c's own
generated test program (check inputs embedded) and by a driver written here that reads fresh
inputs on stdin, so the comparison does not rest on the exporter's own test data. Exports and
their compiled drivers are module-scoped and shared between tests (each compile takes ~0.3 s).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from one_line import one_line_message, one_line_value_error
from rnnkit.export import c_build
from rnnkit.export.c_build import CBuildError, CHECK_FLAGS, find_c_compiler, time_c_step
from rnnkit.export.c_code import c_file_names, export_c
from rnnkit.export.check import TOLERANCE, ExportMismatchError, check_inputs
from rnnkit.runtime.graph import UnsupportedModelError, streaming_graph
from rnnkit.tasks.lm.model import CharLanguageModel, ModelConfig

COMPILER = find_c_compiler()
pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(COMPILER is None, reason="no C compiler found (set CC to one)"),
    pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning"),
]

I, H, OUT, V = 5, 6, 4, 11
STANDARD_HEADERS = {"<stdint.h>", "<string.h>", "<stdio.h>", "<stdlib.h>", "<time.h>"}

# Reads "B T" then B*T steps of inputs (floats, or token ids), runs each row as a stream from a
# reset state (the state starts as NaN garbage) and prints every output with %.9g.
DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "%(name)s.h"

int main(void)
{
    %(name)s_state s;
    float y[%(upper)s_OUTPUT_SIZE];
    int rows, steps;
    memset(&s, 0xff, sizeof s);
    if (scanf("%%d %%d", &rows, &steps) != 2)
        return 2;
    for (int row = 0; row < rows; ++row) {
        %(name)s_reset(&s);
        for (int t = 0; t < steps; ++t) {
#ifdef %(upper)s_VOCAB_SIZE
            int token;
            if (scanf("%%d", &token) != 1)
                return 2;
            %(name)s_step(&s, token, y);
#else
            float x[%(upper)s_INPUT_SIZE];
            for (int i = 0; i < %(upper)s_INPUT_SIZE; ++i)
                if (scanf("%%f", &x[i]) != 1)
                    return 2;
            %(name)s_step(&s, x, y);
#endif
            for (int o = 0; o < %(upper)s_OUTPUT_SIZE; ++o)
                printf("%%.9g\n", (double)y[o]);
        }
    }
    return 0;
}
"""


class Exported:
    """An export_c folder plus a driver compiled from it (strict flags, warnings as errors)."""

    def __init__(self, folder, name, report, graph):
        self.folder, self.name, self.report, self.graph = folder, name, report, graph
        driver = folder.parent / f"{name}_driver.c"
        driver.write_text(DRIVER % {"name": name, "upper": name.upper()})
        self.program = folder.parent / f"{name}_driver"
        c_build.compile_c(COMPILER, [folder / f"{name}.c", driver], self.program,
                          (*CHECK_FLAGS, "-Werror", f"-I{folder}"))

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        """C outputs (B, T, O) for inputs (B, T, I) floats or (B, T) token ids."""
        rows, steps = inputs.shape[:2]
        values = inputs.flatten().tolist()
        text = f"{rows} {steps}\n" + "\n".join(map(repr, values)) + "\n"
        result = subprocess.run([str(self.program)], input=text, capture_output=True,
                                text=True, check=True, timeout=60)
        return torch.tensor([float(v) for v in result.stdout.split()]).view(rows, steps, -1)


def _export(tmp_path_factory, model, name="rnnkit_model", **kwargs) -> Exported:
    folder = tmp_path_factory.mktemp("c_export") / "model"
    report = export_c(model, folder, name=name, **kwargs)
    graph = streaming_graph(model, head=kwargs.get("head"), embedding=kwargs.get("embedding"))
    return Exported(folder, name, report, graph)


def _inputs(seed: int, shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _assert_close(actual, expected, what):
    diff = float((actual.double() - expected.double()).abs().max())
    assert diff <= TOLERANCE, f"{what}: max abs diff {diff:.3g} > {TOLERANCE}"


@torch.no_grad()
def _torch_outputs(rnn, head, x):
    """The torch module's outputs (B, T, O) for batch-major x, whatever its batch_first."""
    batch_first = getattr(rnn, "batch_first", True)
    y = rnn(x if batch_first else x.transpose(0, 1))[0]
    y = y if batch_first else y.transpose(0, 1)
    return head(y) if head is not None else y


# --- the model grid ------------------------------------------------------------------------

def _stacked_residual():
    cells = [rnnkit.LSTMCell(I, H), rnnkit.GRUCell(H, H), rnnkit.RNNCell(H, H, nonlinearity="relu")]
    return rnnkit.Stacked([rnnkit.Recurrent(cell) for cell in cells], residual=True)


MODELS = {  # name: (rnn factory, head factory or None)
    "lstm": (lambda: rnnkit.LSTM(I, H, batch_first=True), lambda: nn.Linear(H, OUT)),
    "lstm_2_layers_no_bias": (lambda: rnnkit.LSTM(I, H, num_layers=2, bias=False), None),
    "lstm_proj": (lambda: rnnkit.LSTM(I, H, num_layers=2, proj_size=3, batch_first=True), None),
    "gru_2_layers": (lambda: rnnkit.GRU(I, H, num_layers=2, dropout=0.3),
                     lambda: nn.Sequential(nn.Linear(H, OUT), nn.Tanh())),
    "gru_no_bias": (lambda: rnnkit.GRU(I, H, bias=False, batch_first=True), None),
    "rnn_tanh_2_layers": (lambda: rnnkit.RNN(I, H, num_layers=2, batch_first=True),
                          lambda: nn.Sequential(nn.Linear(H, OUT), nn.Sigmoid())),
    "rnn_relu_no_bias": (lambda: rnnkit.RNN(I, H, nonlinearity="relu", bias=False), None),
    "torch_lstm_2_layers": (lambda: nn.LSTM(I, H, num_layers=2), lambda: nn.Linear(H, OUT)),
    "torch_lstm_proj": (lambda: nn.LSTM(I, H, proj_size=2, batch_first=True), None),
    "torch_gru_no_bias": (lambda: nn.GRU(I, H, bias=False, batch_first=True),
                          lambda: nn.Sequential(nn.Dropout(0.5), nn.Linear(H, OUT), nn.ReLU())),
    "torch_rnn_relu": (lambda: nn.RNN(I, H, nonlinearity="relu", num_layers=2), None),
    "stacked_residual": (_stacked_residual,
                         lambda: nn.Sequential(nn.Linear(H, 3), nn.Tanh(),
                                               nn.Linear(3, 2, bias=False))),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each MODELS entry exported (and its driver built) on first use, then shared."""
    cache = {}

    def get(key):
        if key not in cache:
            torch.manual_seed(zlib.crc32(key.encode()))
            rnn_factory, head_factory = MODELS[key]
            rnn = rnn_factory().eval()
            head = head_factory().eval() if head_factory else None
            cache[key] = (_export(tmp_path_factory, rnn, head=head), rnn, head)
        return cache[key]
    return get


@pytest.mark.parametrize("key", sorted(MODELS))
def test_model_matches_torch(exported, key):
    export, rnn, head = exported(key)
    assert export.report.format == "c"
    assert export.report.max_abs_diff is not None and export.report.max_abs_diff <= TOLERANCE
    x = _inputs(zlib.crc32(key.encode()), (3, 9, I))
    _assert_close(export.run(x), _torch_outputs(rnn, head, x), key)


def test_reset_then_rerun_gives_the_same_outputs(exported):
    export, rnn, head = exported("lstm")
    x = _inputs(1, (1, 10, I)).expand(3, 10, I)  # each row runs on the same state after reset
    outputs = export.run(x)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])
    _assert_close(outputs, _torch_outputs(rnn, head, x), "after reset")


@pytest.mark.parametrize("cell_type", [rnnkit.LSTMCell, rnnkit.GRUCell])
def test_bare_cell_matches_torch(tmp_path_factory, cell_type):
    torch.manual_seed(3)
    cell = cell_type(I, H)
    export = _export(tmp_path_factory, cell, name="cell")
    assert export.report.max_abs_diff <= TOLERANCE
    x = _inputs(2, (2, 7, I))
    state, outputs = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            state = cell(x[:, t], state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
    _assert_close(export.run(x), torch.stack(outputs, dim=1), cell_type.__name__)


# --- embedding models --------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedding_export(tmp_path_factory):
    torch.manual_seed(4)
    embedding, rnn = nn.Embedding(V, I), rnnkit.GRU(I, H, batch_first=True)
    head = nn.Sequential(nn.Linear(H, 7), nn.ReLU(), nn.Linear(7, V))
    export = _export(tmp_path_factory, rnn, name="tokens", head=head, embedding=embedding)
    return export, lambda tokens: head(rnn(embedding(tokens))[0])


def test_embedding_model_matches_torch(embedding_export):
    export, model = embedding_export
    assert export.report.max_abs_diff <= TOLERANCE
    tokens = torch.randint(0, V, (3, 8), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _assert_close(export.run(tokens), model(tokens), "embedding model")
    header = (export.folder / "tokens.h").read_text()
    assert f"#define TOKENS_VOCAB_SIZE {V}" in header
    assert "void tokens_step(tokens_state *s, int token, float *y);" in header


def test_out_of_range_tokens_are_clamped(embedding_export):
    export, model = embedding_export
    outside = torch.tensor([[3, -7, 2, V + 5, 1, -1, V]])
    clamped = outside.clamp(0, V - 1)
    outputs = export.run(torch.cat([outside, clamped]))
    assert torch.equal(outputs[0], outputs[1])
    with torch.no_grad():
        _assert_close(outputs[1], model(clamped)[0], "clamped tokens")


def test_model_with_streaming_parts(tmp_path_factory):
    torch.manual_seed(6)
    config = ModelConfig(cell="lstm", embedding_dim=4, hidden_size=H, layers=2)
    model = CharLanguageModel(V, config).eval()
    export = _export(tmp_path_factory, model, name="char_lm")
    assert export.report.max_abs_diff <= TOLERANCE
    tokens = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        _assert_close(export.run(tokens), model(tokens)[0], "CharLanguageModel")


# --- exp, sigmoid and tanh ---------------------------------------------------------------

def test_tanh_and_sigmoid_match_torch_over_a_wide_range(tmp_path_factory):
    """h = tanh(x) from an RNN cell with unit input weight; sigmoid(x) through a head on an
    exact identity (relu(x) - relu(-x)): both against torch on [-20, 20] and special values."""
    grid = torch.cat([torch.linspace(-20, 20, 8001),
                      torch.tensor([0.0, -0.0, 1e-30, -1e-7, 0.2499, 0.25, 0.2501, 87.5, -88.5,
                                    100.0, -100.0, 1e30, -1e30, float("inf"), float("-inf")])])
    tanh_rnn = nn.RNN(1, 1, bias=False)
    sigmoid_rnn = nn.RNN(1, 2, nonlinearity="relu", bias=False)
    identity = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        tanh_rnn.weight_ih_l0.fill_(1.0)
        tanh_rnn.weight_hh_l0.fill_(0.0)
        sigmoid_rnn.weight_ih_l0.copy_(torch.tensor([[1.0], [-1.0]]))
        sigmoid_rnn.weight_hh_l0.fill_(0.0)
        identity.weight.copy_(torch.tensor([[1.0, -1.0]]))
    tanh_export = _export(tmp_path_factory, tanh_rnn, name="tanh_only")
    sigmoid_export = _export(tmp_path_factory, sigmoid_rnn, name="sigmoid_only",
                             head=nn.Sequential(identity, nn.Sigmoid()))
    x = grid.view(-1, 1, 1)  # one stream per value: inf would reach the next step as 0 * inf
    for export, reference in ((tanh_export, torch.tanh), (sigmoid_export, torch.sigmoid)):
        actual, expected = export.run(x).flatten(), reference(grid)
        error = (actual.double() - expected.double()).abs().max().item()
        assert error <= 2e-7, f"{export.name}: max abs error {error:.3g}"
    # tanh keeps its relative accuracy near 0, where 1 - exp(-2|x|) would cancel
    small = torch.logspace(-30, 0, 301)
    actual = tanh_export.run(small.view(-1, 1, 1)).flatten().double()
    relative = (actual / torch.tanh(small.double()) - 1).abs().max().item()
    assert relative <= 1e-6, f"tanh relative error near 0: {relative:.3g}"
    nan = torch.tensor([[[float("nan")]]])
    assert tanh_export.run(nan).isnan().all() and sigmoid_export.run(nan).isnan().all()


# --- the generated files -------------------------------------------------------------------

def test_folder_holds_exactly_the_documented_files(exported):
    export, _, _ = exported("stacked_residual")
    expected = {"rnnkit_model.h", "rnnkit_model.c", "rnnkit_model_test.c", "README.txt"}
    assert set(export.report.files) == expected
    assert {path.name for path in export.folder.iterdir()} == expected  # no build junk


def test_sources_do_not_allocate_and_include_only_standard_headers(exported, embedding_export):
    for folder, name in ((exported("stacked_residual")[0].folder, "rnnkit_model"),
                         (embedding_export[0].folder, "tokens")):
        for filename in (f"{name}.h", f"{name}.c", f"{name}_test.c"):
            text = (folder / filename).read_text()
            assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", text), filename
            includes = set(re.findall(r"#include\s+(\S+)", text))
            assert includes <= STANDARD_HEADERS | {f'"{name}.h"'}, (filename, includes)
        source = (folder / f"{name}.c").read_text()
        # no mutable file-scope data: every static object is const
        statics = re.findall(r"^static\s+(?!const\b)(?!inline\b).*", source, flags=re.M)
        assert statics == [], statics


def test_header_compiles_on_its_own(exported, tmp_path):
    export, _, _ = exported("lstm_proj")
    unit = tmp_path / "only_header.c"
    # included twice: the include guard must hold
    unit.write_text('#include "rnnkit_model.h"\n#include "rnnkit_model.h"\n'
                    "int main(void) { rnnkit_model_state s; rnnkit_model_reset(&s); "
                    "return (int)sizeof s.l1_c; }\n")
    subprocess.run([*COMPILER, *CHECK_FLAGS, "-Werror", f"-I{export.folder}", "-c", str(unit),
                    "-o", str(tmp_path / "only_header.o")], check=True, capture_output=True)
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx:  # the extern "C" block keeps the symbols' C names for C++ callers
        subprocess.run([cxx, "-x", "c++", "-Wall", "-Wextra", "-pedantic", "-Werror",
                        f"-I{export.folder}", "-c", str(unit), "-o", str(tmp_path / "cxx.o")],
                       check=True, capture_output=True)


def test_readme_check_command_passes(exported, tmp_path):
    export, _, _ = exported("gru_2_layers")
    readme = (export.folder / "README.txt").read_text()
    command = re.search(r"^Check:\s+(.*)$", readme, flags=re.M).group(1)
    folder = shutil.copytree(export.folder, tmp_path / "copy")
    result = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    difference = float(re.search(r"max_abs_diff (\S+)", result.stdout).group(1))
    assert difference == pytest.approx(export.report.max_abs_diff, abs=1e-12)


def test_test_program_limit_is_absolute_plus_relative(exported, tmp_path):
    """The generated check fails an output y off by more than TOLERANCE + RELATIVE_TOLERANCE |y|
    and passes otherwise; the oracle is the same rule computed here from its own outputs and
    the eager forward it embeds. TOLERANCE is set to 0 so the relative part alone decides."""
    export, _, _ = exported("lstm")
    expected = export.graph.eager_forward(check_inputs(export.graph)).double().numpy()
    source = (export.folder / f"{export.name}_test.c").read_text()

    def run_with(relative: float) -> tuple[int, np.ndarray]:
        text = re.sub(r"#define TOLERANCE \S+", "#define TOLERANCE 0.0", source)
        text = re.sub(r"#define RELATIVE_TOLERANCE \S+", f"#define RELATIVE_TOLERANCE {relative!r}",
                      text)
        build = tmp_path / f"r{relative:.3g}"
        build.mkdir()
        (build / "check.c").write_text(text)
        c_build.compile_c(COMPILER, [export.folder / f"{export.name}.c", build / "check.c"],
                          build / "check", (*CHECK_FLAGS, f"-I{export.folder}"))
        result = subprocess.run([str(build / "check"), "--outputs"], capture_output=True,
                                text=True, timeout=60)
        rows = [list(map(float, line.split()[3:])) for line in result.stdout.splitlines()
                if line.startswith("y ")]
        return result.returncode, np.array(rows).reshape(expected.shape)

    _, outputs = run_with(1.0)
    ratio = float(np.max(np.abs(outputs - expected) / np.abs(expected)))
    assert ratio > 0  # the C outputs differ somewhere, so the two runs below can disagree
    assert run_with(1.5 * ratio)[0] == 0
    assert run_with(0.5 * ratio)[0] == 1


def test_benchmark_reports_time_per_step(exported):
    export, _, _ = exported("lstm")
    ns = time_c_step(export.folder, "rnnkit_model", steps=2000)
    assert 0.0 < ns < 1e7


def test_check_false_writes_without_compiling(tmp_path, monkeypatch):
    monkeypatch.setattr(c_build, "run_check", lambda *a, **k: pytest.fail("compiled"))
    report = export_c(rnnkit.GRU(I, H), tmp_path / "unchecked", check=False)
    assert report.max_abs_diff is None and report.note == "check=False"
    assert (tmp_path / "unchecked" / "rnnkit_model.c").exists()


def test_no_compiler_gives_a_report_without_a_check(tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang on it
    report = export_c(rnnkit.GRU(I, H), tmp_path / "out")
    assert report.max_abs_diff is None
    assert report.note == "no C compiler found (set CC to one)"
    assert "not checked" in report.summary()


def test_a_cc_naming_no_program_is_an_error_not_a_skipped_check(tmp_path, monkeypatch):
    """A typo in CC skipped the check and reported success (the CLI exited 0)."""
    monkeypatch.setenv("CC", str(tmp_path / "no_such_cc") + " -O2")
    with pytest.raises(CBuildError) as info:
        export_c(rnnkit.GRU(I, H), tmp_path / "out")
    one_line_message(info, "no_such_cc -O2", "names no program found on PATH", "unset it")
    assert not (tmp_path / "out").exists()


def test_a_cc_that_is_no_command_line_names_cc(tmp_path, monkeypatch):
    """An unclosed quote in CC came out as shlex's bare "No closing quotation"."""
    monkeypatch.setenv("CC", '"unterminated')
    with pytest.raises(CBuildError) as info:
        export_c(rnnkit.GRU(I, H), tmp_path / "out")
    one_line_message(info, "CC='\"unterminated'", "is not a valid command line",
                     "No closing quotation", "unset it")
    assert not (tmp_path / "out").exists()


def test_compile_failure_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "broken_cc"
    fake.write_text("#!/bin/sh\necho 'In file included from x.c:1:' >&2\n"
                    "echo 'model.c:3:1: error: expected something' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", shlex.quote(str(fake)))
    with pytest.raises(CBuildError) as info:  # a RuntimeError
        export_c(rnnkit.GRU(I, H), tmp_path / "out")
    one_line_message(info, "error: expected something")
    assert not (tmp_path / "out").exists()
    # the command line reports it as one line (it printed a traceback)
    from corpora import tiny_text
    from rnnkit.cli.main import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(3000), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", "lm", "--corpus", str(corpus), "--steps", "2", "--out", str(run),
                 "--hidden", "8", "--embedding", "4", "--batch-size", "2", "--window", "8",
                 "--sample-length", "0", "--no-progress", "--set", "dynamic.enabled=false"]) == 0
    capsys.readouterr()
    code = main(["export", "--checkpoint", str(run), "--format", "c", "--out",
                 str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "error: expected something" in err[0], err
    assert not (tmp_path / "cli").exists()


def test_mismatch_raises(tmp_path, monkeypatch):
    real = c_build.run_check
    monkeypatch.setattr(c_build, "run_check", lambda *a, **k: real(*a, **k) + 1e-3)
    with pytest.raises(ExportMismatchError, match="differs"):
        export_c(rnnkit.RNN(I, H), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before writing


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("model, layer", [
    (lambda: rnnkit.LSTM(I, H, bidirectional=True), "rnn.stack.layers.0"),
    (lambda: nn.GRU(I, H, bidirectional=True), "rnn"),
    (lambda: rnnkit.Stacked([rnnkit.Recurrent(rnnkit.GRUCell(I, H)),
                             rnnkit.Bidirectional(rnnkit.GRUCell(H, H), rnnkit.GRUCell(H, H))]),
     "rnn.layers.1"),
])
def test_bidirectional_model_is_rejected_naming_the_layer(tmp_path, model, layer):
    with pytest.raises(UnsupportedModelError) as info:
        export_c(model(), tmp_path / "out")
    one_line_message(info, f"layer {layer} ")
    assert not (tmp_path / "out").exists()


def test_path_that_is_a_file_is_a_one_line_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    one_line_value_error(export_c, rnnkit.GRU(I, H), target, match="not a folder")


@pytest.mark.parametrize("name", sorted(h.strip("<>")[:-2] for h in STANDARD_HEADERS) + ["Math"])
def test_names_of_standard_headers_are_refused(tmp_path, name):
    """name="string" wrote string.h, which shadowed <string.h> for code compiled with -I on the
    folder, the generated sources' own includes among them (review, 2026-12-05). The oracle:
    every header the generated sources include (STANDARD_HEADERS), and one in another case."""
    one_line_value_error(export_c, rnnkit.GRU(I, H), tmp_path / "out", name=name,
                         match="shadows the C standard header")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["my-model", "2fast", "", "int", "a b"])
def test_bad_name_is_a_one_line_error(tmp_path, name):
    one_line_value_error(export_c, rnnkit.GRU(I, H), tmp_path / "out", name=name, match="^name '")
    assert not (tmp_path / "out").exists()


def test_non_finite_weights_are_a_one_line_error(tmp_path):
    rnn = nn.GRU(I, H)
    with torch.no_grad():
        rnn.weight_hh_l0[0, 0] = float("nan")
    one_line_value_error(export_c, rnn, tmp_path / "out", match="weight_hh")
    assert not (tmp_path / "out").exists()


def test_literals_round_trip_float32():
    values = np.array([1.0, -0.0, 1e-45, 3.4028235e38, 0.1, -2.5e-7, 123456.79], np.float32)
    for value in values:
        text = c_build.c_float(float(value))
        assert text.endswith("f") and ("." in text or "e" in text), text
        assert np.float32(float(text[:-1])) == value


def test_header_states_the_step_stack_use(tmp_path):
    # Counted by hand from the generated step: per GRU layer two (3H) accumulators, per head op
    # one buffer of its output width; the LSTM layer one (4H) accumulator plus m (H) for the
    # projection and, being residual, an output (P) buffer.
    H, P = 7, 3
    stack = rnnkit.Stacked([rnnkit.Recurrent(rnnkit.GRUCell(4, P)),
                            rnnkit.Recurrent(rnnkit.LSTMCell(P, H, proj_size=P))], residual=True)
    head = nn.Sequential(nn.Linear(P, 5), nn.Tanh())
    export_c(stack, tmp_path, head=head, name="m", check=False)
    header = (tmp_path / "m.h").read_text()
    floats = 2 * 3 * P + (4 * H + H + P) + 5 + 5
    assert f"#define M_STEP_STACK_BYTES {4 * floats}\n" in header


def test_a_name_too_long_for_a_file_name_is_refused(tmp_path):
    """A 300-character name failed on its own file name ("File name too long", naming a
    temporary path). Oracle: a 200-character name exports (its {name}_test.c is 207 bytes,
    under the usual 255); 201 is refused."""
    one_line_value_error(export_c, rnnkit.GRU(I, H), tmp_path / "out", name="m" * 201,
                         match="201 characters long; use at most 200")
    assert not (tmp_path / "out").exists()
    export_c(rnnkit.GRU(I, H), tmp_path / "ok", name="m" * 200, check=False)
    assert (tmp_path / "ok" / ("m" * 200 + "_test.c")).is_file()


@pytest.mark.parametrize("fail_at", [0, 1, 2, 3], ids=["header", "source", "test-program",
                                                      "readme"])
def test_a_replacing_export_that_fails_leaves_the_earlier_export_as_it_was(tmp_path, monkeypatch,
                                                                           fail_at):
    """A full disk part-way through removed the earlier export's source and left the new
    header (probe, 2026-12-08: the working export was gone). Every file is now written in full
    before any replaces its earlier copy. Oracle: the earlier export's bytes afterwards, no
    temporary file left, and a retry that completes the new export."""
    import rnnkit.export.files as files

    folder = tmp_path / "c"
    export_c(nn.GRU(3, 4), folder, check=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    failing = c_file_names("rnnkit_model")[fail_at]
    real_stage = files._stage

    def disk_full_at(where, name, data):
        if name == failing:
            raise OSError(28, "No space left on device")
        return real_stage(where, name, data)

    monkeypatch.setattr(files, "_stage", disk_full_at)
    with pytest.raises(OSError) as info:
        export_c(nn.GRU(3, 64), folder, check=False)
    monkeypatch.setattr(files, "_stage", real_stage)
    one_line_message(info, f"could not write {folder / failing} (No space left on device)",
                     "are unchanged; free space")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    export_c(nn.GRU(3, 64), folder, check=False)  # and a retry completes it
    assert "#define RNNKIT_MODEL_L0_HIDDEN_SIZE 64\n" in (folder / "rnnkit_model.h").read_text()
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)


@pytest.mark.parametrize("user_file, name", [("README.txt", "kws"), ("main.c", "main"),
                                             ("kws_test.c", "kws_test")],
                         ids=["readme", "source-named-main", "another-exports-test-program"])
def test_a_file_the_export_did_not_write_is_never_replaced(tmp_path, user_file, name):
    """export_c replaced a user's README.txt, their main.c (name="main"), and an earlier kws
    export's test program (name="kws_test"), without a word (probe, 2026-12-08). Oracle: the
    file's bytes, and the folder's listing, before and after; the same export into an empty
    folder works."""
    folder = tmp_path / "project"
    if user_file == "kws_test.c":
        export_c(nn.GRU(3, 4), folder, name="kws", check=False)
    else:
        folder.mkdir()
        (folder / user_file).write_text("the user's own\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    message = one_line_value_error(export_c, nn.GRU(3, 4), folder, name=name, check=False,
                                   match=f"{user_file} would be replaced, and it is not this "
                                         f"export's own file")
    assert "move it, or export to another folder" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    export_c(nn.GRU(3, 4), tmp_path / "empty", name=name, check=False)


def test_exports_of_two_names_share_one_folder_and_its_readme(tmp_path):
    """The README.txt of an export named "a" was taken for a user's file when "b" was exported
    into the same folder (review, 2026-12-08). Oracle: both exports' files, and the README
    naming the latest; a user's README is still refused (the test above)."""
    folder = tmp_path / "models"
    export_c(nn.GRU(3, 4), folder, name="a", check=False)
    export_c(nn.LSTM(3, 4), folder, name="b", check=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        {*c_file_names("a"), *c_file_names("b")})
    assert (folder / "README.txt").read_text().startswith("b: a recurrent model exported by")
    assert "GRU" in (folder / "a.h").read_text() or "gru" in (folder / "a.h").read_text()
