"""Hostile Markdown bodies and encoded-word subjects through the view, runrelieve and a real SMTP server.

One child serves them all: each must be sent on its first attempt, and the mail after them too,
so no body held the child past its call timeout or failed.
"""

import pytest
from django.test import Client

from relieve_app.models import MailOutcome, TaskEvent
from tests.e2e.conftest import wait_until
from tests.hostile_bodies import HOSTILE_BODIES as BODIES

pytestmark = pytest.mark.e2e

NORMAL = "A normal message after them, with **Markdown** that renders."
SUBJECT = "=?utf-8?q?x=0D=0ABcc:_evil@evil.example?="


def post(web, subject, body):
    data = {"emitter": "visitor@example.org", "subject": subject, "body": body}
    response = web.post("/contact/", data, HTTP_ACCEPT="application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_hostile_bodies_are_each_sent_at_the_first_attempt_by_one_child(master, smtp_sink):
    master.start(workers=1)
    web = Client()
    ids = {name: post(web, name, body) for name, body in BODIES.items()}
    ids["normal"] = post(web, SUBJECT, NORMAL)

    # Before, each of these took the child minutes or failed; now all are out well within one call timeout.
    smtp_sink.wait_for(len(ids), timeout=60)
    rows = MailOutcome.objects.filter(pk__in=ids.values())
    wait_until(
        lambda: rows.filter(status="sent").count() == len(ids), timeout=30, message="every outcome sent"
    )

    by_subject = {str(message["Subject"]): message for message in smtp_sink.messages}
    assert sorted(by_subject) == sorted([*BODIES, SUBJECT])
    for name, body in BODIES.items():
        message = by_subject[name]
        assert message.get_body(("html",)) is None  # text only
        text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text.rstrip("\n") == body.strip()
    assert "<strong>Markdown</strong>" in by_subject[SUBJECT].get_body(("html",)).get_content()
    assert by_subject[SUBJECT]["Bcc"] is None

    assert {row.pk: row.attempts for row in rows} == dict.fromkeys(ids.values(), 1)
    assert not TaskEvent.objects.filter(event__in=("timeout", "exit")).exists()  # the child was never killed
    text_only = TaskEvent.objects.filter(event="info", outcome__in=[ids[name] for name in BODIES])
    assert all("as text only" in event.payload["message"] for event in text_only)
