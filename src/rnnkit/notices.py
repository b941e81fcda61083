"""Warnings said once per command.

One CLI command reads the same things several times: ``rnnkit train lm`` loads its run for
the settings check, the resume and the final scoring, and reads its corpus for training and
again for the compressor bars. A warning about what it found (a damaged checkpoint skipped,
entries of a corpus folder left out) is news the first time only. Within
:func:`once_per_command` each warning is logged once; outside it (a notebook loading a run
again) every call warns, as each may be the first the user sees.
"""

from __future__ import annotations

import contextlib
import logging

#: keys of the warnings already logged within :func:`once_per_command`; None outside it
_said: set | None = None


@contextlib.contextmanager
def once_per_command():
    """Within the block, :func:`warn_once` logs each key once (blocks nest; each starts anew)."""
    global _said
    outer, _said = _said, set()
    try:
        yield
    finally:
        _said = outer


def warn_once(logger: logging.Logger, key, message: str, *args) -> None:
    """``logger.warning(message, *args)``, unless ``key`` was warned about within the enclosing
    :func:`once_per_command` block."""
    if _said is not None:
        if key in _said:
            return
        _said.add(key)
    logger.warning(message, *args)
