"""Build and load the fused C++ kernels, lazily, once per process.

The sources in ``csrc/`` are compiled on first use with ``torch.utils.cpp_extension`` (gcc and
ninja) for the host CPU (``-march=native``: AVX-512 kernels where the CPU has it, a portable
compiler-vectorized kernel otherwise; ``RNNKIT_FUSED_ARCH`` overrides the target) and cached
under torch's extension directory, keyed by a hash of sources, headers, flags, the CPU's
instruction sets and torch's version. The compiler reads a copy of the sources kept beside the
build (:func:`sources_for_build`), not the checkout's files, so two checkouts with the same
sources share one build. Nothing is built at import time.

A finished build is stamped with its sha256 (:func:`load_extension`); later processes check the
stamp and load the library directly, without a compiler or ninja, and rebuild one that is
truncated or damaged. Builds hold an ``flock``, which a killed build cannot leave behind."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
import threading
import time

log = logging.getLogger("rnnkit.backends")

SOURCE_DIR = pathlib.Path(__file__).parent / "csrc"
SOURCES = ("lstm.cpp", "gru.cpp", "elman.cpp", "dense.cpp", "probe.cpp", "autograd.cpp",
           "buffer_pool.cpp")
DISABLE_VARIABLE = "RNNKIT_DISABLE_FUSED"

_lock = threading.Lock()


ARCH_VARIABLE = "RNNKIT_FUSED_ARCH"  # e.g. x86-64-v3 to build the portable (AVX2) kernels


def cflags() -> tuple[str, ...]:
    """The compiler flags, with -march read from the environment when the build runs (as the
    cache key's target is: read at import, a later setting built one target under another's
    key). -fopenmp: ATen's parallel_for is OpenMP pragmas in a header; without the flag it runs
    serially."""
    return ("-O3", f"-march={os.environ.get(ARCH_VARIABLE, 'native')}", "-fno-math-errno",
            "-fopenmp")


STREAM_SOURCES = ("stream.cpp", "session.cpp")


def disabled() -> bool:
    """Whether RNNKIT_DISABLE_FUSED asks for no fused kernels: 1, true, yes or on (any case);
    0, false, no, off or empty leave them on, as does any other value, with a warning."""
    value = os.environ.get(DISABLE_VARIABLE, "").strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        _warn_unknown_switch(value)
    return value in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=None)
def _warn_unknown_switch(value: str) -> None:
    """Once per process and value: "maybe" left the kernels on without a word."""
    log.warning("%s=%r is neither 1/true/yes/on nor 0/false/no/off; the fused kernels stay "
                "on (set it to 1 to turn them off)", DISABLE_VARIABLE, value)


def _target_hint() -> str:
    """Where RNNKIT_FUSED_ARCH is set, a failed build's likely cause, worded as the fix."""
    arch = os.environ.get(ARCH_VARIABLE)
    if not arch or arch == "native":
        return ""
    return (f"; {ARCH_VARIABLE}={arch!r} may be the cause: give a -march target this "
            f"compiler knows (such as x86-64-v3) or unset it")


def _target() -> str:
    """What ``-march`` compiles for: with ``native``, this CPU's instruction sets (from
    /proc/cpuinfo where there is one), so that a cache shared with another CPU (a network home,
    a copied container) never loads kernels built for instructions that CPU lacks."""
    arch = os.environ.get(ARCH_VARIABLE, "native")
    if arch != "native":
        return arch
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return "native " + " ".join(sorted(line.partition(":")[2].split()))
    except OSError:
        pass
    import platform

    return f"native {platform.machine()} {platform.processor()}"


@contextlib.contextmanager
def _environment_tools_on_path():
    """Put this Python environment's scripts folder on PATH while building, where ninja is
    installed there but not found on PATH.

    rnnkit installs ninja from PyPI into its environment, and torch's build runs ``ninja`` from
    PATH; ``.venv/bin/rnnkit`` run without activating the environment, as the README's first
    command does, then found no ninja on a machine without a system one and fell back to the
    reference backend, tens of times slower."""
    import sys
    import sysconfig

    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    found = next((folder for folder in folders if folder and shutil.which("ninja", path=folder)),
                 None)
    if shutil.which("ninja") is not None or found is None:
        yield
        return
    before = os.environ.get("PATH")
    os.environ["PATH"] = (before or os.defpath) + os.pathsep + found  # last: it adds only ninja
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def _missing_tool() -> str | None:
    """Why the build cannot even start (no compiler, no ninja), in one line with the fix."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")  # what torch's build runs
    if shutil.which(compiler.split()[0] if compiler.strip() else "c++") is None:
        return (f"no C++ compiler {compiler!r} found; install one (apt-get install g++) or set "
                f"CXX to one")
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed; pip install ninja"
    return None


def _failure(error: Exception) -> str:
    """One line on why a build failed: the compiler's own error line where there is one (the
    exception starts with the long command line), else the first line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in lines:
        if "error:" in line or "not found" in line:
            return line[:200]
    return (lines or [type(error).__name__])[0][:200]


