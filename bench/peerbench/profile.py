"""py-spy around one drain: where the worker processes of a system spend their time.

py-spy samples from outside (no change to the code measured); `--subprocesses` follows every
process the worker command forked. The collapsed stacks are summed per process and per frame.
"""

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Frames every stack goes through, which say nothing about where the time goes.
PLUMBING = ("threading.py", "asyncio/", "<frozen", "manage.py", "django/core/management/", "selectors.py")


class Profiler:
    def __init__(self, pid, out, rate=100):
        self.out = Path(out)
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        argv = [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", str(rate)]
        self.argv = [*argv, "--output", str(self.out), "--nonblocking"]
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc_info):
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def summary(path, top=12):
    """Samples per process, then the functions most often on the stack (inclusive) and on top of it."""
    per_process, inclusive, leaves = Counter(), Counter(), Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        total += count
        parts = stack.split(";")
        processes = [
            part for part in parts if part.startswith("process ")
        ]  # the innermost is the sampled one
        frames = [part for part in parts if not part.startswith("process ")] or ["(no frame)"]
        per_process[_short(processes[-1]) if processes else "?"] += count
        for frame in {frame for frame in frames if not frame.split("(", 1)[-1].startswith(PLUMBING)}:
            inclusive[frame[:110]] += count
        leaves[frames[-1][:110]] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples (busy threads only)"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in per_process.most_common()]
    lines += ["on the stack (inclusive):"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top * 3)]
    lines += ["on top of the stack:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in leaves.most_common(top)]
    return "\n".join(lines)


def _short(process):
    """'process 12:"/venv/bin/python manage.py runrelieve ..."' -> '12 manage.py runrelieve ...'."""
    pid, _, command = process.removeprefix("process ").partition(":")
    words = command.strip('"').split()
    return f"{pid} {' '.join(word.rsplit('/', 1)[-1] for word in words[1:5])}"
