"""Export a recurrent model to dependency-free C99: a header, a source file and a test program.

:func:`export_c` turns a :class:`~rnnkit.runtime.graph.StreamingGraph` into code that runs one
step at a time for one stream (batch 1; one state struct per stream)::

    x_t (I floats, or a token id) -> [embedding] -> layer 0 -> ... -> layer L-1 -> head -> y_t (O)

with torch's gate order and equations (sigma = logistic sigmoid, * elementwise, per step t):

    LSTM  i,f,g,o = sigma, sigma, tanh, sigma of (W_ih x + b_ih + W_hh h + b_hh)   (4H)
          c = f * c + i * g;  m = o * tanh(c);  h = m  (or h = W_hr m with proj_size P)
    GRU   r = sigma(W_ir x + b_ir + W_hr h + b_hr);  z likewise
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h = (1 - z) * n + z * h
    RNN   h = tanh or relu (W_ih x + b_ih + W_hh h + b_hh)

Shapes per step: x (I), gates (G = 4H, 3H or H), c (H), h (P = proj_size or H), y (O); the check
runs B streams of T steps, inputs (B, T, I) or token ids (B, T), outputs (B, T, O).
A residual layer passes ``h + x`` upwards; the head applies linear (y = W x + b), relu, tanh and
sigmoid ops to the top layer's output. The folder gets ``{name}.h``, ``{name}.c`` (weights as
``static const float`` arrays printed with "%.9g", which round-trips float32 exactly),
``{name}_test.c`` (check inputs and PyTorch's outputs embedded; ``--bench N`` times steps) and
``README.txt``. Compiling and running live in :mod:`rnnkit.export.c_build`.

Speed: each matrix is stored transposed, (K, G) for a (G, K) torch weight, so the inner loop
``acc[g] += v[k] * w_t[k * G + g]`` runs over contiguous g and compilers vectorize it without
-ffast-math (a per-row dot product is a reduction they may not reorder). exp, sigmoid and tanh
are branch-free float code rather than libm calls, so the gate loops vectorize as well.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import check_flag
from ..runtime.graph import StreamingGraph, streaming_graph
from ..training import folder_for_writing
from . import c_build
from .c_build import c_array
from .files import check_replaceable, same_first_line, write_files
from .check import (RELATIVE_TOLERANCE, TOLERANCE, ExportReport, check_inputs, compare,
                    expected_outputs)

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while _Bool _Complex _Imaginary".split())
_ACTIVATIONS = {"relu": "rk_relu", "tanh": "rk_tanh", "sigmoid": "rk_sigmoid"}

# Helpers shared by every generated model. RK_INLINE forces inlining on gcc/clang so the sizes,
# literal constants at each call, reach the loops: gcc -O2 vectorizes only loops whose trip
# count it knows. rk_exp: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n * LN2_HI is
# exact), e^r by its Taylor series to r^7 (relative error < 1e-8 before rounding), 2^n built in
# the exponent bits. Clamping x to [-87, 88] keeps 2^n a normal float, so exp saturates near
# 1.6e-38 and 1.6e38 instead of reaching 0 or inf; sigmoid and tanh still reach their limits
# exactly. NaN fails both clamp comparisons and propagates.
_C_HELPERS = r"""
#if defined(__GNUC__) || defined(__clang__)
#define RK_INLINE static inline __attribute__((always_inline))
#define RK_ALIGNED __attribute__((aligned(64)))
#else
#define RK_INLINE static inline
#define RK_ALIGNED
#endif

/* take_first ? a : b as bit masks, never a branch: gcc turns "?:" into branches, moves float
 * work into them and, under the default -ftrapping-math, will not merge them back into
 * straight-line code, so without AVX-512's masked operations the loops would not vectorize */
RK_INLINE float rk_select(int take_first, float a, float b)
{
    uint32_t mask = 0u - (uint32_t)take_first, a_bits, b_bits, bits;
    float result;
    memcpy(&a_bits, &a, sizeof a_bits);
    memcpy(&b_bits, &b, sizeof b_bits);
    bits = (a_bits & mask) | (b_bits & ~mask);
    memcpy(&result, &bits, sizeof result);
    return result;
}

