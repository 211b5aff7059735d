"""The admin's task result list against a big table: ``python bench/admin_results.py --rows 1000000``.

Fills the database that DATABASE_URL names (migrated first; use a scratch one) with finished rows
over a few tasks, queues and months, then times the list unfiltered, filtered and searched, as a
logged-in superuser sees them. Prints the median of five loads of each page, in milliseconds.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

PAGES = {
    "unfiltered": "",
    "status=FAILED": "?status__exact=FAILED",
    "queue=mail": "?queue_name__exact=mail",
    "task": "?task_path__exact=tests.tasks_fixtures.basic.add",
    "page 50": "?p=50",
}


def fill(rows):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM relieve_app_taskrecord")
        if connection.vendor == "postgresql":
            series = f"SELECT n FROM generate_series(1, {rows}) AS n"
            now, step = "now()", "n * interval '10 seconds'"
        else:
            series = (
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
                f"WHERE n < {rows}) SELECT n FROM s"
            )
            now, step = "'2026-05-01 00:00:00'", "'-' || (n * 10) || ' seconds'"
        enqueued = f"{now} - {step}" if connection.vendor == "postgresql" else f"datetime({now}, {step})"
        cursor.execute(
            "INSERT INTO relieve_app_taskrecord (task_path, queue_name, backend, priority, takes_context,"
            " args, kwargs, status, return_value, errors, worker_ids, owner, enqueued_at, finished_at,"
            " updated_at) "
            "SELECT CASE n % 4 WHEN 0 THEN 'tests.tasks_fixtures.basic.add'"
            " ELSE 'app.tasks.job' || (n % 7) END,"
            " CASE n % 3 WHEN 0 THEN 'mail' ELSE 'default' END, 'default', 0, false, '[1, 2]', '{}',"
            " CASE n % 50 WHEN 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END, '3', '[]', '[\"default0\"]', '',"
            f" {enqueued}, {enqueued}, {enqueued} FROM ({series}) AS s"
        )
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE relieve_app_taskrecord")
        else:
            cursor.execute("ANALYZE")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="time the rows already there")
    options = parser.parse_args(argv)

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    if not options.keep:
        started = time.perf_counter()
        fill(options.rows)
        print(f"filled {options.rows} rows in {time.perf_counter() - started:.1f}s")
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    for name, query in PAGES.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(f"/admin/relieve_app/taskrecord/{query}")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        print(f"{name:>15}: {statistics.median(times):7.1f} ms")


if __name__ == "__main__":
    main()
