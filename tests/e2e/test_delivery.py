"""A visitor's message goes through the view, the master and a child to a real SMTP server."""

import pytest
from django.test import Client

from relieve_app.models import MailOutcome, TaskEvent
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e

BODY = "Hello **there**, this is message number {n}.\n\n- one\n- two\n\n[site](https://example.com)"


def post(web, n, subject=None):
    data = {
        "emitter": f"visitor{n}@example.org",
        "subject": subject or f"message {n}",
        "body": BODY.format(n=n),
    }
    response = web.post("/contact/", data, HTTP_ACCEPT="application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def statuses():
    return dict(MailOutcome.objects.values_list("pk", "status"))


def all_sent(ids):
    return lambda: set(ids) <= {pk for pk, status in statuses().items() if status == "sent"}


def test_fifty_messages_are_sent_with_markdown_rendered(master, smtp_sink):
    master.start(workers=3)
    web = Client()
    ids = [post(web, n) for n in range(50)]

    smtp_sink.wait_for(50, timeout=60)
    wait_until(all_sent(ids), message="50 outcomes sent")

    subjects = sorted(message["Subject"] for message in smtp_sink.messages)
    assert subjects == sorted(f"message {n}" for n in range(50))
    first = smtp_sink.messages[0]
    assert first["To"] == "owner@example.com"
    assert first["Reply-To"].startswith("visitor")
    html = first.get_body(("html",)).get_content()
    assert "<strong>there</strong>" in html and "<li>one</li>" in html
    text = first.get_body(("plain",)).get_content()
    assert "**there**" in text

    rows = MailOutcome.objects.filter(pk__in=ids)
    assert all(row.sent_at and row.attempts == 1 and row.task_name.startswith("mail") for row in rows)
    info = TaskEvent.objects.filter(event="info", outcome__in=ids)
    assert wait_until(lambda: info.count() == 50, message="50 info events")
    assert len({row.task_name for row in rows}) > 1  # the pool spread the work


def test_status_reports_children(master):
    master.start(workers=2)
    status = master.status()
    mail = [child for child in status["children"] if child["queue"] == "mail"]
    assert [child["name"] for child in mail] == ["mail0", "mail1"]
    assert [c["name"] for c in status["children"] if c["queue"] == "default"] == ["default0", "default1"]
    assert all(child["running"] and child["pid"] for child in status["children"])
    assert wait_until(lambda: TaskEvent.objects.filter(event="start").count() == 4, message="start events")


def test_sigterm_stops_gracefully(master, smtp_sink):
    master.start(workers=2)
    assert master.stop() == 0
    assert "stopped" in master.output()