def _source_hash(sources: tuple[str, ...] = SOURCES) -> str:
    """Hash of exactly what is compiled (sources, headers, flags, the CPU target and torch's
    version, whose headers and ABI the build uses): the cache key."""
    import torch

    digest = hashlib.sha256(" ".join(sources + cflags() + (_target(), torch.__version__)).encode())
    headers = sorted(SOURCE_DIR.glob("*.h"))
    for path in [SOURCE_DIR / source for source in sources] + headers:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def sources_for_build(folder: str, sources: tuple[str, ...]) -> list[str]:
    """Paths of ``sources`` in a copy of csrc/ (sources and headers) under ``folder``, made once.

    Why a copy: torch's build file names each source by its absolute path, so a second checkout
    of the same code (a fresh clone for a CI check, a worktree) rewrote the build file with its
    own paths and recompiled everything, about a minute, and the first checkout then did the
    same. ``folder`` is the build's own directory, already named by the content hash.
    """
    copy = pathlib.Path(folder) / "src"
    if not copy.is_dir():
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix="src-", dir=folder)
        for path in [SOURCE_DIR / source for source in sources] + sorted(SOURCE_DIR.glob("*.h")):
            shutil.copy2(path, staging)
        try:
            os.rename(staging, copy)  # atomic; another process may have won the race
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return [str(copy / source) for source in sources]


class BuildUnavailable(RuntimeError):
    """The kernels are not cached and cannot be built here (no compiler or no ninja); the
    message is the one-line reason with its fix."""


def _file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(library: pathlib.Path) -> pathlib.Path:
    return library.with_name(library.name + ".sha256")


def _verified(library: pathlib.Path) -> bool:
    """Whether ``library`` is a finished build: its stamp, written only after the build loaded,
    holds the sha256 of its bytes. A truncated or damaged library fails this check instead of
    being mapped into the process (where a short file ends it with SIGBUS)."""
    try:
        return _stamp_path(library).read_text().strip() == _file_sha256(library)
    except OSError:
        return False


def _write_stamp(library: pathlib.Path) -> None:
    """Stamp a library that built and loaded: flush it to disk, then write its sha256 to a
    temporary file, flush that and rename it into place, so a crash leaves no stamp rather
    than a stamp for bytes that never reached the disk."""
    with open(library, "rb") as file:
        os.fsync(file.fileno())
    stamp = _stamp_path(library)
    temporary = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as file:
        file.write(_file_sha256(library) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, stamp)


def _import_library(library: pathlib.Path, name: str, python_module: bool):
    """Load a verified build directly, as torch's loader would, without ninja or a compiler."""
    if python_module:
        import importlib.util

        spec = importlib.util.spec_from_file_location(name, library)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    import torch

    torch.ops.load_library(str(library))
    return str(library)


def _import_verified(library: pathlib.Path, name: str, python_module: bool):
    """Load a stamped build. Its bytes are the ones that loaded when it was built, so a
    failure here is the environment (a library it links to moved, a cache shared with another
    system): said in one line with the way out, never "the build failed". Only the loader's
    own refusals (dlopen's OSError, the import machinery's ImportError) are caught; the
    original error stays attached as the cause."""
    try:
        return _import_library(library, name, python_module)
    except (OSError, ImportError) as error:
        raise BuildUnavailable(f"cannot load the cached build {library} ({_failure(error)}); "
                               f"delete the folder {library.parent} to rebuild it") from error


