"""The README and the guides say what works: every command line they show parses with the CLI,
and every Python block they show runs, with what it claims checked against an oracle.

Python blocks are fragments (``model``, ``frames`` and ``head`` come from the reader's own code),
so each block gets a prelude that defines those names and a check that compares its results with
torch.nn or the same model run eagerly. A block added to the docs without an entry here fails
`test_every_python_block_is_checked`, so nothing documented goes unchecked.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shlex
import sys

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.cli.main import build_parser

from tolerances import assert_close

ROOT = pathlib.Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: an inline code span that is a whole command: `rnnkit generate --checkpoint ...`
INLINE_COMMAND = re.compile(r"`((?:\.venv/bin/)?rnnkit [a-z][^`]*)`")


def _blocks(path: pathlib.Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8"))
            if lang == language]


def _block_commands(path: pathlib.Path) -> list[str]:
    """Every rnnkit command in the page's shell blocks (continuations joined, comments and what
    comes before ``&&`` dropped)."""
    commands = []
    for block in _blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.split("  #")[0].strip()
                if re.match(r"(OMP_NUM_THREADS=\d+ )?(\.venv/bin/)?rnnkit ", part):
                    commands.append(part)
    return commands


def _inline_commands(path: pathlib.Path) -> list[str]:
    """rnnkit commands in the page's inline code spans, outside fenced blocks."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [match.group(1) for match in INLINE_COMMAND.finditer(text)]


def _argv(command: str) -> list[str]:
    words = shlex.split(command.replace("<", "").replace(">", ""))
    while "=" in words[0]:             # an environment assignment before the program
        words.pop(0)
    assert words[0].endswith("rnnkit"), command
    return [word for word in words[1:] if word != "..."]


INLINE_COMMANDS = {(path.relative_to(ROOT).as_posix(), command)
                   for path in DOCS for command in _inline_commands(path)}
DOCUMENTED_COMMANDS = sorted(INLINE_COMMANDS | {(path.relative_to(ROOT).as_posix(), command)
                                                for path in DOCS
                                                for command in _block_commands(path)})


def test_the_docs_show_commands():
    # The extraction itself is checked: the README's first command is among them.
    assert ("README.md", ".venv/bin/rnnkit train lm --minutes 5") in DOCUMENTED_COMMANDS
    assert len(DOCUMENTED_COMMANDS) >= 30


@pytest.mark.parametrize("page,command", DOCUMENTED_COMMANDS,
                         ids=[f"{page}:{command[:60]}" for page, command in DOCUMENTED_COMMANDS])
def test_documented_command_parses(page, command, capsys):
    try:
        args = build_parser().parse_args(_argv(command))
    except SystemExit:
        refusal = capsys.readouterr().err.strip()
        if (page, command) in INLINE_COMMANDS and "arguments are required" in refusal:
            return                     # prose may name an option without the whole command
        pytest.fail(f"{page} shows `{command}`, which the CLI refuses: "
                    f"{refusal}")
    assert hasattr(args, "handler"), f"{page}: `{command}` names no command that runs"


# ----------------------------------------------------------------------------------------------
# Python blocks: a prelude for the names each block takes from the reader, and a check after it.


def _step_oracle(model, head, frames):
    """The head's output at every step of one sequence, run eagerly on the whole sequence."""
    with torch.no_grad():
        output, _ = model(torch.stack(frames)[None])
        return head(output)[0]


def readme_drop_in(namespace, tmp_path):
    return namespace


def check_readme_drop_in(ns):
    expected, (h_expected, c_expected) = ns["reference"](ns["x"])
    assert_close(ns["output"], expected, what="output")
    assert_close(ns["h_n"], h_expected, what="h_n")
    assert_close(ns["c_n"], c_expected, what="c_n")


def readme_streaming(ns, tmp_path):
    # the block makes its own model and head (it once used the bidirectional model of the
    # block above, which streaming refuses); the input width is theirs, 16
    ns["rnnkit"], ns["torch"] = rnnkit, torch
    ns["frames"] = list(torch.randn(12, 16))
    ns["chunk"] = torch.randn(5, 16)
    return ns


def check_readme_streaming(ns):
    expected = _step_oracle(ns["model"], ns["head"], ns["frames"])
    assert_close(ns["y"], expected[-1], what="last step")
    restored = rnnkit.runtime.StreamingSession(ns["model"], head=ns["head"])
    restored.state_from_bytes(ns["blob"])
    frame = torch.randn(16)
    assert_close(restored.step(frame, stream="mic-2"), ns["session"].step(frame, stream="mic-2"),
                 what="a step after restoring the saved state")