RK_INLINE float rk_exp(float x)
{
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float shifted, n, r, p, scale;
    uint32_t n_bits, scale_bits;
    x = rk_select(x < -87.0f, -87.0f, x);
    x = rk_select(x > 88.0f, 88.0f, x);
    shifted = x * 1.44269504f + round_magic; /* n = round(x / ln2) in the low mantissa bits */
    memcpy(&n_bits, &shifted, sizeof n_bits);
    n = shifted - round_magic;
    r = (x - n * 0.693145751953125f) - n * 1.42860677e-06f;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
        + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    /* unsigned arithmetic: defined wrap-around even for the garbage bits of a NaN input */
    scale_bits = (n_bits - 0x4B400000u + 127u) << 23;
    memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

RK_INLINE float rk_sigmoid(float x) { return 1.0f / (1.0f + rk_exp(-x)); }

/* tanh(|x|) = (1 - e) / (1 + e) with e = exp(-2|x|); 1 - e is exact for e >= 1/2 (|x| <= 0.34),
 * yet the relative error of e grows by e / (1 - e) as |x| -> 0, so |x| < 0.25 uses the odd
 * Taylor series to x^9 (truncation < 1e-8 relative there). */
RK_INLINE float rk_tanh(float x)
{
    float a = rk_select(x < 0.0f, -x, x);
    float e = rk_exp(-2.0f * a);
    float large = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = x + x * x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315
        + x2 * (62.0f / 2835))));
    large = rk_select(x < 0.0f, -large, large);
    return rk_select(a < 0.25f, small, large); /* NaN: the comparison is false, large is NaN */
}

RK_INLINE float rk_relu(float x) { return rk_select(x < 0.0f, 0.0f, x); } /* NaN stays */

/* acc[g] += sum_k v[k] * w_t[k * G + g] for a matrix stored transposed, (K, G). Four rows
 * per pass: compilers keep acc in memory across k, so this loads and stores it 4x less often */
RK_INLINE void rk_matvec_add(float *restrict acc, const float *restrict v,
                             const float *restrict w_t, int K, int G)
{
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const float v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];
        const float *restrict r0 = w_t + (long)k * G, *restrict r1 = r0 + G;
        const float *restrict r2 = r1 + G, *restrict r3 = r2 + G;
        for (int g = 0; g < G; ++g)
            acc[g] += (v0 * r0[g] + v1 * r1[g]) + (v2 * r2[g] + v3 * r3[g]);
    }
    for (; k < K; ++k) {
        const float vk = v[k], *restrict row = w_t + (long)k * G;
        for (int g = 0; g < G; ++g)
            acc[g] += vk * row[g];
    }
}

RK_INLINE void rk_lstm_update(const float *restrict gates, float *restrict c,
                              float *restrict m, int H)
{
    for (int j = 0; j < H; ++j) {
        float i = rk_sigmoid(gates[j]), f = rk_sigmoid(gates[H + j]);
        float g = rk_tanh(gates[2 * H + j]), o = rk_sigmoid(gates[3 * H + j]);
        c[j] = f * c[j] + i * g;
        m[j] = o * rk_tanh(c[j]);
    }
}

