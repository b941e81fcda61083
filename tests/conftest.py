"""Shared test setup.

Test modules import the shared tolerance table with ``from tolerances import ...``. pytest's
default ("prepend") import mode already puts this directory on sys.path when it loads this
conftest; the explicit insert below keeps that working under ``--import-mode=importlib`` too.
"""

import os
import sys

import pytest
import torch

from rnnkit.backends import BACKENDS, backend_names

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tests with one intra-op thread, then restore the setting.

    The tests use tiny tensors, where thread start-up dominates: on a shared 2-core machine the
    torch.nn parity grid took ~4 minutes with the default thread pool and ~30 s with one thread.
    Opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(params=backend_names())
def backend(request):
    """Each registered rnnkit backend by name ("reference", "fused", ...), skipping those that
    cannot run here (e.g. the fused C++ kernels when there is no compiler).

    Checking availability may build a backend on first use in the process (cached on disk).
    """
    name = request.param
    reason = BACKENDS[name].unavailable()
    if reason is not None:
        pytest.skip(f"backend {name!r} unavailable here: {reason}")
    return name
