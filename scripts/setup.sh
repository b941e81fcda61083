#!/usr/bin/env bash
# Set up an isolated environment in .venv with rnnkit (editable), its built-in data (text,
# time series, classification sets), plotting, ONNX export and test tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch first, pinned: an unpinned torch (asked for by us or another package) would pull the
# CUDA build. rnnkit itself asks for torch>=2.4, which 2.13.0 satisfies.
.venv/bin/python -m pip install --quiet "torch==2.13.0" 2> >(grep -v "is ignored: it is neither" >&2)
.venv/bin/python -m pip install --quiet -e ".[test,data,timeseries,classify,plot,export]" 2> >(grep -v "is ignored: it is neither" >&2)
