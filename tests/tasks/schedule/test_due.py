"""The tick's write: each due slot becomes one task row, however many masters tick at once."""

from datetime import UTC, datetime, timedelta

import pytest
from django.tasks.signals import task_enqueued

from relieve_app.models import Schedule, TaskRecord
from relieve_app.tasks.schedule import due, listing
from relieve_app.tasks.schedule.entries import CATCH_UP_LIMIT, load

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def every_2s(settings):
    settings.RELIEVE_SCHEDULE = {
        "tick": {"task": "tests.tasks_fixtures.basic.add", "every": 2, "args": [1, 2]},
        "late": {"task": "tests.tasks_fixtures.basic.noop", "every": 2, "catch_up": True},
    }
    return load()


def runs(name="tick"):
    return list(TaskRecord.objects.filter(schedule=name).order_by("schedule_slot"))


def test_nothing_runs_for_slots_before_an_entry_was_first_seen(every_2s):
    assert due.enqueue_due(every_2s, START) == []
    assert Schedule.objects.get(name="tick").since == START


def test_each_slot_is_one_row_carrying_the_schedule_s_name_and_arguments(
    every_2s, django_capture_on_commit_callbacks
):
    due.enqueue_due(every_2s, START)
    seen = []

    def note(sender, task_result, **kwargs):
        seen.append(task_result.id)

    task_enqueued.connect(note)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            for step in range(1, 4):
                due.enqueue_due(every_2s, START + timedelta(seconds=2 * step))
    finally:
        task_enqueued.disconnect(note)
    rows = runs()
    assert [row.schedule_slot for row in rows] == [START + timedelta(seconds=2 * n) for n in (1, 2, 3)]
    assert {(row.task_path, row.queue_name, tuple(row.args), row.status) for row in rows} == {
        ("tests.tasks_fixtures.basic.add", "default", (1, 2), "READY")
    }
    assert len(seen) == 6  # both entries' runs announced


def test_two_masters_ticking_the_same_moment_enqueue_a_slot_once(every_2s):
    due.enqueue_due(every_2s, START)
    # A second master that read the state before the first wrote its last slot: the insert decides.
    Schedule.objects.update(last_slot=None)
    first = due.enqueue_due(every_2s, START + timedelta(seconds=2))
    Schedule.objects.update(last_slot=None)
    second = due.enqueue_due(every_2s, START + timedelta(seconds=2))
    assert len(first) == 2 and second == []
    assert len(runs()) == 1


def test_slots_missed_while_no_master_was_up_run_once_or_each_with_catch_up(every_2s):
    due.enqueue_due(every_2s, START)
    back = START + timedelta(seconds=20)  # ten slots missed
    due.enqueue_due(every_2s, back)
    assert [row.schedule_slot for row in runs()] == [back]
    assert len(runs("late")) == 10
    due.enqueue_due(every_2s, back + timedelta(days=1))
    assert len(runs("late")) == 10 + CATCH_UP_LIMIT


def test_a_disabled_entry_runs_nothing_and_starts_afresh_when_enabled(every_2s):
    due.enqueue_due(every_2s, START)
    listing.switch(["tick"], False, now=START)
    assert due.enqueue_due(every_2s, START + timedelta(seconds=10)) == [] or not runs()
    listing.switch(["tick"], True, now=START + timedelta(seconds=10))
    due.enqueue_due(every_2s, START + timedelta(seconds=12))
    assert [row.schedule_slot for row in runs()] == [START + timedelta(seconds=12)]


def test_the_listing_shows_rule_zone_switch_next_and_last_run(every_2s):
    due.enqueue_due(every_2s, START)
    due.enqueue_due(every_2s, START + timedelta(seconds=2))
    [tick, late] = listing.rows(now=START + timedelta(seconds=3))
    assert (tick["name"], tick["rule"], tick["timezone"], tick["enabled"]) == (
        "tick",
        "every 2s",
        "UTC",
        True,
    )
    assert tick["next_run"] == (START + timedelta(seconds=4)).isoformat()
    assert tick["last_run"] == (START + timedelta(seconds=2)).isoformat()
    assert tick["last_status"] == "READY" and late["catch_up"] is True
