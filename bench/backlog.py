"""A backlog far deeper than the master holds: its memory and its drain, RELIEVE_MAX_HELD against
a master that holds every id it hears of.

Usage:
    nice -n 10 .venv/bin/python bench/backlog.py [--tasks 100000] [--batch 500] [--children 4]
    nice -n 10 .venv/bin/python bench/backlog.py --deferred [--tasks 100000] [--ready 2000]

Each mode boots its own master (``--children`` children on "default") on a fresh SQLite file. The
queue is paused; ``--tasks`` no-op tasks are enqueued through ``enqueue()``, ``--batch`` to a
transaction, each transaction's ids written to the master's socket as a web process writes them;
then the queue is resumed and drained. Read from /proc: the master's private memory (the pages no
other process maps) before, once it holds what it heard of, and after the drain; its CPU time per
task from the first enqueue to the end of the drain (a master that holds everything takes each id
in as it hears of it, before the drain; one that holds 10,000 reads most of them during it). Modes:
``held`` (RELIEVE_MAX_HELD as configured, 10,000 by default) and the baseline ``all`` (a limit no
backlog reaches: every id heard of is held, as before the limit). The last line is for scripts
(one line)::

    backlog tasks=… held-mb=… held-mb-all=… after-mb=… after-mb-all=… per-s=… per-s-all=…
        master-cpu-ms=… master-cpu-ms-all=… ratio-after-mb=…

With ``--deferred``, the ``--tasks`` are due in a day (``run_after``), and the queue is not paused:
the master is measured once it has heard of them all; then ``--ready`` tasks due now are enqueued
and drained past them. ``held`` holds on timers only what is due within two sweeps (60 s by
default); the baseline ``all`` sweeps so rarely that a day is within two sweeps, and holds every
id, as before. ``sweep-read-ms`` is one sweep's two reads of the table, of rows due now and of
rows due within 60 s, past the deferred rows, timed from this process::

    backlog-deferred tasks=… held-mb=… held-mb-all=… per-s=… per-s-all=… sweep-read-ms=…
        ratio-held-mb=…
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import children as bench_children
from bench import own_process
from bench.children import private_memory
from bench.tasks import cpu_seconds

EVERYTHING = 10**9  # RELIEVE_MAX_HELD no backlog reaches
RARELY = 10**6  # seconds: RELIEVE_SWEEP_INTERVAL for which a day is within two sweeps
MODES = {"held": {}, "all": {"RELIEVE_MAX_HELD": str(EVERYTHING)}}
DEFERRED_MODES = {
    "held": {},
    "all": {"RELIEVE_MAX_HELD": str(EVERYTHING), "RELIEVE_SWEEP_INTERVAL": str(RARELY)},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument(
        "--deferred", action="store_true", help="the tasks due in a day, then --ready due now"
    )
    parser.add_argument("--ready", type=int, default=2000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        one, modes = (measure_deferred, DEFERRED_MODES) if options.deferred else (measure, MODES)
        print(json.dumps(one(modes[options.one], options)))
        return
    if options.deferred:
        deferred(options)
        return
    held, every = _each_mode(
        MODES,
        ["--tasks", options.tasks, "--batch", options.batch, "--children", options.children],
        lambda found: (
            f"master private {found['before_mb']:.1f} MiB idle, {found['held_mb']:.1f} holding, "
            f"{found['after_mb']:.1f} after; drain {found['per_s']:.0f} tasks/s, "
            f"master {found['cpu_ms']:.3f} ms CPU a task"
        ),
    )
    print(
        f"backlog tasks={options.tasks} held-mb={held['held_mb']:.1f} held-mb-all={every['held_mb']:.1f} "
        f"after-mb={held['after_mb']:.1f} after-mb-all={every['after_mb']:.1f} "
        f"per-s={held['per_s']:.0f} per-s-all={every['per_s']:.0f} "
        f"master-cpu-ms={held['cpu_ms']:.3f} master-cpu-ms-all={every['cpu_ms']:.3f} "
        f"ratio-after-mb={held['after_mb'] / every['after_mb']:.2f}"
    )


def deferred(options):
    held, every = _each_mode(
        DEFERRED_MODES,
        ["--deferred", "--tasks", options.tasks, "--ready", options.ready, "--batch", options.batch],
        lambda found: (
            f"master private {found['before_mb']:.1f} MiB idle, {found['held_mb']:.1f} holding "
            f"{options.tasks} due in a day; {options.ready} due now drained at {found['per_s']:.0f} tasks/s"
        ),
    )
    print(
        f"backlog-deferred tasks={options.tasks} held-mb={held['held_mb']:.1f} "
        f"held-mb-all={every['held_mb']:.1f} "
        f"per-s={held['per_s']:.0f} per-s-all={every['per_s']:.0f} sweep-read-ms={held['read_ms']:.0f} "
        f"ratio-held-mb={held['held_mb'] / every['held_mb']:.2f}"
    )


def _each_mode(modes, arguments, describe):
    """Each mode measured in a process of its own, its line printed as it ends: (held, all)."""
    figures = {}
    for mode in modes:
        figures[mode] = found = own_process.measure(__file__, [mode], arguments, timeout=3600)
        print(f"{mode:5} {describe(found)}", flush=True)
    return figures["held"], figures["all"]


def _enqueue(task, options):
    """``--tasks`` of ``task``, ``--batch`` to a transaction, and their ids handled by the master."""
    from django.db import transaction

    from relieve_app.tasks import client

    for start in range(0, options.tasks, options.batch):
        with transaction.atomic():
            for _ in range(min(options.batch, options.tasks - start)):
                task.enqueue()
    client.request("ping")
    time.sleep(1)  # the last frames handled


def measure_deferred(overrides, options):
    from datetime import timedelta

    env, folder = _setup(overrides)
    from django.db import transaction
    from django.utils import timezone

    from bench.bench_tasks import noop
    from relieve_app.models import TaskRecord
    from relieve_app.tasks.store import ready_rows
    from tests.processes import stop_all

    master = _start(env, folder, options)
    try:
        before = private_memory(master.pid) / 1024
        _enqueue(noop.using(run_after=timezone.now() + timedelta(days=1)), options)
        held = private_memory(master.pid) / 1024
        started = time.perf_counter()
        ready_rows.waiting((), {"default": ready_rows.SWEEP_LIMIT})
        ready_rows.due_within((), {"default": ready_rows.SWEEP_LIMIT}, 60)
        read = time.perf_counter() - started
        started = time.perf_counter()
        with transaction.atomic():
            for _ in range(options.ready):
                noop.enqueue()
        while TaskRecord.objects.filter(status="SUCCESSFUL").count() < options.ready:
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        stop_all([master])
    return {"before_mb": before, "held_mb": held, "per_s": options.ready / elapsed, "read_ms": read * 1000}


def _setup(overrides):
    """A fresh SQLite file under var/, migrated, and the environment of a master on it."""
    (ROOT / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="backlog-", dir=ROOT / "var"))
    env = bench_children.configure(folder, preload=True)
    os.environ["BENCH_QUEUES"] = env["BENCH_QUEUES"] = "default"
    os.environ["RELIEVE_LOG_LEVEL"] = env["RELIEVE_LOG_LEVEL"] = "WARNING"
    env.update(overrides)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return env, folder


def _start(env, folder, options):
    return bench_children.start_master(env, folder, ["--workers", str(options.children)])


def measure(overrides, options):
    env, folder = _setup(overrides)

    from bench.bench_tasks import noop
    from relieve_app.control import pause_queue, resume_queue
    from relieve_app.models import TaskRecord
    from tests.processes import stop_all

    master = _start(env, folder, options)
    try:
        pause_queue("default")
        time.sleep(1.5)  # the master reads the pause
        before = private_memory(master.pid) / 1024
        cpu = cpu_seconds(master.pid)
        _enqueue(noop, options)
        held = private_memory(master.pid) / 1024
        started = time.perf_counter()
        resume_queue("default")
        while TaskRecord.objects.filter(status="SUCCESSFUL").count() < options.tasks:
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(master.pid) - cpu
        after = private_memory(master.pid) / 1024
    finally:
        stop_all([master])
    return {
        "before_mb": before,
        "held_mb": held,
        "after_mb": after,
        "per_s": options.tasks / elapsed,
        "cpu_ms": cpu * 1000 / options.tasks,
    }


if __name__ == "__main__":
    main()
