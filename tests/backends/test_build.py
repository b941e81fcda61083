"""Building and loading the C++ extensions (rnnkit.backends.fused.build).

No compiler, or the kernels disabled: auto falls back with the reason. The cache: keyed by the
CPU target, built from a copy of the sources; a finished build is stamped with its sha256 and
loaded without a compiler or ninja; a truncated one is rebuilt; a lock file left by a killed
build does not block later builds; builders wait on each other. The cache cases build a tiny
CPython extension (no torch headers, a few seconds) in a subprocess, so a crash or a hang in
the loader fails the test instead of ending pytest.
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


@needs_build_tools
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="orphaned builds are found through /proc")
def test_a_builder_waits_for_processes_left_by_a_killed_build(tiny):
    """A builder killed outright leaves its ninja and compilers running in the build folder;
    the next builder cleared their files and ran a second ninja beside them. Oracle: the
    left-over process (a stand-in running in the folder) has exited before the build starts,
    and the build then succeeds."""
    sources, folder, _ = tiny
    stand_in = tiny[0].parent / "tools" / "ninja"  # a process named as the build's ninja
    stand_in.parent.mkdir()
    shutil.copy(shutil.which("sleep"), stand_in)
    bystander = subprocess.Popen(["sleep", "60"], cwd=folder)  # a shell's child, say: no build
    # Running until the loader says it waits, then ended here: a fixed lifetime (it was 4 s)
    # could run out before a loader on a busy machine had even imported torch.
    leftover = subprocess.Popen([str(stand_in), "300"], cwd=folder)
    try:
        process = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(sources), str(folder)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first_line = process.stderr.readline()  # blocks until the loader logs
        assert "waiting for processes of an interrupted build" in first_line, first_line
        assert str(leftover.pid) in first_line
        assert process.poll() is None  # still waiting
        leftover.terminate()
        leftover.wait()
        second_line = process.stderr.readline()
        assert "building rnnkit_tiny" in second_line
        assert leftover.poll() is not None  # the build began only once it had exited
        assert bystander.poll() is None  # not waited for
    finally:
        for other in (leftover, bystander):
            other.kill()
            other.wait()
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    assert "answer 42" in stdout


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


_FALLBACK_SCRIPT = textwrap.dedent("""
    import logging, torch, rnnkit
    from rnnkit.backends import BACKENDS
    reason = BACKENDS["fused"].unavailable()
    assert reason is not None and "{expected}" in reason, reason
    model = rnnkit.GRU(3, 4)                          # auto: must fall back to reference
    reference = torch.nn.GRU(3, 4)
    model.load_state_dict(reference.state_dict())
    x = torch.randn(5, 2, 3)
    assert torch.allclose(model(x)[0], reference(x)[0], atol=1e-6)
    try:
        rnnkit.GRU(3, 4, backend="fused")(x)
    except RuntimeError as error:
        assert "backend='fused' cannot run this call" in str(error), error
        assert "{expected}" in str(error), error
    else:
        raise AssertionError("backend='fused' did not raise")
    print("fallback ok:", reason)
