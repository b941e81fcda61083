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


def test_the_deployment_example_runs_the_other_exports_without_onnx(tmp_path):
    """Without the export extra the example stopped at export_onnx with a traceback, before
    the NumPy and C exports, which need no extra. Oracle: both of their reports printed."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['onnx'] = None  # import onnx: ImportError, as if missing\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    script = next(p for p in EXAMPLES if p.name == "deploy_streaming.py")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "export_onnx: skipped (ONNX export needs the onnx and onnxruntime packages" in done.stdout
    reports = [line.split(" in ")[0] for line in done.stdout.splitlines() if "max |exported" in line]
    assert reports == ["numpy export", "c export"]
