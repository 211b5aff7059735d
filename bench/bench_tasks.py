"""The two tasks bench/tasks.py runs through each backend: nothing, and a 10 ms sleep.

With BENCH_GAPS set to a folder, each process that runs the sleep appends to its own file there,
at the start of each sleep after its first, the seconds since its last sleep ended and how long
that one took: the time a worker spent between two tasks, and what a 10 ms sleep takes on this
machine. The write is inside the task's own time, never in the gap it measures.
"""

import os
import time

from django.tasks import task

_notes = {}  # pid -> [its file, when its last sleep started, when it ended]: one entry per process


@task
def noop():
    return None


@task
def sleep_10ms():
    started = time.perf_counter()
    folder = os.environ.get("BENCH_GAPS")
    note = note_gap(folder, started) if folder else None
    time.sleep(0.01)
    if note is not None:
        note[1:] = started, time.perf_counter()
    return None


def note_gap(folder, started):
    """Write the gap since this process's last sleep and that sleep's length; its entry, to update."""
    pid = os.getpid()
    if pid not in _notes:  # a forked child does not inherit its parent's file: its own pid is new
        _notes[pid] = [open(os.path.join(folder, str(pid)), "a", buffering=1), None, None]  # noqa: SIM115
    note = _notes[pid]
    file, last_started, last_ended = note
    if last_ended is not None:
        file.write(f"{started - last_ended:.7f} {last_ended - last_started:.7f}\n")
    return note
