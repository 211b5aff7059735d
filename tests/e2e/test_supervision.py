"""Supervision limits, each with real children: recycled after N sends or too much memory; a task
that cannot import is refused at start with the reason."""

import pytest
from django.test import Client

from relieve_app.models import MailOutcome, TaskEvent
from tests.e2e.conftest import wait_until
from tests.e2e.test_delivery import all_sent, post

pytestmark = pytest.mark.e2e


def test_a_child_is_recycled_after_max_calls(master):
    master.env["RELIEVE_MAX_CALLS"] = "3"
    master.start(workers=1)
    first_pid = mail_child(master)["pid"]
    web = Client()
    ids = [post(web, n) for n in range(7)]
    wait_until(all_sent(ids), message="all sent across recycles")
    recycles = TaskEvent.objects.filter(event="recycle")
    wait_until(lambda: recycles.count() >= 2, message="two recycles")
    assert all("3 tasks done" in event.payload["reason"] for event in recycles)
    assert mail_child(master)["pid"] != first_pid


def test_a_child_over_the_memory_limit_is_recycled(master):
    master.env["RELIEVE_MAX_MEMORY_MB"] = "1"  # any Python process is larger
    master.env["RELIEVE_USAGE_INTERVAL"] = "0.5"
    master.start(workers=1)
    event = wait_until(lambda: TaskEvent.objects.filter(event="recycle").first(), message="a recycle")
    assert "resident memory" in event.payload["reason"] and "over 1 MiB" in event.payload["reason"]
    pk = post(Client(), 1)
    wait_until(all_sent([pk]), message="a message sent while children are being recycled")


def test_a_task_that_cannot_import_is_refused_with_the_reason(master):
    broken = master.run_once("--task", "tests.e2e.tasks.broken")
    assert broken.returncode == 1
    assert "could not start" in broken.stderr
    assert "No module named 'a_module_that_does_not_exist'" in broken.stderr


def test_a_message_that_kills_its_child_every_time_ends_failed(master):
    master.env["RELIEVE_TASK"] = "tests.e2e.tasks.crashing:Crashing"
    master.start(workers=1)
    pk = post(Client(), 1, subject="poison")
    row = wait_until(
        lambda: MailOutcome.objects.filter(pk=pk, status="failed").first(),
        message="the poison message failed",
    )
    assert row.attempts == 3  # RELIEVE_MAX_ATTEMPTS in the fixture
    assert "went away during the task" in row.error and "70" in row.error


def mail_child(master):
    return next(child for child in master.status()["children"] if child["name"] == "mail0")
