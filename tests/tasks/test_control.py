"""relieve_app.control on the web side: cancelling a waiting task, asking a running one's master, pausing."""

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_finished
from django.utils.module_loading import import_string

from relieve_app import control
from relieve_app.models import PausedQueue, TaskEvent, TaskRecord
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.django_db


def test_a_waiting_task_ends_failed_at_once_with_task_cancelled(django_capture_on_commit_callbacks):
    result = basic.add.enqueue(1, 2)
    finished = []

    def note(sender, task_result, **kwargs):
        finished.append(task_result)

    task_finished.connect(note)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert control.cancel(result.id) is True
    finally:
        task_finished.disconnect(note)

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "relieve_app.control.TaskCancelled"
    assert import_string(error.exception_class_path) is control.TaskCancelled
    assert [r.id for r in finished] == [result.id] and finished[0].status == TaskResultStatus.FAILED
    assert TaskEvent.objects.get(task_result_id=result.id).event == "cancel"


def test_a_finished_task_is_left_unchanged():
    result = basic.add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=result.id).update(status=TaskResultStatus.SUCCESSFUL, return_value=3)
    assert control.cancel(result.id) is False
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.errors, row.cancel_requested_at) == ("SUCCESSFUL", [], None)


def test_a_running_task_is_flagged_for_its_master_and_acancel_works_too():
    result = basic.add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=result.id).update(status=TaskResultStatus.RUNNING, owner="host:1:2")
    assert async_to_sync(control.acancel)(result.id) is True
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == "RUNNING" and row.cancel_requested_at is not None


@pytest.mark.parametrize("bad", ["abc", None, 10**30, 999999])
def test_an_unknown_id_raises_task_result_does_not_exist(bad):
    with pytest.raises(TaskResultDoesNotExist):
        control.cancel(bad)


def test_pause_and_resume_are_kept_in_the_database():
    assert control.pause_queue("mail") is True
    assert control.pause_queue("mail") is False
    assert control.paused_queues() == {"mail"}
    assert (
        basic.add.using(queue_name="mail").enqueue(1, 2).status == TaskResultStatus.READY
    )  # still takes tasks
    assert control.resume_queue("mail") is True
    assert control.resume_queue("mail") is False
    assert not PausedQueue.objects.exists()
    with pytest.raises(ValueError, match="queue name"):
        control.pause_queue("")


def test_relievequeue_pauses_lists_and_resumes(capsys):
    basic.add.enqueue(1, 2)
    call_command("relievequeue", "pause", "default")
    call_command("relievequeue", "list")
    out = capsys.readouterr().out
    assert "queue default paused" in out
    assert "default: paused, 1 ready, 0 running" in out and "mail: running, 0 ready" in out
    call_command("relievequeue", "resume", "default")
    assert "queue default resumed" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no queue 'nope'"):
        call_command("relievequeue", "pause", "nope")
    with pytest.raises(CommandError, match="needs a queue's name"):
        call_command("relievequeue", "pause")


def test_a_waiting_contact_message_cancelled_shows_failed_through_its_hook():
    from relieve_app.contact.mailtask import send_contact_mail
    from relieve_app.models import MailOutcome

    job = {"emitter": "a@example.org", "recipient": "owner@example.com", "subject": "s", "body": "b" * 20}
    row = TaskRecord.objects.create(
        task_path=send_contact_mail.module_path, queue_name="mail", backend="default", args=[job]
    )
    outcome = MailOutcome.objects.create(**job, task_result=row)

    assert control.cancel(row.pk) is True

    outcome.refresh_from_db()
    assert outcome.status == MailOutcome.Status.FAILED and outcome.error == "cancelled before it started"
    assert TaskEvent.objects.get(task_result=row).outcome_id == outcome.pk
