"""The master's reads never wait for SQLite's write lock, so a frozen master in a read blocks no post."""

import asyncio
import sqlite3

import pytest
from django.db import connection

from relieve_app.contact.outcomes import MAIL_TASK
from relieve_app.models import TaskRecord
from relieve_app.tasks.store import ready_rows, recorder

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's single write lock is what is tested"),
]


def test_the_sweep_query_runs_while_another_process_holds_the_write_lock():
    task = TaskRecord.objects.create(task_path=MAIL_TASK, queue_name="mail", backend="default")
    writer = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a post in the middle of its write

    async def scenario():
        rec = recorder.Recorder().start()
        try:
            return await asyncio.wait_for(rec.submit(ready_rows.waiting, ()), 5)
        finally:
            writer.execute("ROLLBACK")
            await asyncio.wait_for(rec.stop(), 30)

    try:
        rows = asyncio.run(scenario())
    finally:
        writer.close()
    assert [(pk, queue) for pk, queue, *_rest in rows] == [(task.pk, "mail")]