@contextlib.contextmanager
def _build_lock(folder: pathlib.Path):
    """Hold an exclusive ``flock`` on ``folder/rnnkit.lock`` while building there.

    torch's own lock is a file that exists while a build runs; a build killed part-way (Ctrl-C
    twice, an OOM kill, a CI timeout) leaves it behind and every later process waits on it
    forever. The kernel drops an flock when its holder dies, so this lock cannot go stale.
    """
    import fcntl

    descriptor = os.open(folder / "rnnkit.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("rnnkit: waiting for another process that is building in %s", folder)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _wait_for_orphaned_build(folder: pathlib.Path, poll_seconds: float = 0.5,
                             limit_seconds: float = 900.0) -> None:
    """Wait while processes left by a killed builder still run in ``folder``.

    A builder killed outright (an OOM kill, ``kill -9``) leaves its ninja and compiler
    processes running: they are re-parented, not killed, and the flock died with the builder.
    The next builder would clear their object files and run a second ninja beside them,
    both writing the same files. They run with the build folder as their working directory
    (torch starts ninja there) under a build tool's name, which is how they are found (Linux's
    /proc; elsewhere this does not wait). A shell that merely sits in the folder is no build,
    and the wait ends after ``limit_seconds`` whatever runs."""
    proc = pathlib.Path("/proc")
    if not proc.is_dir():
        return
    compiler = os.path.basename(os.environ.get("CXX", "c++").split()[0] if
                                os.environ.get("CXX", "").strip() else "c++")
    tools = {"ninja", "c++", "g++", "gcc", "cc", "cc1plus", "as", "ld", "collect2", "clang",
             "clang++", compiler[:15]}
    target, announced = folder.resolve(), False
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        running = []
        for entry in proc.iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if (pathlib.Path(os.readlink(entry / "cwd")) == target
                            and (entry / "comm").read_text().strip() in tools):
                        running.append(entry.name)
                except OSError:  # gone, or another user's
                    pass
        if not running:
            return
        if not announced:
            log.info("rnnkit: waiting for processes of an interrupted build in %s to finish "
                     "(pid %s)", folder, ", ".join(running))
            announced = True
        time.sleep(poll_seconds)


def _clear_build(folder: pathlib.Path) -> None:
    """Remove what an unfinished or damaged build left, so the next one starts clean: object
    files, the library and its stamp (ninja trusts any output newer than its inputs, truncated
    or not), ninja's records, and torch's lock file, which under our lock can only be left
    over from a killed build. The copied sources stay."""
    for path in folder.iterdir():
        if path.is_file() and (path.suffix in (".o", ".so", ".sha256")
                               or path.name in ("lock", ".ninja_log", ".ninja_deps")):
            path.unlink(missing_ok=True)


def load_extension(name: str, sources: tuple[str, ...], *, python_module: bool,
                   ldflags: tuple[str, ...] = (), build_directory: str | None = None,
                   verbose: bool = False):
    """Load the extension ``name`` built from ``sources`` (files in csrc/), building it first
    unless a verified build is cached; returns the module (``python_module``) or the library's
    path (an op library, loaded into ``torch.ops``).

    A cached build is checked against its stamp and loaded directly, so it needs neither a
    compiler nor ninja. Otherwise the build runs under a lock that dies with its holder, from
    a clean folder, and is stamped once it has loaded. Raises :class:`BuildUnavailable` when a
    build is needed and the tools are missing, and torch's error when it fails.
    """
    from torch.utils import cpp_extension

    try:  # torch's lookup makes the folder
        folder = pathlib.Path(build_directory or cpp_extension._get_build_directory(name, False))
    except OSError as error:
        raise _unwritable(error.filename, error) from None
    library = folder / f"{name}.so"
    if _verified(library):
        return _import_verified(library, name, python_module)
    with _environment_tools_on_path():
        return _build_and_load(name, sources, folder, library, python_module, ldflags, verbose)


def _unwritable(folder, error: OSError) -> BuildUnavailable:
    """A build folder that cannot be made or written (it said "the C++ build failed", with no
    way out)."""
    return BuildUnavailable(f"cannot build in {folder} ({error.strerror or error}); set "
                            f"TORCH_EXTENSIONS_DIR to a folder you can write to")


#: Written into a build folder whose compile failed: what failed, and with which compiler.
FAILED_MARKER = "build-failed.json"


def _compiler_identity() -> str:
    """The compiler a build runs (``CXX`` or c++, resolved), with its size and time: a build
    that failed with one compiler is tried again with another, or the same one upgraded."""
    compiler = os.environ.get("CXX", "c++").split() or ["c++"]
    found = shutil.which(compiler[0])
    real = os.path.realpath(found) if found else compiler[0]
    try:
        status = os.stat(real)
    except OSError:
        return real
    return f"{real} {status.st_size} {status.st_mtime_ns}"


