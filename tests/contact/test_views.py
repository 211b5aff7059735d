import json
import logging
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from relieve_app.models import MailOutcome
from tests.fake_master import announced, stay_silent, through_socket

pytestmark = pytest.mark.django_db

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}
GENEROUS = 3.0


@pytest.fixture(autouse=True)
def recipient(settings):
    settings.CONTACT_RECIPIENT = "inbox@example.org"
    return settings.CONTACT_RECIPIENT


def accepted(outcome):
    """The JSON of a 202: the row's id and status, its reference and where to follow it."""
    return {
        "id": outcome.pk,
        "reference": outcome.reference,
        "status": "queued",
        "status_url": f"/contact/status/{outcome.reference}/",
    }


def post_json(client, data, **extra):
    return client.post(URL, json.dumps(data), content_type="application/json", **extra)


def test_url_name_and_root_redirect(client):
    assert reverse("relieve_app:contact") == URL
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


def test_valid_post_queues_and_redirects_to_its_thank_you_page(
    client, fake_master, django_capture_on_commit_callbacks
):
    master = fake_master()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, VALID)

    assert response.status_code == 303
    outcome = MailOutcome.objects.get()
    assert response["Location"] == f"/contact/thanks/{outcome.reference}/"
    assert "Thank you" in client.get(response["Location"]).content.decode()
    assert outcome.status == MailOutcome.Status.QUEUED
    assert outcome.recipient == "inbox@example.org"
    assert (outcome.emitter, outcome.subject, outcome.body) == (VALID["emitter"], "Hello", VALID["body"])
    assert announced(master, [(outcome.task_result_id, {"queue": "mail"})])


def test_empty_subject_is_stored_as_no_subject(client, master_socket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {**VALID, "subject": ""})

    assert response.status_code == 303
    assert MailOutcome.objects.get().subject == "No subject"


@through_socket
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
    assert response.json() == accepted(outcome)
    assert response["Location"] == f"/contact/status/{outcome.reference}/"


def test_json_body_is_accepted(client, fake_master, django_capture_on_commit_callbacks):
    master = fake_master()

    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, {**VALID, "subject": None})

    assert response.status_code == 202
    outcome = MailOutcome.objects.get()
    assert response.json() == accepted(outcome)
    assert outcome.subject == "No subject"
    assert announced(master, [(outcome.task_result_id, {"queue": "mail"})])


def test_json_body_can_still_ask_for_html(client, master_socket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, VALID, headers={"Accept": "text/html"})

    assert response.status_code == 303
    assert client.get(response["Location"])["Content-Type"].startswith("text/html")


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
        json.dumps({**VALID, "subject": "\ud800"}).encode(),
    ],
    ids=["broken", "empty", "not-utf8", "array", "string", "deep", "list-field", "number-field", "surrogate"],
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


def test_lone_surrogate_asking_for_html_is_a_400_page(client):
    """Found by test_contact_fuzz: the page used to echo a lone surrogate back and fail to encode itself."""
    body = json.dumps({**VALID, "body": VALID["body"] + "\udc00"})

    response = client.post(URL, body, content_type="application/json", headers={"Accept": "text/html"})

    assert response.status_code == 400
    assert "unpaired UTF-16 surrogates" in response.content.decode()
    assert not MailOutcome.objects.exists()


def test_csrf_is_enforced(master_socket, django_capture_on_commit_callbacks):
    browser = Client(enforce_csrf_checks=True)

    assert browser.post(URL, VALID).status_code == 403
    assert post_json(browser, VALID).status_code == 403

    browser.get(URL)
    token = browser.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=True):
        form_post = browser.post(URL, {**VALID, "csrfmiddlewaretoken": token})
        json_post = post_json(browser, VALID, headers={"X-CSRFToken": token})

    assert form_post.status_code == 303
    assert json_post.status_code == 202
    assert MailOutcome.objects.count() == 2


@through_socket
def test_master_down_still_answers_202(client, master_socket, caplog, django_capture_on_commit_callbacks):
    with (
        caplog.at_level(logging.WARNING, logger="relieve_app"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(URL, VALID, headers={"Accept": "application/json"})

    assert response.status_code == 202
    outcome = MailOutcome.objects.get()
    assert outcome.status == MailOutcome.Status.QUEUED
    assert response.json() == accepted(outcome)
    [record] = [r for r in caplog.records if r.name == "relieve_app.tasks.client"]
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

    assert response.status_code == 303
    assert time.monotonic() - started < GENEROUS
    assert MailOutcome.objects.get().status == MailOutcome.Status.QUEUED
    assert "stays queued" not in caplog.text  # written to the socket; no answer was awaited


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\u2028Bcc: victim@example.com"),
        ("subject", "Hello\x85Bcc: victim@example.com"),
        ("emitter", "a@b.com\nBcc: x@y.com"),
        ("emitter", "a@b.com\r\nBcc: x@y.com"),
        ("emitter", '"a\x0cBcc: x@y.com"@example.com'),
        ("emitter", '"a\x0bBcc: x@y.com"@example.com'),
        ("emitter", "a@exa\u2028mple.com"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_header_injection_is_refused_and_nothing_stored_or_sent(client, fake_master, field, value, as_json):
    master = fake_master()
    data = {**VALID, field: value}

    response = post_json(client, data) if as_json else client.post(URL, data)

    assert response.status_code == 400
    if as_json:
        assert list(response.json()["errors"]) == [field]
    assert not MailOutcome.objects.exists()
    assert master.requests == []


MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({**VALID, "body": "x" * MIB}), "application/json"),
        ("body=" + "x" * MIB, "application/x-www-form-urlencoded"),
        (None, None),  # the test client's default: multipart, where Django does not count file parts
    ],
    ids=["json", "urlencoded", "multipart"],
)
def test_a_mebibyte_is_refused_before_the_database(client, body, content_type):
    if body is None:
        response = client.post(URL, {**VALID, "body": "x" * MIB}, headers={"Accept": "application/json"})
    else:
        response = client.post(URL, body, content_type=content_type, headers={"Accept": "application/json"})

    assert response.status_code == 413
    assert "too large" in response.json()["errors"]["__all__"][0]
    assert not MailOutcome.objects.exists()


def test_a_file_part_counts_towards_the_size_limit(client):
    upload = SimpleUploadedFile("big.bin", b"\0" * MIB)

    response = client.post(URL, {**VALID, "attachment": upload})

    assert response.status_code == 413
    assert "too large" in response.content.decode()
    assert not MailOutcome.objects.exists()


def test_too_large_with_csrf_enforced_still_gets_a_clear_answer(master_socket):
    """The CSRF middleware would read a form body before the view: the size is judged before it."""
    browser = Client(enforce_csrf_checks=True)
    browser.get(URL)
    token = browser.cookies["csrftoken"].value

    response = browser.post(URL, {**VALID, "body": "x" * MIB, "csrfmiddlewaretoken": token})

    assert response.status_code == 413
    assert "too large" in response.content.decode()
    assert not MailOutcome.objects.exists()


def test_too_many_fields_is_a_clear_400(client):
    body = "&".join(f"f{n}=1" for n in range(2000))

    response = client.post(URL, body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert "too many fields" in response.content.decode()


def test_other_methods_are_refused(client):
    assert client.put(URL, VALID).status_code == 405
