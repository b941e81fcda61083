"""Build and load the fused C++ kernels, lazily, once per process.

The sources in ``csrc/`` are compiled on first use with ``torch.utils.cpp_extension`` (gcc and
ninja) for the host CPU (``-march=native``: AVX-512 kernels where the CPU has it, a portable
compiler-vectorized kernel otherwise; ``RNNKIT_FUSED_ARCH`` overrides the target) and cached
under torch's extension directory, keyed by a hash of sources, headers, flags, the CPU's
instruction sets and torch's version, so later
processes only load the library. The compiler reads a copy of the sources kept beside the build
(:func:`sources_for_build`), not the checkout's files, so two checkouts with the same sources
share one build. Nothing is built at import time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import shutil
import tempfile
import threading

log = logging.getLogger("rnnkit.backends")

SOURCE_DIR = pathlib.Path(__file__).parent / "csrc"
SOURCES = ("lstm.cpp", "gru.cpp", "elman.cpp", "dense.cpp", "probe.cpp", "autograd.cpp",
           "buffer_pool.cpp")
DISABLE_VARIABLE = "RNNKIT_DISABLE_FUSED"

_lock = threading.Lock()
_status: dict[str, str | None] = {}  # "error": None once loaded, else the reason


ARCH_VARIABLE = "RNNKIT_FUSED_ARCH"  # e.g. x86-64-v3 to build the portable (AVX2) kernels
# -fopenmp: ATen's parallel_for is OpenMP pragmas in a header; without the flag it runs serially.
CFLAGS = ("-O3", f"-march={os.environ.get(ARCH_VARIABLE, 'native')}", "-fno-math-errno",
          "-fopenmp")


STREAM_SOURCES = ("stream.cpp", "session.cpp")


def disabled() -> bool:
    """Whether RNNKIT_DISABLE_FUSED asks for no fused kernels: 1, true, yes or on (any case);
    0, false, no, off or empty leave them on."""
    return os.environ.get(DISABLE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


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

    digest = hashlib.sha256(" ".join(sources + CFLAGS + (_target(), torch.__version__)).encode())
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


def build_library(build_directory: str | None = None, verbose: bool = False) -> str:
    """Compile (if needed) and load the kernels; returns the library path. Raises on failure."""
    from torch.utils import cpp_extension

    name = f"rnnkit_fused_{_source_hash()}"
    folder = build_directory or cpp_extension._get_build_directory(name, verbose=False)
    if not os.path.exists(os.path.join(folder, f"{name}.so")):
        log.info("rnnkit: building the fused CPU kernels (first use only, about a minute)")
    return cpp_extension.load(
        name=name,
        sources=sources_for_build(folder, SOURCES),
        extra_cflags=list(CFLAGS),
        extra_ldflags=["-fopenmp"],
        build_directory=build_directory,
        is_python_module=False,
        verbose=verbose,
    )


def load_error() -> str | None:
    """None when the fused kernels are loaded (building them on first call), else why not."""
    if "error" in _status:
        return _status["error"]
    with _lock:
        if "error" in _status:
            return _status["error"]
        if disabled():
            _status["error"] = f"disabled by the environment variable {DISABLE_VARIABLE}"
            return _status["error"]
        missing = _missing_tool()
        if missing is not None:
            _status["error"] = missing
            return missing
        try:
            build_library()
            from . import ops  # noqa: F401  (registers the fake functions)

            _status["error"] = None
        except Exception as error:  # headers, a compiler error: fall back
            _status["error"] = f"the C++ build failed ({_failure(error)})"
    return _status["error"]


def loaded_ops():
    """``torch.ops.rnnkit`` once the kernels are loaded; RuntimeError saying why if they cannot be."""
    error = load_error()
    if error is not None:
        raise RuntimeError(f"rnnkit fused backend unavailable: {error}")
    import torch

    return torch.ops.rnnkit


_stream_status: dict[str, object] = {}


def stream_module():
    """The streaming-step module (a small CPython extension), built on first use.

    Returns the module, or raises RuntimeError naming why it cannot be built here.
    """
    if "module" in _stream_status:
        return _stream_status["module"]
    if "error" in _stream_status:
        raise RuntimeError(_stream_status["error"])
    with _lock:
        if "module" not in _stream_status and "error" not in _stream_status:
            missing = None if disabled() else _missing_tool()
            if disabled():
                _stream_status["error"] = f"disabled by the environment variable {DISABLE_VARIABLE}"
            elif missing is not None:
                _stream_status["error"] = missing
            else:
                try:
                    from torch.utils import cpp_extension

                    name = f"rnnkit_stream_{_source_hash(STREAM_SOURCES)}"
                    folder = cpp_extension._get_build_directory(name, verbose=False)
                    _stream_status["module"] = cpp_extension.load(
                        name=name, sources=sources_for_build(folder, STREAM_SOURCES),
                        extra_cflags=list(CFLAGS), is_python_module=True, verbose=False,
                    )
                except Exception as error:
                    _stream_status["error"] = f"the C++ build failed ({_failure(error)})"
    if "error" in _stream_status:
        raise RuntimeError(_stream_status["error"])
    return _stream_status["module"]
