"""Build and load the fused C++ kernels, lazily, once per process.

The sources in ``csrc/`` are compiled on first use with ``torch.utils.cpp_extension`` (gcc and
ninja) for the host CPU (``-march=native``: AVX-512 kernels where the CPU has it, a portable
compiler-vectorized kernel otherwise; ``RNNKIT_FUSED_ARCH`` overrides the target) and cached
under torch's extension directory, keyed by a hash of sources, headers and flags, so later
processes only load the library. Nothing is built at import time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
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


def _source_hash(sources: tuple[str, ...] = SOURCES) -> str:
    """Hash of exactly what is compiled (sources, headers, flags): the cache key."""
    digest = hashlib.sha256(" ".join(sources + CFLAGS).encode())
    headers = sorted(SOURCE_DIR.glob("*.h"))
    for path in [SOURCE_DIR / source for source in sources] + headers:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_library(build_directory: str | None = None, verbose: bool = False) -> str:
    """Compile (if needed) and load the kernels; returns the library path. Raises on failure."""
    from torch.utils import cpp_extension

    name = f"rnnkit_fused_{_source_hash()}"
    folder = build_directory or cpp_extension._get_build_directory(name, verbose=False)
    if not os.path.exists(os.path.join(folder, f"{name}.so")):
        log.info("rnnkit: building the fused CPU kernels (first use only, about a minute)")
    return cpp_extension.load(
        name=name,
        sources=[str(SOURCE_DIR / source) for source in SOURCES],
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
        if os.environ.get(DISABLE_VARIABLE):
            _status["error"] = f"disabled by the environment variable {DISABLE_VARIABLE}"
            return _status["error"]
        try:
            build_library()
            from . import ops  # noqa: F401  (registers the fake functions)

            _status["error"] = None
        except Exception as error:  # a missing compiler, ninja or headers: fall back
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            _status["error"] = f"the C++ build failed ({first_line[:200]})"
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
            if os.environ.get(DISABLE_VARIABLE):
                _stream_status["error"] = f"disabled by the environment variable {DISABLE_VARIABLE}"
            else:
                try:
                    from torch.utils import cpp_extension

                    _stream_status["module"] = cpp_extension.load(
                        name=f"rnnkit_stream_{_source_hash(STREAM_SOURCES)}",
                        sources=[str(SOURCE_DIR / source) for source in STREAM_SOURCES],
                        extra_cflags=list(CFLAGS), is_python_module=True, verbose=False,
                    )
                except Exception as error:
                    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    _stream_status["error"] = f"the C++ build failed ({first_line[:200]})"
    if "error" in _stream_status:
        raise RuntimeError(_stream_status["error"])
    return _stream_status["module"]
