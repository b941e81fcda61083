"""Shared test setup.

Test modules import the shared tolerance table with ``from tolerances import ...``. pytest's
default ("prepend") import mode already puts this directory on sys.path when it loads this
conftest; the explicit insert below keeps that working under ``--import-mode=importlib`` too.
"""

import os
import sys

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
