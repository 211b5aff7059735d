"""A burst of hand-overs on the master's socket: its memory, descriptors and drain, against one connection.

Usage:
    nice -n 10 .venv/bin/python bench/socket_burst.py [--tasks 12000] [--children 4]

A real ``runrelieve`` of ``--children`` children on a fresh SQLite file. ``--tasks`` no-op tasks are
enqueued in one transaction, each in a savepoint of its own, as a loop of the contact view's
``enqueue`` makes them: on commit each is handed over on a connection of its own, one after the
other, as many web requests at once would. The baseline, in the same run, hands the same number
over on one connection (enqueues without savepoints). Read while the tasks drain: the master's
private memory at its peak (``/proc/<pid>/smaps_rollup``), its open descriptors at their peak, and
the seconds until every task is SUCCESSFUL. The last line is for scripts::

    socket-burst tasks=… private-mb=… private-mb-one=… fds=… fds-one=… drain-s=… drain-s-one=…
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import children as bench_children
from bench import own_process
from bench.tasks import successful_count

MODES = {"each": "a connection each", "one": "one connection"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12_000)
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--one", choices=list(MODES), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(measure(options.one, options)))
        return
    figures = {}
    for mode, label in MODES.items():
        arguments = ["--tasks", options.tasks, "--children", options.children]
        figures[mode] = found = own_process.measure(__file__, [mode], arguments, timeout=1200)
        print(
            f"{options.tasks} tasks, {label:17}: master {found['private_mb']:.1f} MiB private at its peak "
            f"({found['idle_mb']:.1f} idle), {found['fds']} descriptors open at most, "
            f"all done in {found['drain_s']:.1f} s",
            flush=True,
        )
    each, one = figures["each"], figures["one"]
    print(
        f"socket-burst tasks={options.tasks} private-mb={each['private_mb']:.1f} "
        f"private-mb-one={one['private_mb']:.1f} fds={each['fds']} fds-one={one['fds']} "
        f"drain-s={each['drain_s']:.1f} drain-s-one={one['drain_s']:.1f}"
    )


def measure(mode, options):
    (ROOT / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="socket-burst-", dir=ROOT / "var"))
    env = bench_children.configure(folder, preload=True)
    env["BENCH_QUEUES"] = os.environ["BENCH_QUEUES"] = "default"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import transaction

    from bench import bench_tasks
    from tests.processes import stop_all

    master = bench_children.start_master(env, folder, ["--workers", str(options.children)])
    try:
        time.sleep(1)  # its children up
        idle_mb = private_mb(master.pid)
        started = time.monotonic()
        ids = []
        with transaction.atomic():
            for _ in range(options.tasks):
                if mode == "each":
                    with transaction.atomic():  # a savepoint: its hand-over is its own
                        ids.append(bench_tasks.noop.enqueue().id)
                else:
                    ids.append(bench_tasks.noop.enqueue().id)
        peak_mb, peak_fds = idle_mb, 0
        while successful_count("relieve", ids) < len(ids):
            peak_mb = max(peak_mb, private_mb(master.pid))
            peak_fds = max(peak_fds, descriptors(master.pid))
            time.sleep(0.05)
        drain_s = time.monotonic() - started
    finally:
        stop_all([master])
    shutil.rmtree(folder, ignore_errors=True)
    return {"idle_mb": idle_mb, "private_mb": peak_mb, "fds": peak_fds, "drain_s": drain_s}


def private_mb(pid):
    return bench_children.private_memory(pid) / 1024


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


if __name__ == "__main__":
    main()
