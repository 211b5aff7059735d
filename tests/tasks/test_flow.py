"""Flow control on the web side: unique enqueues, back-pressure, progress, and the task options' checks."""

import pytest
from django.db import transaction
from django.tasks import task
from django.tasks.exceptions import InvalidTask
from django.utils import timezone

from relieve_app.control import QueueFull, progress, report_progress
from relieve_app.models import TaskProgress, TaskRecord
from relieve_app.tasks import progress as progress_module
from relieve_app.tasks import unique
from tests.tasks_fixtures import basic, flow

pytestmark = pytest.mark.django_db


def test_a_unique_call_waiting_is_returned_with_its_id_and_no_new_row():
    first = flow.unique_add.enqueue(1, b=2)
    again = flow.unique_add.enqueue(1, b=2)
    other = flow.unique_add.enqueue(2, b=2)

    assert again.id == first.id
    assert other.id != first.id
    assert TaskRecord.objects.count() == 2


def test_the_order_of_keyword_arguments_does_not_make_another_call():
    assert unique.key("t", [1], {"a": 1, "b": 2}) == unique.key("t", [1], {"b": 2, "a": 1})
    assert unique.key("t", [1], {}) != unique.key("t", [2], {})
    assert unique.key("t", [1], {}) != unique.key("u", [1], {})


def test_once_started_a_new_unique_call_makes_a_new_row():
    first = flow.unique_add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=first.id).update(status="RUNNING", started_at=timezone.now())
    second = flow.unique_add.enqueue(1, 2)
    assert second.id != first.id

    # Back to READY for a retry: it has started, so it holds no key and a third call is new again.
    TaskRecord.objects.filter(pk=first.id).update(status="READY")
    assert flow.unique_add.enqueue(1, 2).id == second.id


def test_the_index_itself_refuses_a_second_waiting_row():
    """What concurrent processes race on: the database, not the read before the insert."""
    key = unique.key("tests.tasks_fixtures.flow.unique_add", [1, 2], {})
    fields = {
        "task_path": "tests.tasks_fixtures.flow.unique_add",
        "queue_name": "default",
        "backend": "default",
    }
    row, created = unique.insert(key, fields)
    assert created
    with transaction.atomic():  # the losing insert is undone in its savepoint; the caller's work goes on
        again, created = unique.insert(key, {**fields, "args": [1, 2]})
        assert (again.pk, created) == (row.pk, False)
    assert TaskRecord.objects.count() == 1


def test_a_full_queue_raises_queue_full_and_leaves_no_row(settings):
    settings.RELIEVE_MAX_READY = {"default": 2}
    basic.add.enqueue(1, 1)
    basic.add.enqueue(1, 2)
    with pytest.raises(QueueFull) as raised:
        basic.add.enqueue(1, 3)
    assert raised.value.queue == "default" and raised.value.limit == 2
    assert "RELIEVE_MAX_READY" in str(raised.value)
    assert TaskRecord.objects.count() == 2
    basic.add.using(queue_name="mail").enqueue(1, 4)  # another queue has no bound

    TaskRecord.objects.filter(args=[1, 1]).update(status="RUNNING")  # one started: room again
    basic.add.enqueue(1, 5)
    assert TaskRecord.objects.count() == 4


def test_a_waiting_unique_call_is_returned_even_from_a_full_queue(settings):
    first = flow.unique_add.enqueue(5, 5)
    settings.RELIEVE_MAX_READY = {"default": 1}
    assert flow.unique_add.enqueue(5, 5).id == first.id
    with pytest.raises(QueueFull):
        flow.unique_add.enqueue(6, 6)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number"),
        ({"concurrency": "2"}, "concurrency must be a whole number"),
        ({"rate": "10 per minute"}, "is not a rate"),
        ({"rate": "0/m"}, "allow at least 1"),
        ({"rate": ""}, "empty"),
        ({"unique": "yes"}, "unique must be True or False"),
    ],
)
def test_options_that_cannot_be_obeyed_are_refused_when_the_task_is_made(options, words):
    with pytest.raises(InvalidTask, match=words):
        task(**options)(basic.add.func)


def test_report_progress_outside_a_child_records_nothing():
    assert report_progress(1, 2) is False
    assert TaskProgress.objects.count() == 0


@pytest.mark.parametrize(
    ("done", "total"), [(-1, None), (float("nan"), None), (1, 0), (True, None), ("1", None)]
)
def test_report_progress_refuses_what_is_not_a_count(done, total):
    with pytest.raises(ValueError):
        report_progress(done, total)


def test_progress_is_written_at_most_once_a_second_and_the_last_value_is_kept():
    row = basic.add.enqueue(1, 1)
    with progress_module.reporting(int(row.id)):
        assert report_progress(1, 10, note="first")
        first = progress(row.id)
        for done in range(2, 8):
            report_progress(done, 10, note=f"at {done}")
        assert progress(row.id) == first  # held back: within the second of the first write
    last = progress(row.id)
    assert (last["done"], last["total"], last["note"]) == (7, 10, "at 7")
    assert last["at"] >= first["at"]


def test_progress_of_an_unknown_or_silent_task_is_none():
    row = basic.add.enqueue(1, 1)
    assert progress(row.id) is None
    assert progress("not an id") is None
    assert progress(999_999) is None


@pytest.mark.django_db(transaction=True)  # the timer writes on a connection of its own
def test_a_held_value_is_written_when_its_second_is_up_while_the_task_goes_on():
    import time

    row = basic.add.enqueue(1, 1)
    with progress_module.reporting(int(row.id)):
        report_progress(1, 3)
        report_progress(2, 3, note="quietly working")
        deadline = time.monotonic() + 10
        while progress(row.id)["done"] != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert progress(row.id)["note"] == "quietly working"
