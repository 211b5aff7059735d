"""Nothing queued waits for an unrelated event: children coming back, retries falling due, the sweep."""

import datetime
import os
import re
import signal
import time

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from relieve_app.contact.mailtask import send_contact_mail
from relieve_app.models import MailOutcome, TaskRecord
from relieve_app.tasks import notifying
from tests.e2e.conftest import wait_until
from tests.e2e.test_delivery import all_sent, post
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.e2e


def test_messages_posted_while_every_child_is_down_go_out_when_they_are_back(master, smtp_sink):
    master.start(workers=2)
    web = Client()
    # Sent and recorded: the sink has a message before its child answers, and a child killed then
    # has its task run again (at least once), which would send it twice.
    first = post(web, 0)
    wait_until(all_sent([first]), message="a first delivery recorded")
    for child in master.status()["children"]:
        os.kill(child["pid"], signal.SIGKILL)
    ids = [post(web, n) for n in range(1, 4)]  # before the children are back

    wait_until(all_sent(ids), timeout=30, message="the 3 messages sent once the children restarted")
    assert sorted(str(m["Subject"]) for m in smtp_sink.messages) == [f"message {n}" for n in range(4)]


def test_retries_due_before_the_killed_children_are_back_still_go_out(master, smtp_sink):
    master.env["RELIEVE_CALL_TIMEOUT"] = "1"  # every child is killed at its call timeout...
    master.env["RELIEVE_RETRY_DELAY"] = "0.05"  # ...and the retry is due before it has restarted
    master.env["RELIEVE_MAX_ATTEMPTS"] = "6"  # a retry may still meet the stall or a dying child
    smtp_sink.stall = 4.0
    master.start(workers=2)
    web = Client()
    ids = [post(web, n) for n in range(2)]
    wait_until(
        lambda: MailOutcome.objects.filter(pk__in=ids, events__event="timeout").distinct().count() == 2,
        message="both children killed at their call timeout",
    )
    smtp_sink.stall = 0.0

    wait_until(all_sent(ids), timeout=30, message="the retried messages sent")
    assert all(MailOutcome.objects.get(pk=pk).attempts >= 2 for pk in ids)


def test_a_row_stamped_ahead_of_the_clock_is_found_by_the_sweep(master, smtp_sink):
    master.start()
    job = {"emitter": "ahead@example.org", "recipient": "owner@example.com", "subject": "stamped ahead"}
    job["body"] = "b" * 40
    task = TaskRecord.objects.create(
        task_path=send_contact_mail.module_path, queue_name="mail", backend="default", args=[job]
    )
    row = MailOutcome.objects.create(**job, task_result=task)
    # Written by a web host whose clock runs an hour ahead, and never handed to the master.
    ahead = timezone.now() + datetime.timedelta(hours=1)
    MailOutcome.objects.filter(pk=row.pk).update(updated_at=ahead)
    TaskRecord.objects.filter(pk=task.pk).update(enqueued_at=ahead, updated_at=ahead)

    wait_until(all_sent([row.pk]), timeout=30, message="the sweep to send the row stamped ahead")
    assert [str(m["Subject"]) for m in smtp_sink.messages] == ["stamped ahead"]


def listening():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's; runs in its pass")
def test_a_bulk_past_what_is_announced_by_id_runs_at_once_and_is_read_in_one_sweep(master):
    """A transaction of ``BY_ID`` + 50 tasks: the first are heard of by id, the rest by one NOTIFY
    that makes the master sweep, and all run long before the next sweep is due (60 s)."""
    master.env["RELIEVE_SWEEP_INTERVAL"] = "60"
    master.start()
    wait_until(listening, message="the master's LISTEN connection")
    time.sleep(2)  # the sweep that follows its connection, which finds nothing, is done
    with transaction.atomic():
        ids = [int(basic.noop.enqueue().id) for _ in range(notifying.BY_ID + 50)]

    wait_until(
        lambda: TaskRecord.objects.filter(pk__in=ids, status="SUCCESSFUL").count() == len(ids),
        timeout=20,
        message=f"the {len(ids)} tasks to succeed before the next sweep",
    )
    assert re.findall(r"sweep: (\d+) waiting tasks picked up", master.output()) == ["50"]
