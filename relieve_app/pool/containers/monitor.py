"""Answers a ``usage`` event with ``usage`` {cpu, cpu_percent, memory, pid, uptime}."""

import os
import resource
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")


class Usage:
    """CPU percent is measured between two questions, so the first answer covers the whole life."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.born = clock()
        self._last = (self.born, 0.0)

    def sample(self):
        now = self.clock()
        times = os.times()
        cpu = times.user + times.system
        last_time, last_cpu = self._last
        elapsed = now - last_time
        self._last = (now, cpu)
        return {
            "cpu": cpu,
            "cpu_percent": round(100.0 * (cpu - last_cpu) / elapsed, 2) if elapsed > 0 else 0.0,
            "memory": resident_bytes(),
            "pid": os.getpid(),
            "uptime": now - self.born,
        }


def resident_bytes():
    """Current resident set size; the peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def setup(channel):
    usage = Usage()
    channel.on("usage", lambda *_: channel.send("usage", usage.sample()))
