"""Ctrl-C in the middle of a training run, for the resume and interrupt tests."""

from __future__ import annotations

import os
import signal


def ctrl_c_at_call(monkeypatch, module, name: str, call: int,
                   sent: signal.Signals = signal.SIGINT) -> None:
    """Replace ``module.name`` (a task's loss function) by one that sends this process SIGINT,
    as Ctrl-C does (or ``sent``: SIGTERM, as kill does), on its ``call``-th call, then computes
    as before."""
    original, calls = getattr(module, name), {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), sent)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupting)