def _earlier_failure(marker: pathlib.Path) -> str | None:
    """The one-line reason a build of this folder failed before with this compiler, or None."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("compiler") != _compiler_identity():
        return None
    return str(record.get("error", "unknown error"))


def _build_and_load(name, sources, folder: pathlib.Path, library: pathlib.Path,
                    python_module: bool, ldflags: tuple[str, ...], verbose: bool):
    """Build under the lock and load. A compile that fails is recorded in the folder
    (:data:`FAILED_MARKER`): every later process, each CLI command, would otherwise spend the
    same minute compiling to the same error before falling back. The folder is keyed by the
    sources, flags, CPU target and torch version, and the record by the compiler, so a change
    to any of them builds again; deleting the record does too."""
    from torch.utils import cpp_extension

    missing = _missing_tool()
    if missing is not None:
        raise BuildUnavailable(missing)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as error:
        raise _unwritable(folder, error) from None
    with _build_lock(folder):
        if _verified(library):  # another process finished it while this one waited
            return _import_verified(library, name, python_module)
        marker = folder / FAILED_MARKER
        earlier = _earlier_failure(marker)
        if earlier is not None:
            raise BuildUnavailable(f"the C++ build failed here before ({earlier})"
                                   f"{_target_hint()}; delete {marker} to try again")
        _wait_for_orphaned_build(folder)
        _clear_build(folder)
        log.info("rnnkit: building %s (first use only, up to a minute)", name)
        try:
            result = cpp_extension.load(
                name=name, sources=sources_for_build(str(folder), sources),
                extra_cflags=list(cflags()), extra_ldflags=list(ldflags),
                build_directory=str(folder), is_python_module=python_module, verbose=verbose)
        except RuntimeError as error:
            if "Error building extension" in str(error):  # the compiler's error, not a load
                record = {"compiler": _compiler_identity(), "error": _failure(error)}
                with contextlib.suppress(OSError):  # unrecorded, the next process tries again
                    marker.write_text(json.dumps(record))
            raise
        marker.unlink(missing_ok=True)
        _write_stamp(library)
    return result


def build_library(build_directory: str | None = None, verbose: bool = False) -> str:
    """Load the kernels (building them if needed) into ``torch.ops.rnnkit``; returns the
    library path. Raises on failure."""
    return load_extension(f"rnnkit_fused_{_source_hash()}", SOURCES, python_module=False,
                          ldflags=("-fopenmp",), build_directory=build_directory,
                          verbose=verbose)


def _load_once(status: dict, load) -> None:
    """Run ``load`` once per process, keeping what it returns in ``status["value"]`` or why it
    failed, in one line, in ``status["error"]``."""
    if "value" in status or "error" in status:
        return
    with _lock:
        if "value" in status or "error" in status:
            return
        if disabled():
            status["error"] = f"disabled by the environment variable {DISABLE_VARIABLE}"
            return
        try:
            status["value"] = load()
        except BuildUnavailable as error:
            status["error"] = str(error)
        except Exception as error:  # headers, a compiler error: the caller falls back
            status["error"] = f"the C++ build failed ({_failure(error)}){_target_hint()}"


def _load_kernels() -> str:
    path = build_library()
    from . import ops  # noqa: F401  (registers the fake functions)

    return path


_kernels: dict[str, object] = {}


def load_error() -> str | None:
    """None when the fused kernels are loaded (building them on first call), else why not."""
    _load_once(_kernels, _load_kernels)
    return _kernels.get("error")


def loaded_ops():
    """``torch.ops.rnnkit`` once the kernels are loaded; RuntimeError saying why if they cannot be."""
    error = load_error()
    if error is not None:
        raise RuntimeError(f"rnnkit fused backend unavailable: {error}")
    import torch

    return torch.ops.rnnkit


_stream: dict[str, object] = {}


def stream_module():
    """The streaming-step module (a small CPython extension), built on first use.

    Returns the module, or raises RuntimeError naming why it cannot be built here.
    """
    _load_once(_stream, lambda: load_extension(f"rnnkit_stream_{_source_hash(STREAM_SOURCES)}",
                                               STREAM_SOURCES, python_module=True))
    if "error" in _stream:
        raise RuntimeError(_stream["error"])
    return _stream["value"]