/* ax = W_ih x + b_ih, ah = W_hh h + b_hh, both (3H) in the order r, z, n */
RK_INLINE void rk_gru_update(const float *restrict ax, const float *restrict ah,
                             float *restrict h, int H)
{
    for (int j = 0; j < H; ++j) {
        float r = rk_sigmoid(ax[j] + ah[j]), z = rk_sigmoid(ax[H + j] + ah[H + j]);
        float n = rk_tanh(ax[2 * H + j] + r * ah[2 * H + j]);
        h[j] = (1.0f - z) * n + z * h[j];
    }
}
"""

_EQUATIONS = {
    "lstm": [" i,f,g,o = sigma, sigma, tanh, sigma of (W_ih x + b_ih + W_hh h + b_hh)",
             " c = f*c + i*g;  m = o*tanh(c);  h = m, or h = W_hr m with a projection"],
    "gru": [" r = sigma(W_ir x + b_ir + W_hr h + b_hr);  z = sigma(... same with z ...)",
            " n = tanh(W_in x + b_in + r*(W_hn h + b_hn));  h = (1 - z)*n + z*h"],
    "rnn_tanh": [" h = tanh(W_ih x + b_ih + W_hh h + b_hh)"],
    "rnn_relu": [" h = relu(W_ih x + b_ih + W_hh h + b_hh)"],
}


def _weights(name: str, tensor: torch.Tensor, transpose: bool = True) -> list[str]:
    """A static const array holding ``tensor`` (transposed to (K, G) for a (G, K) matrix)."""
    data = tensor.t() if transpose and tensor.dim() == 2 else tensor
    return c_array(f"static const float {name}[{data.numel()}] RK_ALIGNED",
                   data.contiguous().flatten().tolist())


def _check_graph(graph: StreamingGraph) -> None:
    """One-line ValueError for weights C cannot hold (inf or NaN has no float literal)."""
    named = [("embedding", graph.embedding)]
    for layer in graph.layers:
        named += [(f"{layer.name}.{field}", getattr(layer, field))
                  for field in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]
    named += [(f"{op.name}.{field}", getattr(op, field)) for op in graph.head
              for field in ("weight", "bias")]
    for what, tensor in named:
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{what} holds inf or NaN values, which C float literals "
                             f"cannot express; fix or retrain the model before exporting")


def _layer_code(index: int, layer, source: str) -> tuple[list[str], list[str], list[str], str]:
    """(weight arrays, scratch declarations, step statements, output pointer) for one layer."""
    kind, I, H, P = layer.kind, layer.input_size, layer.hidden_size, layer.output_size
    G = {"lstm": 4, "gru": 3}.get(kind, 1) * H
    prefix, state_h = f"l{index}", f"s->l{index}_h"
    arrays = _weights(f"{prefix}_w_ih_t", layer.weight_ih) + _weights(
        f"{prefix}_w_hh_t", layer.weight_hh)
    has_bias = layer.bias_ih is not None
    scratch, code = [], [f"    /* layer {index}: {kind}, {I} -> {P} ({layer.name}) */"]
    if kind == "gru":  # n needs W_hn h + b_hn apart from the input's part: two accumulators
        scratch += [f"    float {prefix}_ax[{G}], {prefix}_ah[{G}];"]
        for side, bias, matrix, vector, size in (("ax", layer.bias_ih, "w_ih_t", source, I),
                                                 ("ah", layer.bias_hh, "w_hh_t", state_h, H)):
            acc = f"{prefix}_{side}"
            if has_bias:
                arrays += _weights(f"{prefix}_b_{side}", bias)
                code.append(f"    memcpy({acc}, {prefix}_b_{side}, sizeof {acc});")
            else:
                code.append(f"    memset({acc}, 0, sizeof {acc});")
            code.append(f"    rk_matvec_add({acc}, {vector}, {prefix}_{matrix}, {size}, {G});")
        code.append(f"    rk_gru_update({prefix}_ax, {prefix}_ah, {state_h}, {H});")
    else:  # LSTM and Elman: the x and h products share one accumulator
        scratch.append(f"    float {prefix}_acc[{G}];")
        if has_bias:
            arrays += _weights(f"{prefix}_b", layer.bias_ih + layer.bias_hh)
            code.append(f"    memcpy({prefix}_acc, {prefix}_b, sizeof {prefix}_acc);")
        else:
            code.append(f"    memset({prefix}_acc, 0, sizeof {prefix}_acc);")
        code += [f"    rk_matvec_add({prefix}_acc, {source}, {prefix}_w_ih_t, {I}, {G});",
                 f"    rk_matvec_add({prefix}_acc, {state_h}, {prefix}_w_hh_t, {P}, {G});"]
        if kind == "lstm" and layer.weight_hr is not None:
            arrays += _weights(f"{prefix}_w_hr_t", layer.weight_hr)
            scratch.append(f"    float {prefix}_m[{H}];")
            code += [f"    rk_lstm_update({prefix}_acc, s->{prefix}_c, {prefix}_m, {H});",
                     f"    memset({state_h}, 0, sizeof s->{prefix}_h);",
                     f"    rk_matvec_add({state_h}, {prefix}_m, {prefix}_w_hr_t, {H}, {P});"]
        elif kind == "lstm":
            code.append(f"    rk_lstm_update({prefix}_acc, s->{prefix}_c, {state_h}, {H});")
        else:
            act = _ACTIVATIONS[kind[4:]]
            code.append(f"    for (int j = 0; j < {H}; ++j) {state_h}[j] = {act}({prefix}_acc[j]);")
    if not layer.residual:
        return arrays, scratch, code, state_h
    scratch.append(f"    float {prefix}_out[{P}];")
    code.append(f"    for (int j = 0; j < {P}; ++j) {prefix}_out[j] = {state_h}[j] + {source}[j];")
    return arrays, scratch, code, f"{prefix}_out"


def _head_code(graph: StreamingGraph, source: str):
    """(weight arrays, scratch, statements, output pointer) for the head ops."""
    arrays, scratch, code = [], [], []
    width = graph.layers[-1].output_size
    for index, op in enumerate(graph.head):
        buffer = f"head{index}"
        code.append(f"    /* head op {index}: {op.kind} ({op.name}) */")
        if op.kind == "linear":
            width = int(op.weight.shape[0])
            arrays += _weights(f"{buffer}_w_t", op.weight)
            if op.bias is not None:
                arrays += _weights(f"{buffer}_b", op.bias)
                code.append(f"    memcpy({buffer}, {buffer}_b, sizeof {buffer});")
            else:
                code.append(f"    memset({buffer}, 0, sizeof {buffer});")
            code.append(f"    rk_matvec_add({buffer}, {source}, {buffer}_w_t, "
                        f"{op.weight.shape[1]}, {width});")
        else:  # a fresh buffer: the source may be a layer's state, which must stay unchanged
            code.append(f"    for (int j = 0; j < {width}; ++j) "
                        f"{buffer}[j] = {_ACTIVATIONS[op.kind]}({source}[j]);")
        scratch.append(f"    float {buffer}[{width}];")
        source = buffer
    return arrays, scratch, code, source


def _source_file(graph: StreamingGraph, name: str) -> tuple[str, int]:
    """The source text, and how many floats of scratch the step function keeps on the stack."""
    upper = name.upper()
    arrays, scratch, code = [], [], []
    if graph.embedding is not None:
        arrays += _weights("embedding", graph.embedding, transpose=False)
        code += ["    /* out-of-range ids are clamped into [0, V - 1] rather than read outside */",
                 "    if (token < 0) token = 0;",
                 f"    if (token >= {upper}_VOCAB_SIZE) token = {upper}_VOCAB_SIZE - 1;",
                 f"    x = embedding + (long)token * {graph.input_size};"]
        scratch.append("    const float *x;")
    source = "x"
    for index, layer in enumerate(graph.layers):
        layer_arrays, layer_scratch, layer_code, source = _layer_code(index, layer, source)
        arrays, scratch, code = arrays + layer_arrays, scratch + layer_scratch, code + layer_code
    head_arrays, head_scratch, head_code, source = _head_code(graph, source)
    arrays, scratch, code = arrays + head_arrays, scratch + head_scratch, code + head_code
    code.append(f"    memcpy(y, {source}, sizeof(float) * {upper}_OUTPUT_SIZE);")
    reset = [f"    memset(s->l{k}_{field}, 0, sizeof s->l{k}_{field});"
             for k, layer in enumerate(graph.layers) for field in layer.state_sizes()]
    scratch_floats = sum(int(size) for line in scratch for size in re.findall(r"\[(\d+)\]", line))
    return "\n".join([
        f"/* {name}.c: generated by rnnkit.export.export_c; see {name}.h. C99, no allocation,",
        " * no global mutable state, no libm: exp, sigmoid and tanh are computed below. */",
        "#include <stdint.h>", "#include <string.h>", "", f'#include "{name}.h"',
        _C_HELPERS, *arrays, "", f"void {name}_reset({name}_state *s)", "{", *reset, "}", "",
        f"void {name}_step({name}_state *s, {_step_input(graph)}, float *y)", "{",
        *scratch, *code, "}", ""]), scratch_floats


def _step_input(graph: StreamingGraph) -> str:
    return "int token" if graph.embedding is not None else "const float *x"


def _header_file(graph: StreamingGraph, name: str, scratch_floats: int) -> str:
    upper = name.upper()
    sizes = ([f"#define {upper}_VOCAB_SIZE {graph.vocab_size}",
              f"#define {upper}_EMBEDDING_SIZE {graph.input_size}"]
             if graph.embedding is not None else [f"#define {upper}_INPUT_SIZE {graph.input_size}"])
    sizes += [f"#define {upper}_OUTPUT_SIZE {graph.output_size}",
              f"#define {upper}_NUM_LAYERS {len(graph.layers)}",
              f"/* bytes of scratch arrays {name}_step keeps on the stack (plus a few scalars) */",
              f"#define {upper}_STEP_STACK_BYTES {4 * scratch_floats}"]
    fields, described = [], []
    for k, layer in enumerate(graph.layers):
        sizes += [f"#define {upper}_L{k}_{what.upper()}_SIZE {getattr(layer, what + '_size')}"
                  for what in ("input", "hidden", "output")]
        fields += [f"    float l{k}_{field}[{upper}_L{k}_{'OUTPUT' if field == 'h' else 'HIDDEN'}"
                   f"_SIZE]; /* layer {k} {field} */" for field in layer.state_sizes()]
        described.append(f" *   layer {k}: {layer.kind}, {layer.input_size} -> hidden "
                         f"{layer.hidden_size} -> {layer.output_size}"
                         + (", residual (passes h + x up)" if layer.residual else ""))
    for kind in dict.fromkeys(layer.kind for layer in graph.layers):
        described += [f" *   {kind}:"] + [f" *    {line}" for line in _EQUATIONS[kind]]
    ops = ", ".join(op.kind for op in graph.head) or "none (y = top layer's h)"
    if graph.embedding is not None:
        input_doc = [f" *   token: an id in [0, {upper}_VOCAB_SIZE), x = embedding[token] (ids "
                     f"outside are clamped into range)"]
        call = f"{name}_step(&s, token, y);"
    else:
        input_doc, call = [f" *   x: {upper}_INPUT_SIZE floats"], f"{name}_step(&s, x, y);"
    guard = f"{upper}_H"
    return "\n".join([
        f"/* {name}.h: a recurrent model exported by rnnkit.export.export_c (do not edit).",
        " *",
        " * One step of one stream: x_t -> layers -> head -> y_t, torch's equations and gate order",
        " * (sigma = logistic sigmoid, * elementwise, W x a matrix-vector product):",
        *described,
        f" *   head: {ops}",
        " *",
        " * sigmoid and tanh are branch-free float code (no libm), within ~2e-7 of torch's; they",
        " * saturate for large |inputs| (+-inf included) and propagate NaN.",
        " *",
        " * Usage:", *input_doc, f" *   y: {upper}_OUTPUT_SIZE floats, written by each step",
        f" *     {name}_state s;",
        f" *     float y[{upper}_OUTPUT_SIZE];",
        f" *     {name}_reset(&s);             (zero state: once per stream)",
        f" *     for each step t: {call}",
        " * All state lives in the struct: one per concurrent stream, copy it to snapshot.",
        f" * Build: cc -std=c99 -O2 -c {name}.c   (C99, no libm, no allocation)",
        " */",
        f"#ifndef {guard}", f"#define {guard}", "", *sizes, "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
        "typedef struct {", *fields, f"}} {name}_state;", "",
        f"void {name}_reset({name}_state *s);",
        f"void {name}_step({name}_state *s, {_step_input(graph)}, float *y);", "",
        "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {guard} */", ""])


def _readme(name: str) -> str:
    return (f"{name}: a recurrent model exported by rnnkit.export.export_c.\n\n"
            f"  {name}.h       sizes, state struct, {name}_reset and {name}_step (usage inside)\n"
            f"  {name}.c       weights and the step function (C99, no allocation, no libm)\n"
            f"  {name}_test.c  checks the C outputs against PyTorch's on "
            f"{c_build.CHECK_DESCRIPTION}\n\n"
            f"Check:     cc {name}.c {name}_test.c {' '.join(c_build.CHECK_FLAGS)} -o {name}_test "
            f"-lm && ./{name}_test\n"
            f"Benchmark: cc {name}.c {name}_test.c -std=c99 -O3 -march=native -o {name}_bench -lm "
            f"&& ./{name}_bench --bench 20000\n")


#: The C11 standard library headers, by file name without ".h".
_C_STANDARD_HEADERS = frozenset(
    "assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal "
    "stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath "
    "threads time uchar wchar wctype".split())


def check_c_name(name, option: str = "name") -> None:
    """``name`` must be a C identifier of at most 200 characters (it prefixes the files and
    symbols of a C export); else a one-line ValueError naming it as ``option`` (the CLI
    passes "--name")."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ValueError(f"{option} {name!r} must be a C identifier (a letter, then letters, "
                         f"digits or underscores); it prefixes files and symbols")
    if len(name) > 200:  # {name}_test.c must fit a file name (255 bytes on most file systems)
        raise ValueError(f"{option} is {len(name)} characters long; use at most 200")
    if name in _C_KEYWORDS:
        raise ValueError(f"{option} {name!r} is a C keyword; choose another name")
    if name.lower() in _C_STANDARD_HEADERS:
        # {name}.h would shadow <{name}.h> for code built with the export folder on the include
        # path (-I), the generated sources' own #include <string.h> among them
        raise ValueError(f"{option} {name!r} would write {name}.h, which shadows the C "
                         f"standard header <{name.lower()}.h>; choose another name")