def readme_export(ns, tmp_path):
    pytest.importorskip("onnxruntime", reason="the block exports ONNX: needs rnnkit[export]")
    ns["model"] = rnnkit.GRU(6, 10, batch_first=True)
    ns["head"] = nn.Linear(10, 2)
    return ns


def check_readme_export(ns):
    # Each export runs itself against PyTorch before returning; here the files it promises.
    for path in ("out_onnx/model.onnx", "out_np/rnnkit_numpy_runtime.py",
                 "out_c/rnnkit_model.h", "out_c/rnnkit_model.c"):
        assert pathlib.Path(path).is_file(), path


def readme_layers(ns, tmp_path):
    ns["torch"] = torch
    ns["rnnkit"] = rnnkit
    return ns


def check_readme_layers(ns):
    deep, lengths = ns["deep"], torch.tensor([20, 17, 9, 3])
    assert ns["output"].shape == (4, 20, 32)
    deep.eval()                        # dropout off: padded batch vs each row alone
    x = torch.randn(4, 20, 12)
    with torch.no_grad():
        padded, _ = deep(x, lengths=lengths)
        for row, length in enumerate(lengths.tolist()):
            alone, _ = deep(x[row:row + 1, :length])
            assert_close(padded[row, :length], alone[0], what=f"row {row}")
    both = ns["both"](torch.randn(2, 5, 12))[0]
    assert both.shape == (2, 5, 32)    # merge="sum" keeps the width


def classification_api(ns, tmp_path, monkeypatch):
    pytest.importorskip("aeon", reason="the block trains on JapaneseVowels: needs rnnkit[classify]")
    from rnnkit.tasks.classify import task
    from rnnkit.tasks.classify.data import load_split

    ns["list_of_arrays_T_by_C"] = load_split("JapaneseVowels", "test").sequences[:6]
    original = task.ClassifyConfig

    def quick_train():
        return dataclasses.replace(original().train, max_epochs=2)

    @dataclasses.dataclass
    class QuickConfig(original):     # the block's calls, with a run of seconds
        train: object = dataclasses.field(default_factory=quick_train)

    monkeypatch.setattr(task, "ClassifyConfig", QuickConfig)
    return ns


def check_classification_api(ns):
    names, probabilities = ns["names"], torch.as_tensor(ns["probabilities"])
    classes = ns["classifier"].class_names
    assert probabilities.shape == (len(ns["list_of_arrays_T_by_C"]), len(classes))
    assert_close(probabilities.sum(1), torch.ones(len(names), dtype=probabilities.dtype))
    assert names == [classes[i] for i in probabilities.argmax(1).tolist()]


def deployment_streaming(ns, tmp_path):
    ns["frames"] = list(torch.randn(10, 16))
    return ns


def check_deployment_streaming(ns):
    expected = _step_oracle(ns["model"], ns["head"], ns["frames"])
    assert_close(ns["y"], expected[-1], what="last step")


def _deployment_model(ns):
    torch.manual_seed(0)
    ns["model"] = rnnkit.LSTM(5, 12, num_layers=2, batch_first=True)
    ns["head"] = nn.Linear(12, 3)


def deployment_onnx(ns, tmp_path):
    pytest.importorskip("onnxruntime", reason="the block exports ONNX: needs rnnkit[export]")
    _deployment_model(ns)
    ns["x_t"] = torch.randn(2, 1, 5)
    return ns


def check_deployment_onnx(ns):
    with torch.no_grad():
        expected = ns["head"](ns["model"](ns["x_t"])[0])
    assert_close(torch.as_tensor(ns["y_t"]), expected, what="ONNX step")


def deployment_numpy(ns, tmp_path, monkeypatch):
    _deployment_model(ns)
    ns["x_t"] = torch.randn(2, 5).numpy()
    ns["x"] = torch.randn(2, 7, 5).numpy()
    ns["state"] = None
    (tmp_path / "model_np").mkdir()    # the reader puts the bundle's folder on the path
    monkeypatch.syspath_prepend(str(tmp_path / "model_np"))
    monkeypatch.delitem(sys.modules, "rnnkit_numpy_runtime", raising=False)
    return ns


