"""The worker processes of a system as /proc shows them: the processes it started and all they forked.

Counted by parent links, not by session: relieve starts each child in a session of its own.
"""

import contextlib
import os
import signal
from pathlib import Path

PROC = Path("/proc")


def _parents():
    """pid -> parent pid of every live process."""
    parents = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(entry.name)] = int(_stat(entry.name)[1])
    return parents


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name in parentheses: state ppid ..."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def tree(roots):
    """Pids of the live roots and of every process descending from them."""
    parents = _parents()
    found = {pid for pid in roots if pid in parents}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found)


def memory(pids):
    """Total resident and proportional set size in bytes (PSS splits the pages shared after a fork)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Rss":
                    rss += int(value.split()[0]) * 1024
                elif name == "Pss":
                    pss += int(value.split()[0]) * 1024
    return rss, pss


def machine_busy():
    """CPU seconds the whole machine has spent busy (every core, all but idle and I/O wait) since boot.

    The benchmark runs one system at a time on an otherwise quiet machine, so the difference over a
    drain is what that drain cost: web workers, the system's workers, databases, broker and sink.
    """
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait is work
    ticks = [int(value) for value in _first_line("/proc/stat").split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """pid -> CPU seconds (user and system, every thread) each live process of ``pids`` has spent."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat(pid)
            spent[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return spent


def _first_line(path):
    with open(path) as file:
        return file.readline()


def signal_all(pids, sig=signal.SIGKILL):
    """Send `sig` to each of these processes, as close to at once as a loop gets; returns how many."""
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            sent += 1
    return sent