#: README.txt's first line, for an export of any name: exports of several names share it
_README_FIRST_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9_]*: a recurrent model exported by "
                                rb"rnnkit\.export\.export_c\.")


def _written_by_export_c(path: Path, new: bytes) -> bool:
    """Whether the file at ``path`` is one an earlier export_c wrote there: a source, header or
    test program of this name (its first line names it), or the README of an export of any
    name, which the new export's replaces."""
    if path.name == "README.txt":
        try:
            with open(path, "rb") as file:
                return bool(_README_FIRST_LINE.fullmatch(file.readline().rstrip(b"\r\n")))
        except OSError:
            return False
    return same_first_line(path, new)


def c_file_names(name: str) -> tuple[str, ...]:
    """The files a C export named ``name`` writes: header, source, test program, README."""
    return f"{name}.h", f"{name}.c", f"{name}_test.c", "README.txt"


def export_c(model, path, *, head=None, embedding=None, name: str = "rnnkit_model",
             check: bool = True) -> ExportReport:
    """Write ``model`` (plus optional head and embedding) as C99 to the folder ``path``.

    model, head, embedding: as :func:`rnnkit.runtime.graph.streaming_graph` takes them
    (unidirectional layers; bidirectional ones raise UnsupportedModelError). name: a C
    identifier prefixing the files ({name}.h, {name}.c, {name}_test.c, README.txt) and symbols.
    check: compile the test program (env CC, else cc/gcc/clang) in a temporary folder and
    compare its outputs with PyTorch's on :func:`~rnnkit.export.check.check_inputs`; a
    difference past the check's limit (``check.LIMIT_TEXT``) raises ExportMismatchError and a
    compile failure CBuildError (a RuntimeError), both before anything is written. Without a
    compiler the files are written and the report has max_abs_diff None and says why. The
    folder is created if needed; a file already at one of the four paths is replaced only if
    an earlier export_c of the same name wrote it (a user's README.txt or main.c is refused
    with a ValueError before anything is written). All files are written in full before any
    replaces its earlier copy, {name}.c last, so a failed write (a full disk) leaves an
    earlier export as it was (:mod:`rnnkit.export.files`). Raises UnsupportedModelError (a
    ValueError) naming the first unsupported part.
    """
    check_c_name(name)
    check_flag("check", check)  # "no" ran the check
    graph = streaming_graph(model, head=head, embedding=embedding)
    _check_graph(graph)
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; pass a folder path to export "
                         f"the C files into")
    inputs = check_inputs(graph)
    expected = expected_outputs("C", graph, inputs)  # the test program holds them
    source, scratch_floats = _source_file(graph, name)
    files = dict(zip(c_file_names(name), (
        _header_file(graph, name, scratch_floats), source,
        c_build.check_program_source(graph, name, inputs, expected, TOLERANCE,
                                     RELATIVE_TOLERANCE),
        _readme(name))))
    difference, note = None, "check=False"
    if check:
        compiler = c_build.find_c_compiler()
        if compiler is None:
            note = "no C compiler found (set CC to one)"
        else:  # before writing, so a mismatch or compile error leaves no wrong files behind
            outputs = c_build.run_check(files, name, compiler)
            difference = compare("C", outputs, expected.numpy())
            note = f"compiled with {' '.join(compiler)} {' '.join(c_build.CHECK_FLAGS)}"
    contents = {filename: text.encode("utf-8") for filename, text in files.items()}
    check_replaceable(folder, contents, "export_c", _written_by_export_c)  # a user's README.txt
    # or main.c stays
    with folder_for_writing(folder):
        # {name}.c last, an earlier one removed first (files.py): the new header never sits
        # beside the old source, which compile together without a word
        write_files(folder, contents, last=f"{name}.c")
    return ExportReport("c", folder, tuple(files), difference, note)
