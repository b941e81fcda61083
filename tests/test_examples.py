"""Every script in examples/ runs to completion; each asserts its own result against an oracle
(torch.nn, or the same model run on the whole sequence at once; exports check themselves)."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script):
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True, timeout=300)
