"""The contact view when the mail queue is full (RELIEVE_MAX_READY): 503 with Retry-After, in HTML
or JSON, the visitor's message back in the form, and no row of any kind left behind."""

import json

import pytest
from django.test import Client

from relieve_app.models import MailOutcome, TaskRecord

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}

pytestmark = pytest.mark.django_db


@pytest.fixture
def full_at_two(settings, master_socket):
    settings.RELIEVE_MAX_READY = {"mail": 2}
    settings.CONTACT_RATE_LIMIT = ""


def test_a_full_mail_queue_answers_503_and_keeps_what_the_visitor_typed(full_at_two):
    client = Client()
    assert [client.post(URL, VALID).status_code for _ in range(2)] == [303, 303]

    html = client.post(URL, {**VALID, "body": "Kept for the visitor while the queue is full."})
    as_json = client.post(
        URL, json.dumps(VALID), content_type="application/json", HTTP_ACCEPT="application/json"
    )

    assert html.status_code == 503 and int(html["Retry-After"]) > 0
    page = html.content.decode()
    assert "Too many messages are waiting" in page and "send it again" in page
    assert "Kept for the visitor while the queue is full." in page
    assert as_json.status_code == 503 and int(as_json["Retry-After"]) > 0
    assert "Too many messages are waiting" in as_json.json()["errors"]["__all__"][0]
    assert MailOutcome.objects.count() == TaskRecord.objects.count() == 2


def test_room_again_once_a_message_is_on_its_way(full_at_two):
    client = Client()
    client.post(URL, VALID)
    client.post(URL, VALID)
    assert client.post(URL, VALID).status_code == 503
    TaskRecord.objects.filter(pk=TaskRecord.objects.order_by("pk").first().pk).update(status="RUNNING")
    assert client.post(URL, VALID).status_code == 303


def test_a_post_refused_for_a_full_queue_does_not_count_against_the_visitor(settings, master_socket):
    from django.core.cache import cache

    cache.clear()
    settings.RELIEVE_MAX_READY = {"mail": 1}
    settings.CONTACT_RATE_LIMIT = "2/h"
    client = Client()
    assert client.post(URL, VALID).status_code == 303  # one of two
    assert client.post(URL, VALID).status_code == 503  # counted, then given back
    TaskRecord.objects.update(status="RUNNING")
    assert client.post(URL, VALID).status_code == 303  # two of two
    assert client.post(URL, VALID).status_code == 429
