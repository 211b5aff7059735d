"""How much of the time a queue's children wanted a CPU core, and the machine's cores were idle:
whether more children would help.

A child that runs a task wants a core when it computes, and waits on something else when its task
does (an SMTP server's answer, an HTTP response). Linux counts both halves of the first for each
thread in ``/proc/<pid>/task/<tid>/schedstat``: the nanoseconds it ran on a core, and those it
waited in a run queue for one. Children busy with tasks that want a core for most of the time are
bound by the machine's cores, and more of them would only take turns on those cores; children that
want one for a small share of the time wait on something else, and more of them send more at once
(``scaling.py``). What they wait on may be another process of the same machine that itself waits
for a core (the master, a renderer, a local server): so the machine's idle time counts too, from
``/proc/stat``. More children help only while it has cores to spare.
"""

import os
import time
from pathlib import Path

PROC = Path("/proc")
MIN_WANTED = 0.02  # the share of a core a child is taken to want, at least: a child also costs the master
MEASURABLE = (PROC / str(os.getpid()) / "task").is_dir()  # Linux; elsewhere nothing is read


def cpu_wanted(pid):
    """Nanoseconds each thread of process ``pid`` ran on a core or waited for one, by thread id;
    None when they cannot be read (the process ended, or one of its threads meanwhile)."""
    threads = {}
    try:
        for thread in os.listdir(PROC / str(pid) / "task"):
            ran, waited, _slices = (PROC / str(pid) / "task" / thread / "schedstat").read_text().split()
            threads[thread] = int(ran) + int(waited)
    except (OSError, ValueError):
        return None
    return threads


def idle_and_total():
    """The machine's ticks so far, idle (waiting for I/O included) and in all, from /proc/stat; None
    where it cannot be read."""
    try:
        with open(PROC / "stat") as stat:
            name, *ticks = stat.readline().split()
        ticks = [int(tick) for tick in ticks]
    except (OSError, ValueError):
        return None
    if name != "cpu" or len(ticks) < 5:
        return None
    return ticks[3] + ticks[4], sum(ticks[:8])  # idle, iowait; the guests are counted in user already


class Idle:
    """The share of the time the machine's cores were idle, between two looks."""

    def __init__(self, read=idle_and_total):
        self.read = read
        self._last = None

    def share(self):
        """1.0: every core idle all along; None at a first look, or when /proc/stat cannot be read."""
        now, last = self.read(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return (now[0] - last[0]) / (now[1] - last[1])

    def forget(self):
        self._last = None


class Demand:
    """The share of the time a set of processes wanted a core, between two looks at them."""

    def __init__(self, clock=time.monotonic, read=cpu_wanted):
        self.clock = clock
        self.read = read
        self._last = {}  # pid -> (nanoseconds wanted by each of its threads, when read)

    def share(self, pids):
        """Their share since the last look (1.0: each wanted a core all along); None at a first look,
        or when none of them could be read twice."""
        now = self.clock()
        wanted = spent = 0
        seen = {}
        for pid in pids:
            threads = self.read(pid)
            if threads is None:
                continue
            seen[pid] = (threads, now)
            if pid in self._last:
                before, at = self._last[pid]
                # A thread started since counts from 0; one that ended took its count with it.
                wanted += sum(total - before.get(thread, 0) for thread, total in threads.items())
                spent += (now - at) * 1e9
        self._last = seen
        return wanted / spent if spent > 0 else None

    def forget(self):
        """The next look is a first one again."""
        self._last = {}


class Headroom:
    """How many more children would help a queue whose children are all busy. Over at least
    ``span`` seconds from a first look, they must have wanted a core less than ``waiting`` of the
    time, and the machine's cores been idle ``spare`` of it or more; then as many more as the idle
    cores beyond ``spare`` can feed, each wanting what they did. /proc/stat counts in ticks of
    10 ms, so a shorter span would tell little of two cores."""

    def __init__(
        self, waiting, spare, span=0.3, children=None, machine=None, clock=time.monotonic, cores=None
    ):
        self.waiting, self.spare, self.span = waiting, spare, span
        self.cores = cores or os.cpu_count() or 1  # all of them: /proc/stat's idle share is theirs
        self.children = Demand(clock=clock) if children is None else children
        self.machine = Idle() if machine is None else machine
        self.clock = clock
        self._since = None  # when the first look of this span was

    def for_more(self, pids):
        """(how many more, the children's share, the machine's idle share); how many is None until a
        span has passed since the first look, or where the shares cannot be read."""
        now = self.clock()
        if self._since is not None and now - self._since < self.span:
            return None, None, None
        self._since = now
        wanted, idle = self.children.share(pids), self.machine.share()
        if wanted is None or idle is None:
            return None, wanted, idle
        if wanted >= self.waiting or idle < self.spare:
            return 0, wanted, idle
        fed = (idle - self.spare) * self.cores / max(wanted, MIN_WANTED)
        return max(1, int(round(fed, 6))), wanted, idle  # 7.9999999 of float arithmetic is 8

    def forget(self):
        """The next look is a first one again."""
        self._since = None
        self.children.forget()
        self.machine.forget()
