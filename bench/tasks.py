"""Django tasks through relieve against django-tasks-db's db_worker, on SQLite and PostgreSQL.

Usage (in the bench venv, which also has django-tasks-db; see bench/requirements-tasks.txt):
    nice -n 10 var/bench-venv/bin/python bench/tasks.py [--processes 4] [--drain 5000] [--samples 100]

For each database, each backend runs on a fresh database with the same number of worker
processes (relieve: that many children of the "default" queue, plus the master and one idle
"mail" child; django-tasks-db: that many `db_worker` processes at their default 1 s poll):
- drain: ``--drain`` tasks enqueued in one transaction through ``enqueue()`` while the workers
  wait, timed from the first ``enqueue()`` to the last SUCCESSFUL row: tasks per second, for a
  no-op task and for a 10 ms sleep; for the sleep, also the seconds spent enqueueing and the rate
  from the commit on, the time the workers had, and in each worker process what a sleep took and
  the time from the end of one sleep to the start of its next (``bench_tasks.py``): the time the
  pool kept a worker waiting, with tasks in the table for it all along;
- latency: one no-op task at a time, each after a random pause of 0.2 to 1.2 s (idle workers, as
  between real arrivals), from ``enqueue()`` to SUCCESSFUL as seen by polling the result every
  millisecond: p50 and p99.
Each (backend, database) pair runs in its own process, since a process has one TASKS setting.
The master's own CPU time (its process, both threads, not its children) is read from /proc over
the no-op drain: milliseconds of CPU per task.
The last line is for scripts: ``tasks ours-per-s=… db-per-s=… ratio=… p50-ms ours=… db=…
ratio-sqlite=… ratio-postgres=… sleep-efficiency=… sleep-efficiency-after-commit=…
master-cpu-ms-per-task=… child-gap-ms=… child-sleep-ms=…`` (the no-op drain and latency, on the
database where our ratio is lowest; sleep-efficiency: our 10 ms drain over what the children could
do, ``--processes`` x 100/s, on the database where that drain is slower, and the same from the
commit on; the master's CPU per task on the database where it is highest; a child's mean gap
between two sleeps, and a sleep's mean length, on the database of the 10 ms drain).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import own_process

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/relieve_tasks_bench")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--drain", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--db-samples", type=int, default=30, help="db_worker waits ~1 s a sample")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--backends", default="relieve,db", help="a part of the run, to look closer")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "DATABASE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(measure(*options.one, options)))
        return
    figures = {}
    for database in options.databases.split(","):
        for backend in options.backends.split(","):
            figures[backend, database] = run_one(backend, database, options)
            show(backend, database, figures[backend, database])
    if {backend for backend, _database in figures} == {"relieve", "db"}:
        summarise(figures)


def run_one(backend, database, options):
    arguments = ["--processes", options.processes, "--drain", options.drain]
    arguments += ["--samples", options.samples, "--db-samples", options.db_samples]
    return own_process.measure(__file__, [backend, database], arguments, timeout=3600)


def show(backend, database, figures):
    print(
        f"{backend:8} {database:8} drain noop {figures['noop_per_s']:8.0f}/s  sleep-10ms "
        f"{figures['sleep_per_s']:7.0f}/s ({figures['sleep_enqueue_s']:.2f} s enqueueing, then "
        f"{figures['sleep_after_commit_per_s']:.0f}/s; a sleep {figures['sleep_ms']:.2f} ms, "
        f"{figures['gap_mean_ms']:.2f} ms between two, p50 {figures['gap_p50_ms']:.2f})  "
        f"latency p50 {figures['p50_ms']:7.1f} ms  "
        f"p99 {figures['p99_ms']:7.1f} ms  ({figures['samples']} samples)"
        + (f"  master cpu {figures['master_cpu_ms_per_task']:.2f} ms/task" if backend == "relieve" else ""),
        flush=True,
    )


def summarise(figures):
    databases = sorted({database for _backend, database in figures})
    # Ours on the database where it did worst, against db_worker on the same one.
    worst = min(
        databases, key=lambda db: figures["relieve", db]["noop_per_s"] / figures["db", db]["noop_per_s"]
    )
    ours, theirs = figures["relieve", worst], figures["db", worst]
    ratios = " ".join(
        f"ratio-{db}={figures['relieve', db]['noop_per_s'] / figures['db', db]['noop_per_s']:.2f}"
        for db in databases
    )
    slower = min(databases, key=lambda db: figures["relieve", db]["sleep_per_s"])
    could = figures["relieve", slower]["children"] * 100
    efficiency = figures["relieve", slower]["sleep_per_s"] / could
    after_commit = figures["relieve", slower]["sleep_after_commit_per_s"] / could
    cpu = max(figures["relieve", db]["master_cpu_ms_per_task"] for db in databases)
    gap, slept = figures["relieve", slower]["gap_mean_ms"], figures["relieve", slower]["sleep_ms"]
    print(f"(summary on {worst}, where the throughput ratio is lowest; 10 ms drain on {slower})")
    print(
        f"tasks ours-per-s={ours['noop_per_s']:.0f} db-per-s={theirs['noop_per_s']:.0f} "
        f"ratio={ours['noop_per_s'] / theirs['noop_per_s']:.2f} "
        f"p50-ms ours={ours['p50_ms']:.1f} db={theirs['p50_ms']:.1f} "
        f"{ratios} sleep-efficiency={efficiency:.2f} sleep-efficiency-after-commit={after_commit:.2f} "
        f"master-cpu-ms-per-task={cpu:.2f} child-gap-ms={gap:.2f} child-sleep-ms={slept:.2f}"
    )


# one backend on one database, in its own process ------------------------------------------


def measure(backend, database, options):
    folder = Path(tempfile.mkdtemp(prefix="tasks-", dir=ROOT / "var"))
    env = configure(backend, database, folder)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    workers = start_workers(backend, env, folder, options.processes)
    try:
        from bench import bench_tasks

        cpu_before = cpu_seconds(workers[0].pid)
        noop, _enqueueing, _after = drain(bench_tasks.noop, options.drain, backend)
        master_cpu = cpu_seconds(workers[0].pid) - cpu_before
        sleep, sleep_enqueueing, sleep_after_commit = drain(bench_tasks.sleep_10ms, options.drain, backend)
        gaps, sleeps = worker_gaps(folder / "gaps")
        samples = latencies(bench_tasks.noop, options.samples if backend == "relieve" else options.db_samples)
    finally:
        stop_workers(workers)
        if database == "postgres":
            from django.db import connection

            connection.close()
    ordered = sorted(samples)
    return {
        "noop_per_s": noop,
        "sleep_per_s": sleep,
        "sleep_enqueue_s": sleep_enqueueing,
        "sleep_after_commit_per_s": sleep_after_commit,
        "gap_p50_ms": statistics.median(gaps) * 1000,
        "gap_mean_ms": statistics.fmean(gaps) * 1000,
        "sleep_ms": statistics.fmean(sleeps) * 1000,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000,
        "samples": len(ordered),
        "children": options.processes,
        # db_worker has no master: its figure would be one worker's, which means nothing here.
        "master_cpu_ms_per_task": master_cpu * 1000 / options.drain if backend == "relieve" else None,
    }


def cpu_seconds(pid):
    """User and system CPU of one process (all its threads, none of its children) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def configure(backend, database, folder):
    os.environ["BENCH_BACKEND"] = backend
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.tasks_settings"
    os.environ["RELIEVE_SOCKET"] = str(folder / "r.sock")
    os.environ["BENCH_GAPS"] = str(folder / "gaps")  # bench_tasks.sleep_10ms notes its workers' gaps
    (folder / "gaps").mkdir()
    os.environ["RELIEVE_LOG_LEVEL"] = "WARNING"
    os.environ["RELIEVE_MAX_CALLS"] = "0"  # no recycling in the middle of a measurement
    os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory
    os.environ["RELIEVE_ALLOW_DEV_MAIL"] = "true"  # no mail is sent here
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-anything-else-0123456789")
    if database == "sqlite":
        os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    else:
        fresh_postgres(PG_URL)
        os.environ["DATABASE_URL"] = PG_URL
    return dict(os.environ)


