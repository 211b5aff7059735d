"""py-spy around one drain: where the worker processes of a system spend their time.

py-spy samples from outside (no change to the code measured); `--subprocesses` follows every
process the worker command forked. The collapsed stacks are summed per process and per frame.
"""

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROCESS = re.compile(r"^process (\d+):\"?([^;]*?)\"?;")


class Profiler:
    def __init__(self, pid, out, rate=200):
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
    """Samples per process, and the frames (own file:function) most often on top of a stack, as text."""
    per_process = Counter()
    leaves = Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        total += count
        match = PROCESS.match(stack)
        process = f"{match.group(1)} {match.group(2)[:60]}" if match else "?"
        per_process[process] += count
        frames = stack.split(";")
        leaves[frames[-1][:110]] += count
    lines = [f"{total} samples"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in per_process.most_common()]
    lines += ["top frames (leaf):"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in leaves.most_common(top)]
    return "\n".join(lines)
