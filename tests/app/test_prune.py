"""prunetasks keeps the task table bounded: finished results older than the age go, nothing else."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from relieve_app.models import MailOutcome, TaskEvent, TaskRecord

pytestmark = pytest.mark.django_db


def record(status, age_days, **fields):
    finished = timezone.now() - timedelta(days=age_days) if status in TaskRecord.FINISHED else None
    return TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.noop",
        queue_name="default",
        backend="default",
        status=status,
        finished_at=finished,
        **fields,
    )


def test_old_finished_results_go_with_their_events_and_the_rest_stays():
    old_ok, old_failed = record("SUCCESSFUL", 8), record("FAILED", 30)
    recent, ready, running = record("SUCCESSFUL", 1), record("READY", 0), record("RUNNING", 0)
    TaskEvent.objects.create(event="info", task_name="default0", task_result=old_ok)
    outcome = MailOutcome.objects.create(
        emitter="a@example.org", recipient="me@example.com", subject="s", body="b", task_result=old_failed
    )
    kept_event = TaskEvent.objects.create(
        event="error", task_name="mail0", task_result=old_failed, outcome=outcome
    )

    call_command("prunetasks", "--older-than", "7d")

    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {recent.pk, ready.pk, running.pk}
    assert not TaskEvent.objects.filter(event="info").exists()
    kept_event.refresh_from_db()
    outcome.refresh_from_db()
    assert kept_event.outcome == outcome and outcome.task_result is None  # the message keeps its history


def test_dry_run_deletes_nothing(capsys):
    record("SUCCESSFUL", 8)
    call_command("prunetasks", "--older-than", "2d", "--dry-run")
    assert TaskRecord.objects.count() == 1
    assert "1 finished task result(s) older than 2d would go" in capsys.readouterr().out


@pytest.mark.parametrize("age", ["7", "d", "7 days", "-1d", ""])
def test_a_bad_age_says_how_to_write_it(age):
    with pytest.raises(CommandError, match="like 7d, 12h, 30m or 2w"):
        call_command("prunetasks", f"--older-than={age}")