def fresh_postgres(url):
    import psycopg

    base, name = url.split("?")[0].rsplit("/", 1)  # options such as ?server_side_binding=true are Django's
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def start_workers(backend, env, folder, processes):
    manage = [sys.executable, "manage.py"]
    logs = open(folder / "workers.log", "w")  # noqa: SIM115 - the workers own it until they exit
    if backend == "relieve":
        argv = [*manage, "runrelieve", "--queue", f"default={processes}", "--queue", "mail=1"]
        workers = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logs, stderr=subprocess.STDOUT)]
        wait_for_master(workers[0], folder / "workers.log")
    else:
        argv = [*manage, "db_worker", "--queue-name", "default", "--no-reload", "--no-startup-delay"]
        workers = [
            subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logs, stderr=subprocess.STDOUT)
            for _ in range(processes)
        ]
        time.sleep(3)  # each worker imports Django and polls once
        if any(worker.poll() is not None for worker in workers):
            raise SystemExit(f"db_worker exited:\n{(folder / 'workers.log').read_text()[-3000:]}")
    logs.close()
    return workers


def wait_for_master(process, log, timeout=60):
    from relieve_app.tasks import client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"runrelieve exited:\n{log.read_text()[-3000:]}")
        try:
            client.request("ping")
            return
        except client.ClientError:
            time.sleep(0.1)
    raise SystemExit("runrelieve did not answer")


