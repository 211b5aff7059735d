"""A master restarted while its tasks run: how many times the tasks start, with and without FailSafe.

Usage: .venv/bin/python bench/restart.py [--tasks 20] [--seconds 15]

For ``RELIEVE_FAILSAFE`` off, then on, on a fresh SQLite file: a ``runrelieve`` with one child per
task runs ``--tasks`` tasks of ``--seconds`` each; 3 s in, it gets SIGTERM (its grace is the
default 10 s), and a new master starts on the same socket as soon as it has exited. Counted once
every task is SUCCESSFUL: the starts (one per attempt a row records), how long the old master took
to exit, and how long the tasks took to end after the new master started. The last line is
``restart starts-off=… starts-on=… exit-s-off=… exit-s-on=…``.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import own_process


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--one", choices=["false", "true"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(measure(options.one, options.tasks, options.seconds)))
        return
    figures = {}
    for failsafe in ("false", "true"):
        arguments = ["--tasks", options.tasks, "--seconds", options.seconds]
        figures[failsafe] = found = own_process.measure(__file__, [failsafe], arguments, timeout=600)
        print(
            f"RELIEVE_FAILSAFE={failsafe:5}  {found['tasks']} tasks of {options.seconds:g} s: "
            f"{found['starts']} starts, old master exited in {found['exit_s']:.1f} s, "
            f"all done {found['done_s']:.1f} s after the new master started",
            flush=True,
        )
    off, on = figures["false"], figures["true"]
    print(
        f"restart starts-off={off['starts']} starts-on={on['starts']} "
        f"exit-s-off={off['exit_s']:.1f} exit-s-on={on['exit_s']:.1f}"
    )


def measure(failsafe, tasks, seconds):
    from bench import tasks as bench

    folder = Path(tempfile.mkdtemp(prefix="restart-", dir=ROOT / "var"))
    env = bench.configure("relieve", "sqlite", folder)
    env["RELIEVE_FAILSAFE"] = os.environ["RELIEVE_FAILSAFE"] = failsafe
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from relieve_app.models import TaskRecord
    from tests.tasks_fixtures import basic

    def start():
        with open(folder / "workers.log", "a") as log:
            argv = [sys.executable, "manage.py", "runrelieve", "--queue", f"default={tasks}"]
            master = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        bench.wait_for_master(master, folder / "workers.log")
        return master

    master = start()
    ids = [basic.sleep_ms.enqueue(int(seconds * 1000)).id for _ in range(tasks)]
    rows = TaskRecord.objects.filter(pk__in=ids)
    while rows.filter(status="RUNNING").count() < tasks:
        time.sleep(0.1)
    time.sleep(3)
    stopping = time.monotonic()
    master.send_signal(signal.SIGTERM)
    master.wait(120)
    exit_s = time.monotonic() - stopping
    master = start()
    started = time.monotonic()
    try:
        while rows.filter(status="SUCCESSFUL").count() < tasks:
            if time.monotonic() - started > 4 * seconds + 60:
                raise SystemExit("the tasks did not all end")
            time.sleep(0.2)
        done_s = time.monotonic() - started
    finally:
        bench.stop_workers([master])
    return {
        "tasks": tasks,
        "starts": sum(len(row.worker_ids) for row in rows),
        "exit_s": exit_s,
        "done_s": done_s,
    }


if __name__ == "__main__":
    main()
