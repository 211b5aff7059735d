"""The two tasks bench/tasks.py runs through each backend: nothing, and a 10 ms sleep.

With BENCH_GAPS set to a folder, each process that runs the sleep appends to its own file there,
at the start of each sleep after its first, the seconds since its last sleep ended and how long
that one took: the time a worker spent between two tasks, and what a 10 ms sleep takes on this
machine. The write is inside the task's own time, never in the gap it measures.
"""

import os
import time

from django.tasks import task

_previous = {}  # pid -> (file, when its last sleep started, when it ended): one entry per process


@task
def noop():
    return None


@task
def sleep_10ms():
    started = time.perf_counter()
    folder = os.environ.get("BENCH_GAPS")
    if folder:
        note_gap(folder, started)
    time.sleep(0.01)
    if folder:
        file, _started, _ended = _previous[os.getpid()]
        _previous[os.getpid()] = (file, started, time.perf_counter())
    return None


def note_gap(folder, started):
    pid = os.getpid()
    if pid not in _previous:  # a forked child does not inherit its parent's file: its own pid is new
        _previous[pid] = (open(os.path.join(folder, str(pid)), "a", buffering=1), None, None)  # noqa: SIM115
    file, last_started, last_ended = _previous[pid]
    if last_ended is not None:
        file.write(f"{started - last_ended:.7f} {last_ended - last_started:.7f}\n")