def stop_workers(workers):
    from tests.processes import stop_all

    stop_all(workers)


def result_model(backend):
    if backend == "relieve":
        from relieve_app.models import TaskRecord

        return TaskRecord
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult


def successful_count(backend, ids):
    return result_model(backend).objects.filter(pk__in=ids, status="SUCCESSFUL").count()


def drain(task, count, backend):
    """``count`` enqueued in one transaction, until the last one is SUCCESSFUL: (tasks per second
    from the first ``enqueue()``, seconds until the commit, tasks per second from the commit: the
    time the workers had, as they see no task before it).

    While it waits, it counts the table's SUCCESSFUL rows, as only these tasks run: the same count
    over the 5,000 ids took 52 ms on PostgreSQL (36 of them this process's CPU), one after each
    50 ms pause, on the cores the workers use. The ids are checked once at the end."""
    from django.db import transaction

    done = result_model(backend).objects.filter(status="SUCCESSFUL")
    before = done.count()
    started = time.perf_counter()
    with transaction.atomic():
        ids = [task.enqueue().id for _ in range(count)]
    committed = time.perf_counter()
    while done.count() - before < count:
        time.sleep(0.05)
    ended = time.perf_counter()
    if successful_count(backend, ids) != count:
        raise SystemExit(f"{backend}: rows other than the drain's became SUCCESSFUL during it")
    return count / (ended - started), committed - started, count / (ended - committed)


def worker_gaps(folder):
    """(seconds each worker spent between two 10 ms sleeps of the drain, seconds each sleep took),
    from what ``bench_tasks.sleep_10ms`` noted in each worker's own file."""
    gaps, sleeps = [], []
    for path in folder.iterdir():
        for line in path.read_text().splitlines():
            gap, slept = map(float, line.split())
            gaps.append(gap)
            sleeps.append(slept)
    if not gaps:
        raise SystemExit(f"no worker noted a gap in {folder}: did the workers get BENCH_GAPS?")
    return gaps, sleeps


def latencies(task, samples):
    """Seconds from enqueue() to SUCCESSFUL, one task at a time, arriving at random moments."""
    from django.tasks import TaskResultStatus

    pauses = random.Random(8)
    taken = []
    for _ in range(samples):
        time.sleep(pauses.uniform(0.2, 1.2))  # workers idle, as between real arrivals
        started = time.perf_counter()
        result = task.enqueue()
        while True:
            result.refresh()
            if result.status == TaskResultStatus.SUCCESSFUL:
                break
            time.sleep(0.001)
        taken.append(time.perf_counter() - started)
    return taken


if __name__ == "__main__":
    main()
