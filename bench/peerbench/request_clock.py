"""Where a POST's time goes inside Django, from the kernel's own counters (``--request-clock``).

The clients time a POST from outside; that cannot tell a slow view from one that waited for a core.
This middleware, first in line in every gunicorn worker, notes for each POST its wall time, its
thread's CPU time, the time the thread was ready to run but waited for a core (the run-queue delay
in ``/proc/thread-self/schedstat``), what is left (waiting on a lock, a socket, a sleep), how
often another task took the core from it (``nonvoluntary_ctxt_switches``) and how often it gave the
core up to wait (``voluntary_ctxt_switches``): each of those ends in another wait for a core. One
line per POST in a file per process, under the folder ``PEERBENCH_REQUEST_CLOCK`` names; ``summary``
reads them back.
The phase is the subject's second word (``trial.subjects``): "during" is a POST made while a
backlog drains.
"""

import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

FIELDS = ("wall", "cpu", "runq", "other", "preempted", "blocked")


def _runq_ns():
    with open("/proc/thread-self/schedstat") as stat:
        return int(stat.read().split()[1])


def _switches():
    """(times preempted, times blocked) of this thread so far."""
    counts = {}
    with open("/proc/thread-self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name.endswith("ctxt_switches"):
                counts[name] = int(value)
    return counts.get("nonvoluntary_ctxt_switches", 0), counts.get("voluntary_ctxt_switches", 0)


class RequestClock:
    def __init__(self, get_response):
        self.get_response = get_response
        self.folder = Path(os.environ["PEERBENCH_REQUEST_CLOCK"])
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, request):
        if request.method != "POST":
            return self.get_response(request)
        wall, cpu, runq = time.perf_counter(), time.thread_time(), _runq_ns()
        preempted, blocked = _switches()
        response = self.get_response(request)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        runq = (_runq_ns() - runq) / 1e9
        preempted, blocked = (now - then for now, then in zip(_switches(), (preempted, blocked), strict=True))
        words = request.POST.get("subject", "").split()
        phase = words[1] if len(words) > 1 else "-"
        # Every system's POSTs pay for this line, after the clock stopped.
        with open(self.folder / f"{os.getpid()}.txt", "a") as out:
            out.write(
                f"{phase} {wall:.6f} {cpu:.6f} {runq:.6f} {wall - cpu - runq:.6f} {preempted} {blocked}\n"
            )
        return response


def summary(folder, phase="during"):
    """{subfolder name: {field: median, "posts": n}} over the POSTs of ``phase`` in each subfolder."""
    rows = defaultdict(list)
    for path in sorted(Path(folder).glob("*/*.txt")):
        for line in path.read_text().splitlines():
            name, *values = line.split()
            if name == phase:
                rows[path.parent.name].append([float(value) for value in values])
    return {
        key: {"posts": len(posts)}
        | {field: statistics.median(post[i] for post in posts) for i, field in enumerate(FIELDS)}
        for key, posts in rows.items()
    }