""")


@pytest.mark.parametrize("env, expected", [
    ({"CXX": "/nonexistent/c++"}, "no C++ compiler '/nonexistent/c++' found; install one"),
    ({"RNNKIT_DISABLE_FUSED": "1"}, "disabled by the environment variable"),
], ids=["no-compiler", "disabled"])
def test_build_failure_falls_back_to_reference(tmp_path, env, expected):
    """No compiler (or fused disabled): auto falls back with a reason, explicit fused raises."""
    environment = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path), **env}
    result = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT.format(expected=expected)],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fallback ok" in result.stdout


def test_a_build_folder_that_cannot_be_written_says_so_and_falls_back(tmp_path):
    """A cache path that is a file said "the C++ build failed ([Errno 20] Not a directory ...)"
    with no fix. Oracle: the same fallback as without a compiler, and a reason naming the
    variable that moves the cache."""
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    expected = "set TORCH_EXTENSIONS_DIR to a folder you can write to"
    environment = {**os.environ, "TORCH_EXTENSIONS_DIR": str(blocker / "cache")}
    result = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT.format(expected=expected)],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fallback ok: cannot build in" in result.stdout


@needs_build_tools
def test_ninja_installed_in_the_environment_but_not_on_path_builds(tiny, tmp_path):
    """rnnkit's environment has ninja from PyPI, and torch's build runs ``ninja`` from PATH:
    ``.venv/bin/rnnkit`` run without activating the environment, on a machine without a
    system ninja, fell back to the reference backend ("ninja is not installed"). Oracle: the
    same build with ninja on PATH."""
    scripts = os.path.dirname(sys.executable)
    if shutil.which("ninja", path=scripts) is None:
        pytest.skip("this Python environment has no ninja of its own to find")
    # PATH: every tool of the usual folders except ninja (the compiler needs as, ld, ...)
    tools = tmp_path / "bin"
    tools.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name != "ninja" and not (tools / name).exists():
                    (tools / name).symlink_to(os.path.join(folder, name))
    assert shutil.which("ninja", path=str(tools)) is None
    assert load(tiny, PATH=str(tools)) is True


@pytest.mark.parametrize("value, off", [("1", True), ("true", True), ("Yes", True), ("on", True),
                                         ("0", False), ("false", False), ("no", False),
                                         ("", False)])
def test_disable_variable_reads_yes_and_no(monkeypatch, value, off):
    """RNNKIT_DISABLE_FUSED=0 used to disable the kernels (any non-empty value did)."""
    from rnnkit.backends.fused import build

    monkeypatch.setenv("RNNKIT_DISABLE_FUSED", value)
    assert build.disabled() is off


def test_an_unknown_disable_value_is_warned_about_once_and_leaves_the_kernels_on(monkeypatch,
                                                                               caplog):
    """"maybe" left the kernels on without a word (probe, 2026-12-08). Oracle: the documented
    yes and no values, which warn nothing."""
    import logging

    from rnnkit.backends.fused import build

    build._warn_unknown_switch.cache_clear()  # once per process: start this test's count
    with caplog.at_level(logging.WARNING, logger="rnnkit.backends"):
        monkeypatch.setenv("RNNKIT_DISABLE_FUSED", "maybe")
        assert build.disabled() is False and build.disabled() is False
        for known in ("1", "off", ""):
            monkeypatch.setenv("RNNKIT_DISABLE_FUSED", known)
            build.disabled()
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["RNNKIT_DISABLE_FUSED='maybe' is neither 1/true/yes/on nor "
                      "0/false/no/off; the fused kernels stay on (set it to 1 to turn them off)"]


def test_a_failed_build_under_a_chosen_target_names_it(monkeypatch):
    """RNNKIT_FUSED_ARCH=bogus made the build fail, and `rnnkit info` then said only to delete
    the failure record (probe, 2026-12-08). Oracle: without the variable no hint is added."""
    from rnnkit.backends.fused import build

    def failing():
        raise RuntimeError("Error building extension 'x': cc1plus: error: bad value 'bogus'")

    reasons = {}
    for arch in ("bogus", None):
        if arch is None:
            monkeypatch.delenv("RNNKIT_FUSED_ARCH", raising=False)
        else:
            monkeypatch.setenv("RNNKIT_FUSED_ARCH", arch)
        status = {}
        build._load_once(status, failing)
        reasons[arch] = status["error"]
    assert reasons["bogus"].endswith("; RNNKIT_FUSED_ARCH='bogus' may be the cause: give a "
                                     "-march target this compiler knows (such as x86-64-v3) or "
                                     "unset it")
    assert "RNNKIT_FUSED_ARCH" not in reasons[None] and reasons[None].startswith(
        "the C++ build failed")


FAILING_LOAD_SCRIPT = textwrap.dedent("""
    import logging, pathlib, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rnnkit.backends.fused import build
    build.SOURCE_DIR = pathlib.Path(sys.argv[1])
    try:
        build.load_extension("rnnkit_tiny", ("tiny.cpp",), python_module=True,
                             build_directory=sys.argv[2])
    except build.BuildUnavailable as error:
        print("unavailable:", error)
    except RuntimeError as error:
        print("failed:", build._failure(error))
