"""One measurement in a process of its own, for scripts that compare modes of one run.

A process has one set of settings (``TASKS``, ``RELIEVE_*``): each mode runs the script again with
``--one <mode>``, which prints its figures last, as one JSON line.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(script, mode, arguments, *, timeout):
    """The figures ``script --one *mode *arguments`` printed last; SystemExit with its output if it failed."""
    argv = [sys.executable, script, "--one", *mode, *(str(argument) for argument in arguments)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{' '.join(mode)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
