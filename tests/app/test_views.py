import json
import logging
import time

import pytest
from django.test import Client
from django.urls import reverse

from relieve_app.models import MailOutcome
from tests.app.fake_master import stay_silent

pytestmark = pytest.mark.django_db

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}
GENEROUS = 3.0


@pytest.fixture(autouse=True)
def recipient(settings):
    settings.CONTACT_RECIPIENT = "inbox@example.org"
    return settings.CONTACT_RECIPIENT


def post_json(client, data, **extra):
    return client.post(URL, json.dumps(data), content_type="application/json", **extra)


def test_url_name_and_root_redirect(client):
    assert reverse("contact") == URL
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == URL


def test_get_shows_the_form(client):
    response = client.get(URL)

    assert response.status_code == 200
    content = response.content.decode()
    assert "csrfmiddlewaretoken" in content
    for name in ("emitter", "subject", "body"):
        assert f'name="{name}"' in content
    assert "<textarea" in content
    assert "Markdown is supported" in content


def test_valid_post_queues_and_answers_202(client, fake_master, django_capture_on_commit_callbacks):
    master = fake_master()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, VALID)

    assert response.status_code == 202
    assert "Thank you" in response.content.decode()
    outcome = MailOutcome.objects.get()
    assert outcome.status == MailOutcome.Status.QUEUED
    assert outcome.recipient == "inbox@example.org"
    assert (outcome.emitter, outcome.subject, outcome.body) == (VALID["emitter"], "Hello", VALID["body"])
    assert master.requests == [{"op": "submit", "args": {"id": outcome.pk}}]


def test_empty_subject_is_stored_as_no_subject(client, master_socket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {**VALID, "subject": ""})

    assert response.status_code == 202
    assert MailOutcome.objects.get().subject == "No subject"


def test_hand_off_waits_for_commit(client, fake_master, django_capture_on_commit_callbacks):
    master = fake_master()

    with django_capture_on_commit_callbacks() as callbacks:
        client.post(URL, VALID)
        assert master.requests == []

    assert len(callbacks) == 1


def test_json_accept_gets_json(client, fake_master, django_capture_on_commit_callbacks):
    fake_master()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, VALID, headers={"Accept": "application/json"})

    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    outcome = MailOutcome.objects.get()
    assert response.json() == {"id": outcome.pk, "status": "queued"}


def test_json_body_is_accepted(client, fake_master, django_capture_on_commit_callbacks):
    master = fake_master()

    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, {**VALID, "subject": None})

    assert response.status_code == 202
    outcome = MailOutcome.objects.get()
    assert response.json() == {"id": outcome.pk, "status": "queued"}
    assert outcome.subject == "No subject"
    assert master.requests == [{"op": "submit", "args": {"id": outcome.pk}}]


def test_json_body_can_still_ask_for_html(client, master_socket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, VALID, headers={"Accept": "text/html"})

    assert response.status_code == 202
    assert response["Content-Type"].startswith("text/html")


def test_invalid_post_shows_errors_beside_fields(client):
    response = client.post(URL, {"emitter": "not an email", "subject": "a\nb", "body": "short"})

    assert response.status_code == 400
    content = response.content.decode()
    assert 'class="errorlist' in content
    assert "does not look like an email address" in content
    assert "fit on one line" in content
    assert "at least 30 characters" in content
    assert "not an email" in content  # what the visitor typed is kept
    assert not MailOutcome.objects.exists()


def test_invalid_json_request_gets_json_errors(client):
    response = post_json(client, {"emitter": "ada@example.com", "body": "short"})

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"body"}
    assert "at least 30 characters" in errors["body"][0]
    assert not MailOutcome.objects.exists()


def test_invalid_form_post_with_json_accept(client):
    response = client.post(URL, {"body": "x" * 40}, headers={"Accept": "application/json"})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["emitter"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({**VALID, "body": ["a", "list"]}).encode(),
        json.dumps({**VALID, "emitter": 42}).encode(),
    ],
    ids=["broken", "empty", "not-utf8", "array", "string", "deep", "list-field", "number-field"],
)
def test_malformed_json_body_is_400_not_500(client, body):
    # CONTENT_TYPE too: the test client drops content_type when the body is empty.
    response = client.post(URL, body, content_type="application/json", CONTENT_TYPE="application/json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["__all__"]
    assert errors["__all__"][0]
    assert not MailOutcome.objects.exists()


def test_malformed_json_asking_for_html_shows_the_form(client):
    response = client.post(URL, b"{oops", content_type="application/json", headers={"Accept": "text/html"})

    assert response.status_code == 400
    assert "not valid JSON" in response.content.decode()


def test_csrf_is_enforced(master_socket, django_capture_on_commit_callbacks):
    browser = Client(enforce_csrf_checks=True)

    assert browser.post(URL, VALID).status_code == 403
    assert post_json(browser, VALID).status_code == 403

    browser.get(URL)
    token = browser.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=True):
        form_post = browser.post(URL, {**VALID, "csrfmiddlewaretoken": token})
        json_post = post_json(browser, VALID, headers={"X-CSRFToken": token})

    assert form_post.status_code == 202
    assert json_post.status_code == 202
    assert MailOutcome.objects.count() == 2


def test_master_down_still_answers_202(client, master_socket, caplog, django_capture_on_commit_callbacks):
    with (
        caplog.at_level(logging.WARNING, logger="relieve_app"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(URL, VALID, headers={"Accept": "application/json"})

    assert response.status_code == 202
    outcome = MailOutcome.objects.get()
    assert outcome.status == MailOutcome.Status.QUEUED
    assert response.json() == {"id": outcome.pk, "status": "queued"}
    [record] = [r for r in caplog.records if r.name == "relieve_app.client"]
    assert record.levelno == logging.WARNING
    assert str(master_socket) in record.getMessage()
    assert "stays queued" in record.getMessage()


@pytest.mark.django_db(transaction=True)
def test_silent_master_does_not_hold_the_response(client, fake_master, caplog):
    """A real commit: the hand-off runs inside the request and must stay bounded."""
    fake_master(stay_silent)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="relieve_app"):
        response = client.post(URL, VALID)

    assert response.status_code == 202
    assert time.monotonic() - started < GENEROUS
    assert MailOutcome.objects.get().status == MailOutcome.Status.QUEUED
    assert "stays queued" in caplog.text


def test_other_methods_are_refused(client):
    assert client.put(URL, VALID).status_code == 405