""")


@needs_build_tools
def test_a_compile_that_failed_is_not_repeated_by_every_process(tiny, tmp_path):
    """Each process (each CLI command) spent the compile's time on the same error before
    falling back. Oracle: the compiler runs once, later loads name the recorded error and the
    file to delete, and another compiler, or the record deleted, builds again."""
    sources, folder, _ = tiny
    (sources / "tiny.cpp").write_text(TINY_SOURCE + "\nthis is not C++;\n")

    def attempt(**environment):
        result = subprocess.run([sys.executable, "-c", FAILING_LOAD_SCRIPT, str(sources),
                                 str(folder)], env={**os.environ, **environment},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip(), "building rnnkit_tiny" in result.stderr

    first, compiled = attempt()
    assert compiled and first.startswith("failed:") and "error:" in first
    marker = folder / "build-failed.json"
    second, compiled = attempt()
    assert not compiled
    assert second.startswith("unavailable: the C++ build failed here before (")
    assert f"delete {marker} to try again" in second
    # another compiler (here the same one under another name) is tried
    other = tmp_path / "bin" / "c++"
    other.parent.mkdir()
    shutil.copy(shutil.which(os.environ.get("CXX", "c++")), other)
    _, compiled = attempt(CXX=str(other))
    assert compiled
    marker.unlink()
    # fixed sources (a real build folder is named by their hash, so it would be a new one)
    (sources / "tiny.cpp").write_text(TINY_SOURCE)
    shutil.rmtree(folder / "src")
    assert load(tiny)  # builds, and the success leaves no record
    assert not marker.exists()


def test_a_failed_build_is_reported_by_the_compilers_error_line():
    """torch's exception starts with the long command line; the reason is further down."""
    from rnnkit.backends.fused.build import _failure

    error = RuntimeError("Error building extension 'x': [1/8] c++ -MMD -MF lstm.o.d -DTORCH\n"
                         "FAILED: lstm.o\nc++ -c lstm.cpp\n/bin/sh: 1: c++: not found\n"
                         "ninja: build stopped: subcommand failed.")
    assert _failure(error) == "/bin/sh: 1: c++: not found"
    assert _failure(RuntimeError("plain reason\nmore")) == "plain reason"


def test_the_build_cache_is_keyed_by_the_cpu_target(monkeypatch):
    """A cache shared with another CPU must not load kernels built for instructions it lacks:
    the key hashes what -march=native means here, not the literal flag."""
    from rnnkit.backends.fused import build

    here = build._source_hash()
    monkeypatch.setattr(build, "_target", lambda: "native sse2")
    assert build._source_hash() != here


def test_an_arch_set_after_import_is_what_gets_compiled(monkeypatch):
    """The flags read RNNKIT_FUSED_ARCH at import and the cache key at build time: set in
    between, the code was built for this CPU under the key of the target asked for."""
    from rnnkit.backends.fused import build

    monkeypatch.setenv(build.ARCH_VARIABLE, "x86-64-v3")
    assert "-march=x86-64-v3" in build.cflags() and build._target() == "x86-64-v3"
    monkeypatch.delenv(build.ARCH_VARIABLE)
    assert "-march=native" in build.cflags()


def test_builds_read_a_copy_of_the_sources(tmp_path):
    """The compiler gets the sources from a copy under the build's own (content-named) folder,
    so another checkout of the same code maps to the same paths and reuses the build: the copy
    holds every source and header byte for byte, and a second call (another checkout of the
    same code) returns the same paths and leaves the copy alone."""
    from rnnkit.backends.fused.build import SOURCE_DIR, SOURCES, sources_for_build

    paths = sources_for_build(str(tmp_path), SOURCES)
    assert paths == [str(tmp_path / "src" / source) for source in SOURCES]
    copied = sorted((tmp_path / "src").iterdir())
    originals = sorted([SOURCE_DIR / source for source in SOURCES] + list(SOURCE_DIR.glob("*.h")))
    assert [p.name for p in copied] == [p.name for p in originals]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(copied, originals))
    stamps = [p.stat().st_mtime_ns for p in copied]
    assert sources_for_build(str(tmp_path), SOURCES) == paths
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "src").iterdir())] == stamps
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no staging folder left behind


def test_a_stamped_build_that_cannot_be_loaded_says_to_delete_its_folder(tiny):
    """The stamp matches the bytes, but the loader refuses them (here: not a shared object at
    all, as when a library it links to is gone). It said "the C++ build failed (...)", with no
    way out; now it names the folder to delete. Oracle: the loader's own refusal of the file."""
    sources, folder, library = tiny
    library.write_bytes(b"not a shared object")
    library.with_name(library.name + ".sha256").write_text(
        hashlib.sha256(library.read_bytes()).hexdigest() + "\n")
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(sources), str(folder)],
                            env={**os.environ, **NO_TOOLS}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rnnkit.backends.fused.build.BuildUnavailable: cannot load the "
                           f"cached build {library} ("), last
    assert last.endswith(f"; delete the folder {folder} to rebuild it"), last