def check_deployment_numpy(ns):
    with torch.no_grad():
        step = ns["head"](ns["model"](torch.as_tensor(ns["x_t"])[:, None])[0])[:, 0]
    assert_close(torch.as_tensor(ns["y_t"]), step, what="numpy step")
    with torch.no_grad():              # forward() without a state starts from zeros
        expected = ns["head"](ns["model"](torch.as_tensor(ns["x"]))[0])
    assert_close(torch.as_tensor(ns["ys"]), expected, what="numpy forward")


def deployment_c(ns, tmp_path):
    _deployment_model(ns)
    return ns


def check_deployment_c(ns):
    # export_c compiles kws_test.c and compares it with PyTorch before it returns.
    for name in ("kws.h", "kws.c", "kws_test.c", "README.txt"):
        assert (pathlib.Path("model_c") / name).is_file(), name


class _RegressionBatches:
    """(x, y) minibatches of a fixed linear map, resumable as the Trainer asks."""

    def __init__(self, x, y, batch_size=32):
        self.x, self.y, self.batch_size, self.position = x, y, batch_size, 0

    def __next__(self):
        start = self.position % len(self.x)
        self.position += self.batch_size
        return self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]

    @property
    def epochs_done(self):
        return self.position / len(self.x)

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def training_own_model(ns, tmp_path, monkeypatch):
    from rnnkit.training import TrainConfig

    torch.manual_seed(0)
    weight = torch.randn(3, 4)
    x = torch.randn(256, 4)
    ns["model"] = nn.Linear(4, 3, bias=False)
    ns["initial_weight"] = ns["model"].weight.detach().clone()
    ns["true_weight"] = weight
    ns["my_batches"] = _RegressionBatches(x, x @ weight.T)
    ns["validation_loss"] = lambda m: float(((m(x) - x @ weight.T) ** 2).mean())

    def quick(*args, **kwargs):        # the block's 5000 steps, shortened to a run of seconds
        kwargs.update(max_steps=300, eval_every=100, learning_rate=3e-2)
        return TrainConfig(*args, **kwargs)

    # the name the block imports; the Trainer's own TrainConfig stays the class it checks for
    monkeypatch.setitem(sys.modules["rnnkit.training"].__dict__, "TrainConfig", quick)
    return ns


def check_training_own_model(ns):
    # Oracle: the map that generated the data, which the model had not learned at the start.
    start = (ns["initial_weight"] - ns["true_weight"]).abs().max()
    error = (ns["model"].weight.detach() - ns["true_weight"]).abs().max()
    assert error < start / 20, f"learned weight is {error:.3g} from the true one ({start:.3g} at first)"
    assert ns["result"].steps == 300


#: (page, index of the Python block on that page) -> (prelude, check)
PYTHON_BLOCKS = {
    ("README.md", 0): (readme_drop_in, check_readme_drop_in),
    ("README.md", 1): (readme_streaming, check_readme_streaming),
    ("README.md", 2): (readme_export, check_readme_export),
    ("README.md", 3): (readme_layers, check_readme_layers),
    ("docs/guide/classification.md", 0): (classification_api, check_classification_api),
    ("docs/guide/deployment.md", 0): (deployment_streaming, check_deployment_streaming),
    ("docs/guide/deployment.md", 1): (deployment_onnx, check_deployment_onnx),
    ("docs/guide/deployment.md", 2): (deployment_numpy, check_deployment_numpy),
    ("docs/guide/deployment.md", 3): (deployment_c, check_deployment_c),
    ("docs/guide/training.md", 0): (training_own_model, check_training_own_model),
}

SHOWN_BLOCKS = [(path.relative_to(ROOT).as_posix(), index)
                for path in DOCS for index, _ in enumerate(_blocks(path, "python"))]


def test_every_python_block_is_checked():
    assert sorted(SHOWN_BLOCKS) == sorted(PYTHON_BLOCKS)


@pytest.mark.parametrize("page,index", sorted(PYTHON_BLOCKS), ids=lambda v: str(v))
def test_python_block_runs(page, index, tmp_path, monkeypatch):
    prelude, check = PYTHON_BLOCKS[(page, index)]
    source = _blocks(ROOT / page, "python")[index]
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_block"}
    takes_monkeypatch = prelude.__code__.co_argcount == 3
    namespace = (prelude(namespace, tmp_path, monkeypatch) if takes_monkeypatch
                 else prelude(namespace, tmp_path))
    exec(compile(source, f"{page} python block {index}", "exec"), namespace)
    check(namespace)
