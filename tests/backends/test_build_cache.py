"""The build cache of the C++ extensions (rnnkit.backends.fused.build): a finished build is
stamped with its sha256 and loaded without a compiler or ninja; a truncated one is rebuilt; a
lock file left by a killed build does not block later builds; builders wait on each other.

Each case builds a tiny CPython extension (no torch headers, a few seconds) in a subprocess,
so a crash or a hang in the loader fails the test instead of ending pytest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from rnnkit.backends import BACKENDS

TINY_SOURCE = textwrap.dedent("""
    #include <Python.h>
    static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(42); }
    static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {nullptr, nullptr, 0, nullptr}};
    static struct PyModuleDef tiny = {PyModuleDef_HEAD_INIT, "rnnkit_tiny", nullptr, -1, methods};
    PyMODINIT_FUNC PyInit_rnnkit_tiny(void) { return PyModule_Create(&tiny); }
""")

LOAD_SCRIPT = textwrap.dedent("""
    import logging, pathlib, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rnnkit.backends.fused import build
    build.SOURCE_DIR = pathlib.Path(sys.argv[1])
    module = build.load_extension("rnnkit_tiny", ("tiny.cpp",), python_module=True,
                                  build_directory=sys.argv[2])
    print("answer", module.answer())
""")

needs_build_tools = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None or shutil.which("ninja") is None,
    reason="building the test extension needs a C++ compiler and ninja")


@pytest.fixture
def tiny(tmp_path):
    """(source folder, build folder, library path) of the tiny extension."""
    sources = tmp_path / "csrc"
    sources.mkdir()
    (sources / "tiny.cpp").write_text(TINY_SOURCE)
    folder = tmp_path / "build"
    folder.mkdir()
    return sources, folder, folder / "rnnkit_tiny.so"


def load(tiny, timeout=300, **environment):
    sources, folder, _ = tiny
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(sources), str(folder)],
                            env={**os.environ, **environment}, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "answer 42" in result.stdout, result.stdout
    return "building rnnkit_tiny" in result.stderr  # whether it compiled


def stamp_matches(library) -> bool:
    stamp = library.with_name(library.name + ".sha256").read_text().strip()
    return stamp == hashlib.sha256(library.read_bytes()).hexdigest()


NO_TOOLS = {"CXX": "/nonexistent/c++", "PATH": "/nonexistent"}


@needs_build_tools
def test_a_stamped_build_loads_without_a_compiler_or_ninja(tiny):
    assert load(tiny) is True
    assert stamp_matches(tiny[2])
    assert load(tiny, **NO_TOOLS) is False


@needs_build_tools
def test_without_tools_an_unstamped_build_is_not_loaded(tiny):
    """A library with no stamp may be a build cut off part-way: with nothing to rebuild it, the
    reason is the missing tool, never a load of the unchecked file."""
    load(tiny)
    tiny[2].with_name("rnnkit_tiny.so.sha256").unlink()
    sources, folder, _ = tiny
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(sources), str(folder)],
                            env={**os.environ, **NO_TOOLS}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "BuildUnavailable: no C++ compiler '/nonexistent/c++' found" in result.stderr


@needs_build_tools
@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_build_is_rebuilt(tiny, damage):
    """ninja trusts any output newer than its inputs; a truncated library used to be loaded
    (an ImportError, or SIGBUS for one cut mid-way)."""
    library = tiny[2]
    load(tiny)
    data = library.read_bytes()
    library.write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(len(data)))
    assert load(tiny) is True
    assert stamp_matches(library)
    assert load(tiny) is False


@needs_build_tools
def test_a_lock_file_left_by_a_killed_build_does_not_block(tiny):
    """torch's lock is a file that exists while it builds; a build killed part-way leaves it,
    and every later process used to wait on it forever."""
    (tiny[1] / "lock").touch()
    assert load(tiny, timeout=120) is True
    assert not (tiny[1] / "lock").exists()


@needs_build_tools
def test_a_builder_waits_for_the_lock_holder(tiny):
    """While another process holds the build lock, a loader waits (and says so), then builds."""
    sources, folder, _ = tiny
    descriptor = os.open(folder / "rnnkit.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        process = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(sources), str(folder)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first_line = process.stderr.readline()  # blocks until the loader logs
        assert "waiting for another process that is building" in first_line, first_line
        assert process.poll() is None
    finally:
        os.close(descriptor)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    assert "answer 42" in stdout and "building rnnkit_tiny" in stderr


fused_reason = BACKENDS["fused"].unavailable()


@pytest.mark.skipif(fused_reason is not None, reason=f"fused backend unavailable: {fused_reason}")
def test_the_cached_kernels_run_without_a_compiler():
    """The real kernels, built and stamped by this process, in a process with no tools: the
    fused backend is available and matches torch.nn."""
    script = textwrap.dedent("""
        import torch, rnnkit
        from rnnkit.backends import BACKENDS
        assert BACKENDS["fused"].unavailable() is None, BACKENDS["fused"].unavailable()
        torch.manual_seed(0)
        reference = torch.nn.GRU(3, 8, batch_first=True)
        fused = rnnkit.GRU(3, 8, batch_first=True, backend="fused")
        fused.load_state_dict(reference.state_dict())
        x = torch.randn(2, 5, 3)
        print("difference", (fused(x)[0] - reference(x)[0]).abs().max().item())
    """)
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **NO_TOOLS},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 1e-5, result.stdout
