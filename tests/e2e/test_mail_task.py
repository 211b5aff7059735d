"""The contact mail is a task among others: its MailOutcome and its task result never disagree,
even while children are killed in the middle of sends."""

import os
import signal
import time

import pytest
from django.test import Client

from relieve_app.models import MailOutcome
from tests.e2e.conftest import wait_until
from tests.e2e.test_delivery import all_sent, post

pytestmark = pytest.mark.e2e

# The delivery state a message must show for each state of its task (READY: before or between attempts).
AGREES = {
    ("READY", False): "queued",
    ("READY", True): "retrying",
    ("RUNNING", True): "sending",
    ("SUCCESSFUL", True): "sent",
    ("FAILED", True): "failed",
}


def disagreements():
    """Every message whose row says otherwise than its task's, read in one statement (one snapshot)."""
    rows = MailOutcome.objects.values_list(
        "pk", "status", "attempts", "task_result__status", "task_result__worker_ids"
    )
    return [
        row
        for row in rows
        if row[3] is None or AGREES.get((row[3], bool(row[4]))) != row[1] or row[2] != len(row[4])
    ]


def test_every_outcome_agrees_with_its_task_while_children_are_killed(master, smtp_sink):
    smtp_sink.stall = 0.2
    master.env["RELIEVE_MAX_ATTEMPTS"] = "10"  # three kills may hit the same message
    master.start(workers=2)
    web = Client()
    ids = [post(web, n) for n in range(16)]
    assert disagreements() == []
    kills = 0
    while kills < 3:
        busy = [c for c in master.status()["children"] if c["queue"] == "mail" and c["in_flight"]]
        if busy:
            os.kill(busy[0]["pid"], signal.SIGKILL)
            kills += 1
        assert disagreements() == []
        time.sleep(0.3)
    smtp_sink.stall = 0.0

    wait_until(all_sent(ids), message="every message sent despite the kills")
    assert disagreements() == []
    rows = MailOutcome.objects.filter(pk__in=ids).select_related("task_result")
    assert sum(row.attempts for row in rows) >= len(ids) + 1  # at least one send was cut and run again
    for row in rows:
        assert row.task_result.return_value == {"message": "Mail sent to owner@example.com"}
        assert row.task_result.worker_ids[-1] == row.task_name and row.error == ""
        assert row.events.filter(event="info", task_result=row.task_result).count() == 1


def test_a_refused_message_fails_at_once_and_a_dropped_connection_is_retried(master, smtp_sink):
    smtp_sink.refuse_if = lambda subject: subject == "refused for good"
    master.start(workers=1)
    web = Client()
    refused = post(web, 1, subject="refused for good")
    row = wait_until(lambda: MailOutcome.objects.filter(pk=refused, status="failed").first())
    assert row.attempts == 1 and "SMTP 550" in row.error
    task = row.task_result
    assert (
        task.status == "FAILED"
        and task.errors[0]["exception_class_path"] == "relieve_app.contact.mailtask.MailRefused"
    )

    smtp_sink.stop()  # connection refused: temporary
    later = post(web, 2, subject="sent once the server is back")
    wait_until(lambda: MailOutcome.objects.filter(pk=later, status="retrying").exists())
    smtp_sink.start()
    wait_until(all_sent([later]), message="the message sent once the server was back")
    row = MailOutcome.objects.get(pk=later)
    assert (
        row.attempts >= 2
        and row.task_result.errors[0]["exception_class_path"] == "relieve_app.retry.RetryLater"
    )
