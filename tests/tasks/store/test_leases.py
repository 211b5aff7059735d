"""Claims shared by masters: SKIP LOCKED between two of them, leases, takeovers, release, owners."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from relieve_app.contact.outcomes import MAIL_TASK
from relieve_app.models import MailOutcome, TaskEvent, TaskRecord
from relieve_app.tasks import owners
from relieve_app.tasks.store import leases, ready_rows, taskstore

pytestmark = pytest.mark.django_db(transaction=True)

A, B = "host-a:1:20260101T000000.000000Z", "host-b:2:20260101T000000.000000Z"
READY, RUNNING = TaskRecord.Status.READY, TaskRecord.Status.RUNNING


def row(**fields):
    return TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.add",
        queue_name="default",
        backend="default",
        args=[1, 2],
        **fields,
    )


def hold(owner, lease, **fields):
    held = row(**fields)
    TaskRecord.objects.filter(pk=held.pk).update(
        status=RUNNING, owner=owner, lease_until=timezone.now() + timedelta(seconds=lease), worker_ids=["c0"]
    )
    return held


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's; SQLite has one master"
)
def test_two_masters_claiming_the_same_rows_at_once_never_both_get_one():
    ids = [row().pk for _ in range(4)]
    first_holds, second_done = threading.Event(), threading.Event()
    got = {}

    def master(owner, hold_locks):
        try:
            with transaction.atomic():
                requests = [(pk, "default", f"c{n}") for n, pk in enumerate(ids)]
                answers = taskstore.apply({}, [], requests, owner, 30)
                got[owner] = {answer["id"] for answer in answers if answer}
                if hold_locks:  # keep the rows locked, uncommitted, while the other claims
                    first_holds.set()
                    second_done.wait(10)
        finally:
            connections.close_all()

    first = threading.Thread(target=master, args=(A, True))
    first.start()
    assert first_holds.wait(10)
    second = threading.Thread(target=master, args=(B, False))
    second.start()
    second.join(10)
    second_done.set()
    first.join(10)

    assert not second.is_alive()  # it skipped the first one's locked rows instead of waiting
    assert got[A] == set(ids) and got[B] == set()
    assert set(TaskRecord.objects.values_list("owner", flat=True)) == {A}


def sweep(owner, known=(), exclusive=False):
    """As the master's sweep calls them: take back, then list what waits."""
    with transaction.atomic():
        taskstore.take_back(set(known), owner, exclusive)
    return ready_rows.waiting(set(known))


def test_a_live_lease_is_never_taken_an_expired_one_is_with_an_event():
    live = hold(B, 30, enqueued_at=timezone.now() - timedelta(days=3))  # a long task, its lease renewed
    expired = hold(B, -1)

    listed = {pk for pk, *_rest in sweep(A)}

    assert TaskRecord.objects.get(pk=live.pk).status == RUNNING
    back = TaskRecord.objects.get(pk=expired.pk)
    assert (back.status, back.owner, back.lease_until) == (READY, "", None)
    assert listed == {expired.pk}  # and A may run it now
    event = TaskEvent.objects.get(event="takeover")
    assert event.task_result_id == expired.pk and event.payload["from"] == B and event.payload["by"] == A


def test_a_master_never_takes_what_it_runs_and_sqlite_takes_any_other():
    mine = hold(A, -1)  # its lease is old, but this master runs it: a heartbeat was late
    theirs = hold(B, 30)

    sweep(A, known={mine.pk})
    assert TaskRecord.objects.get(pk=mine.pk).status == RUNNING
    assert TaskRecord.objects.get(pk=theirs.pk).status == RUNNING

    sweep(A, known={mine.pk}, exclusive=True)  # SQLite: B cannot be alive
    assert TaskRecord.objects.get(pk=theirs.pk).status == READY
    assert TaskRecord.objects.get(pk=mine.pk).status == RUNNING


def test_a_taken_over_mail_task_says_retrying_on_its_message():
    task = hold(B, -1)
    TaskRecord.objects.filter(pk=task.pk).update(task_path=MAIL_TASK)
    outcome = MailOutcome.objects.create(
        emitter="a@example.org",
        recipient="me@example.com",
        subject="s",
        body="b",
        status="sending",
        task_result=task,
    )
    sweep(A)
    assert MailOutcome.objects.get(pk=outcome.pk).status == "retrying"


def test_renew_keeps_what_is_held_and_release_gives_it_back():
    held, lost = hold(A, 1), hold(A, 1)
    before = TaskRecord.objects.get(pk=held.pk).lease_until

    with transaction.atomic():
        assert leases.renew(A, {held.pk}, 60) == 1
    assert TaskRecord.objects.get(pk=held.pk).lease_until > before + timedelta(seconds=30)
    assert TaskRecord.objects.get(pk=lost.pk).lease_until < before + timedelta(seconds=1)

    with transaction.atomic():
        assert leases.release(A) == 2
    assert set(TaskRecord.objects.values_list("status", "owner")) == {(READY, "")}


def test_an_outcome_is_recorded_only_by_the_row_s_owner():
    task = row()
    held = {}
    with transaction.atomic():
        taskstore.apply(held, [], [(task.pk, "default", "c0")], A, 30)
    TaskRecord.objects.filter(pk=task.pk).update(owner=B)  # A's lease ran out; B took it and runs it

    with transaction.atomic():
        taskstore.apply(held, [(task.pk, "c0", "success", 3, None, None)], [], A, 30)

    task.refresh_from_db()
    assert (task.status, task.owner, task.return_value) == (RUNNING, B, None)
    assert not TaskEvent.objects.filter(event="info").exists()


def test_a_row_detached_to_a_child_moves_once_and_is_taken_over_only_once_its_lease_ran_out():
    """A child finishing a task for its stopped master: no master's end, no gone list, and not even
    SQLite's one-master rule takes its row while the child keeps its lease."""
    child = owners.detached_owner(B, 4242)
    task, other = hold(B, 30), hold(B, 30)

    with transaction.atomic():
        assert leases.detach(task.pk, [B], child, 5) == 1
        assert leases.detach(task.pk, [B], child, 5) == 1  # the master and its child both move it: once
        assert leases.detach(other.pk, [A], child, 5) == 0  # not held by that master
        assert leases.release(B) == 1  # the master's graceful end leaves the child's row alone
    assert TaskRecord.objects.get(pk=task.pk).owner == child and owners.is_detached(child)

    sweep(A, exclusive=True)
    with transaction.atomic():
        leases.take_over(A, set(), exclusive=True, gone={B, child})
    assert TaskRecord.objects.get(pk=task.pk).status == RUNNING

    TaskRecord.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    sweep(A)  # the child died and its lease ran out: any master takes it back
    back = TaskRecord.objects.get(pk=task.pk)
    assert (back.status, back.owner) == (READY, "")
    assert TaskEvent.objects.get(event="takeover", task_result_id=task.pk).payload["from"] == child
    with transaction.atomic():
        assert leases.detach(task.pk, [B], child, 5) == 0  # the child, late: its task runs elsewhere
