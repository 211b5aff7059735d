"""How much of the time a queue's children wanted a CPU core: whether more children would help.

A child that runs a task wants a core when it computes, and waits on something else when its task
does (an SMTP server's answer, an HTTP response). Linux counts both halves of the first for each
thread in ``/proc/<pid>/task/<tid>/schedstat``: the nanoseconds it ran on a core, and those it
waited in a run queue for one. Children busy with tasks that want a core for most of the time are
bound by the machine's cores, and more of them would only take turns on those cores; children that
want one for a small share of the time are waiting on another host, and more of them send more at
once (``scaling.py``).
"""

import os
import time
from pathlib import Path

PROC = Path("/proc")
MEASURABLE = (PROC / str(os.getpid()) / "task").is_dir()  # Linux; elsewhere nothing is read


def cpu_wanted(pid):
    """Nanoseconds the threads of process ``pid`` ran on a core or waited for one; None when they
    cannot be read (the process or one of its threads ended meanwhile)."""
    total = 0
    try:
        for thread in os.listdir(PROC / str(pid) / "task"):
            ran, waited, _slices = (PROC / str(pid) / "task" / thread / "schedstat").read_text().split()
            total += int(ran) + int(waited)
    except (OSError, ValueError):
        return None
    return total


class Demand:
    """The share of the time a set of processes wanted a core, between two looks at them."""

    def __init__(self, clock=time.monotonic, read=cpu_wanted):
        self.clock = clock
        self.read = read
        self._last = {}  # pid -> (nanoseconds wanted, when read)

    def share(self, pids):
        """Their share since the last look (1.0: each wanted a core all along); None at a first look,
        or when none of them could be read twice."""
        now = self.clock()
        wanted = spent = 0
        seen = {}
        for pid in pids:
            total = self.read(pid)
            if total is None:
                continue
            seen[pid] = (total, now)
            if pid in self._last:
                before, at = self._last[pid]
                wanted += total - before
                spent += (now - at) * 1e9
        self._last = seen
        return wanted / spent if spent > 0 else None

    def forget(self):
        """The next look is a first one again."""
        self._last = {}
