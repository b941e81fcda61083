"""A second process that holds a run folder, for the tests of rnnkit.training.run_lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap


class Holder:
    """Another Python process that holds ``run_dir`` until it is told to stop or killed."""

    def __init__(self, run_dir):
        code = textwrap.dedent(f"""
            import sys
            from rnnkit.training import hold_run_folder
            with hold_run_folder({str(run_dir)!r}):
                print("held", flush=True)
                sys.stdin.readline()
        """)
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline() == "held\n"

    def release(self):
        self.process.communicate("\n", timeout=60)

    def kill(self):
        self.process.kill()
        self.process.communicate(timeout=60)
