"""What the sweep reads of the table: READY rows due now, the most urgent first, and apart, those
due within the next seconds asked."""

from datetime import timedelta

import pytest
from django.utils import timezone

from relieve_app.models import TaskRecord
from relieve_app.tasks.store import ready_rows

pytestmark = pytest.mark.django_db


def record(queue="default", **fields):
    return TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.add", queue_name=queue, backend="default", **fields
    )


def test_due_times_are_the_databases_and_a_row_stamped_ahead_is_still_listed():
    soon = record(run_after=timezone.now() + timedelta(seconds=90))
    ahead = record(
        enqueued_at=timezone.now() + timedelta(hours=1), updated_at=timezone.now() + timedelta(hours=1)
    )
    assert ready_rows.waiting(()) == [(ahead.pk, "default", 0, 0.0)]
    rows = ready_rows.due_within((), {"default": 10}, 100)
    # SQLite's clock reads in milliseconds: its "now" may be up to 1 ms behind the one above.
    assert [row[0] for row in rows] == [soon.pk] and 80 < rows[0][3] <= 90.001


def test_a_sweep_given_room_reads_the_most_urgent_rows_then_the_oldest():
    now = timezone.now()
    old = [record(enqueued_at=now - timedelta(minutes=10 - n)) for n in range(4)]
    urgent = [record(priority=5, enqueued_at=now), record(priority=2, enqueued_at=now)]
    elsewhere = record(queue="mail", priority=9)

    rows = ready_rows.waiting({urgent[0].pk}, {"default": 3})
    assert [row[0] for row in rows] == [urgent[1].pk, old[0].pk, old[1].pk]  # the held one skipped
    assert ready_rows.ready_priorities("default") == [5, 2, 0]
    assert [row[0] for row in ready_rows.waiting((), {"default": 1, "mail": 1})] == [
        elsewhere.pk,
        urgent[0].pk,
    ]


def test_rows_due_later_are_read_apart_and_only_within_the_time_asked():
    now = timezone.now()
    due = [record(), record(run_after=now - timedelta(seconds=5)), record(priority=3)]
    soon = [record(run_after=now + timedelta(seconds=50)), record(run_after=now + timedelta(seconds=30))]
    urgent = record(priority=3, run_after=now + timedelta(seconds=55))
    later = [
        record(run_after=now + timedelta(hours=1)),
        record(priority=3, run_after=now + timedelta(hours=2)),
    ]

    assert {row[0] for row in ready_rows.waiting((), {"default": 10})} == {row.pk for row in due}
    read = ready_rows.due_within({soon[0].pk}, {"default": 10}, 60)
    assert [row[0] for row in read] == [urgent.pk, soon[1].pk]  # the highest priority, then soonest
    assert [row[0] for row in ready_rows.due_within((), {"default": 2}, 60)] == [urgent.pk, soon[1].pk]
    assert {row[0] for row in ready_rows.due_within((), {"default": 10}, 3 * 3600)} == {
        row.pk for row in [*soon, urgent, *later]
    }
