"""What one ``enqueue()`` costs: ``python bench/enqueue.py [--count 2000] [--repeats 3]``.

``--count`` enqueues of a task without arguments (the 10 ms sleep) in one transaction, committed,
as bench/tasks.py's drain does, on the database DATABASE_URL names (migrated first, its task rows
deleted after each repeat: use a scratch one; a temporary SQLite file when unset). No master
runs: the time is the caller's alone. Prints, for each repeat, the microseconds per enqueue by
the clock, this process's CPU per enqueue and, for a PostgreSQL on this machine, its server
process's CPU (read from /proc), then a ``SELECT 1`` round trip for scale. The last line is for
scripts (medians): ``enqueue vendor=… us=… client-cpu-us=… server-cpu-us=… select1-us=…``.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="enqueues in one transaction")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="enqueue-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.tasks_settings"
    os.environ["BENCH_BACKEND"] = "relieve"
    os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory
    os.environ["RELIEVE_ALLOW_DEV_MAIL"] = "true"  # no mail is sent here
    os.environ["RELIEVE_SOCKET"] = str(folder / "r.sock")  # no master: SQLite's handover finds none
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-anything-else-0123456789")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder / 'enqueue.sqlite3'}")
    import django
    from django.core.management import call_command

    django.setup()
    logging.getLogger("relieve_app.tasks.client").setLevel(logging.ERROR)  # "no master": expected
    call_command("migrate", verbosity=0)
    from django.db import connection

    from bench import bench_tasks

    run(bench_tasks.sleep_10ms, 200)  # connections, caches and the statement made once
    figures = [run(bench_tasks.sleep_10ms, options.count) for _ in range(options.repeats)]
    for us, client, server in figures:
        print(f"{us:6.0f} µs per enqueue, client CPU {client:4.0f} µs, server CPU {shown(server)} µs")
    select1 = round_trip()
    print(f"SELECT 1 round trip {select1:.0f} µs")
    us, client, server = (median(column) for column in zip(*figures, strict=True))
    print(
        f"enqueue vendor={connection.vendor} us={us:.0f} client-cpu-us={client:.0f} "
        f"server-cpu-us={shown(server)} select1-us={select1:.0f}"
    )


def run(task, count):
    """(µs by the clock, µs of this process's CPU, µs of the server's CPU or None) per enqueue."""
    from django.db import transaction

    from relieve_app.models import TaskRecord

    clock, cpu, server = time.perf_counter(), time.process_time(), server_cpu()
    with transaction.atomic():
        for _ in range(count):
            task.enqueue()
    figures = (
        (time.perf_counter() - clock) * 1e6 / count,
        (time.process_time() - cpu) * 1e6 / count,
        None if server is None else (server_cpu() - server) / 1e3 / count,
    )
    TaskRecord.objects.all().delete()
    return figures


def server_cpu():
    """Nanoseconds of CPU of this connection's PostgreSQL process, when it runs here; else None."""
    from django.db import connection

    connection.ensure_connection()
    if connection.vendor != "postgresql":
        return None
    try:
        return int(Path(f"/proc/{connection.connection.info.backend_pid}/schedstat").read_text().split()[0])
    except OSError:
        return None


def round_trip(count=2000):
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(count):
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return (time.perf_counter() - started) * 1e6 / count


def median(values):
    return None if None in values else statistics.median(values)


def shown(value):
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    main()
