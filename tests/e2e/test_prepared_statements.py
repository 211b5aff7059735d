"""PostgreSQL with Django's ``server_side_binding`` and ``prepare_threshold`` set in DATABASE_URL: a
master and ``enqueue()`` on such connections work, and the INSERT of ``enqueue()`` is prepared.

Django keeps both off by default, for connection poolers; a project that turns them on (the
production checklist says when) must not find relieve failing on them.
"""

import json
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.tasks import TaskResultStatus

from relieve_app.models import TaskRecord
from tests.e2e.conftest import ROOT, database_url, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="server-side binding is psycopg's, on PostgreSQL"
    ),
]

OPTIONS = "?server_side_binding=true&prepare_threshold=5"

ENQUEUE = """
import json, django, psycopg
django.setup()
from django.db import connection, transaction
from tests.tasks_fixtures import basic
with transaction.atomic():
    ids = [basic.add.enqueue(2, n).id for n in range(8)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
client_side = isinstance(connection.connection.cursor(), psycopg.ClientCursor)
print(json.dumps({"ids": ids, "client_side": client_side, "prepared": prepared}))
"""


def test_tasks_enqueued_and_run_on_prepared_statements(master):
    url = database_url() + OPTIONS
    master.env["DATABASE_URL"] = url
    master.start(workers=2)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    run = subprocess.run(
        [sys.executable, "-c", ENQUEUE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    enqueued = json.loads(run.stdout.splitlines()[-1])

    assert enqueued["client_side"] is False  # the URL's "true" reached Django as True
    inserts = [sql for sql in enqueued["prepared"] if sql.startswith("WITH inserted AS (INSERT INTO")]
    assert len(inserts) == 1, enqueued["prepared"]  # one statement, prepared once for the eight

    def all_done():
        rows = TaskRecord.objects.filter(pk__in=enqueued["ids"])
        return all(row.status in ("SUCCESSFUL", "FAILED") for row in rows) and len(rows) == 8

    wait_until(all_done, timeout=60, message="the eight tasks to finish")
    rows = TaskRecord.objects.filter(pk__in=enqueued["ids"]).order_by("pk")
    assert [row.status for row in rows] == [TaskResultStatus.SUCCESSFUL] * 8, master.output()
    assert [row.return_value for row in rows] == [2 + n for n in range(8)]
