import re

import pytest
from django.urls import reverse

from relieve_app.models import MailOutcome, TaskEvent, UsageSample
from tests.fake_master import acknowledge_each

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:relieve_app_mailoutcome_changelist")


def outcome(status=MailOutcome.Status.QUEUED, **fields):
    defaults = {
        "emitter": "ada@example.com",
        "recipient": "me@example.com",
        "subject": "Hello",
        "body": "A message long enough to be sent along.",
        "status": status,
    }
    return MailOutcome.objects.create(**{**defaults, **fields})


def retry(admin_client, *outcomes):
    data = {"action": "retry", "_selected_action": [o.pk for o in outcomes]}
    return admin_client.post(CHANGELIST, data, follow=True)


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def test_changelist_filters_and_search(admin_client):
    outcome(status=MailOutcome.Status.FAILED, error="550 mailbox unavailable")
    outcome(subject="Another")

    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert "Retry selected messages" in response.content.decode()
    assert admin_client.get(CHANGELIST, {"status__exact": "failed"}).context["cl"].result_count == 1
    response = admin_client.get(CHANGELIST, {"q": "mailbox"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_change_page_is_read_only_with_events(admin_client):
    row = outcome(status=MailOutcome.Status.FAILED, error="550 mailbox unavailable")
    TaskEvent.objects.create(task_name="mail-1", event="error", payload={"code": 550}, outcome=row)

    response = admin_client.get(reverse("admin:relieve_app_mailoutcome_change", args=[row.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert "550 mailbox unavailable" in content
    assert "mail-1" in content
    assert 'name="emitter"' not in content  # shown, not editable
    assert admin_client.get(reverse("admin:relieve_app_mailoutcome_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_retry_resets_and_hands_over(admin_client, fake_master):
    master = fake_master(acknowledge_each)  # every task on one connection, as the master
    failed = outcome(status=MailOutcome.Status.FAILED, attempts=5, error="550 mailbox unavailable")
    stuck = outcome(status=MailOutcome.Status.SENDING, attempts=1, task_name="mail-2")
    sent = outcome(status=MailOutcome.Status.SENT, attempts=1)

    response = retry(admin_client, failed, stuck, sent)

    assert response.status_code == 200
    for row in (failed, stuck):
        row.refresh_from_db()
        assert (row.status, row.attempts, row.error) == ("queued", 0, "")
    sent.refresh_from_db()
    assert sent.status == "sent"
    submits = [request for request in master.requests if request["op"] == "submit"]
    handed = sorted(request["args"]["id"] for request in submits)
    assert handed == sorted([failed.task_result_id, stuck.task_result_id])
    assert {request["args"]["queue"] for request in submits} == {"mail"}
    for row in (failed, stuck):
        assert row.task_result.status == "READY" and row.task_result.args[0]["subject"] == row.subject
    assert {request["op"] for request in master.requests} <= {"submit", "ping"}  # ping: the banner's check
    notes = messages_of(response)
    assert "2 messages handed to the master." in notes
    assert any("not sent twice" in note for note in notes)


@pytest.mark.django_db(transaction=True)
def test_retry_without_master_leaves_rows_queued(admin_client, master_socket, caplog):
    failed = [outcome(status=MailOutcome.Status.FAILED, error="timeout") for _ in range(3)]

    response = retry(admin_client, *failed)

    assert response.status_code == 200
    assert set(MailOutcome.objects.values_list("status", flat=True)) == {"queued"}
    notes = messages_of(response)
    assert any(note.startswith("3 messages stay queued") for note in notes)
    assert str(master_socket) in caplog.text


def test_task_events_are_listed_and_searchable(admin_client):
    row = outcome()
    event = TaskEvent.objects.create(
        task_name="mail-1", event="info", payload={"smtp": "250 OK"}, outcome=row
    )
    TaskEvent.objects.create(task_name="mail-2", event="restart")
    changelist = reverse("admin:relieve_app_taskevent_changelist")

    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(changelist, {"event__exact": "info"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"q": "250 OK"}).context["cl"].result_count == 1
    assert admin_client.get(reverse("admin:relieve_app_taskevent_change", args=[event.pk])).status_code == 200
    assert admin_client.get(reverse("admin:relieve_app_taskevent_add")).status_code == 403


def test_a_message_is_found_by_the_reference_its_visitor_quotes(admin_client):
    wanted = MailOutcome.objects.create(
        emitter="a@example.com", recipient="me@example.com", subject="Mine", body="b"
    )
    MailOutcome.objects.create(emitter="b@example.com", recipient="me@example.com", subject="Other", body="b")

    found = admin_client.get(CHANGELIST, {"q": wanted.reference}).content.decode()
    detail = admin_client.get(
        reverse("admin:relieve_app_mailoutcome_change", args=[wanted.pk])
    ).content.decode()

    assert "Mine" in found and "Other" not in found
    assert wanted.reference in detail


def test_the_child_that_sent_is_called_a_child_not_a_task(admin_client):
    """Beside "task result", a column or label "task" naming mail0 would read as the task that ran."""
    row = outcome(status=MailOutcome.Status.SENT, task_name="mail0")
    TaskEvent.objects.create(task_name="mail0", event="info", outcome=row)
    UsageSample.objects.create(task_name="mail0", pid=42, memory=2**20, cpu_percent=1.5)
    pages = {
        "detail": reverse("admin:relieve_app_mailoutcome_change", args=[row.pk]),
        "events": reverse("admin:relieve_app_taskevent_changelist"),
        "samples": reverse("admin:relieve_app_usagesample_changelist"),
    }

    html = {name: admin_client.get(url).content.decode() for name, url in pages.items()}

    assert "Child:</label>" in html["detail"]
    assert "Task:</label>" not in html["detail"]
    for name in ("events", "samples"):
        header = re.search(r'<th scope="col" class="sortable column-task_name">.*?</th>', html[name], re.S)[0]
        assert ">Child</a>" in header, header
