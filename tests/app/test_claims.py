"""Claims shared by masters: batched, ordered, owned and leased; taken over only once a lease ran out."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from relieve_app import claims, taskstore
from relieve_app.models import TaskEvent, TaskRecord

pytestmark = pytest.mark.django_db(transaction=True)

A, B = "host-a:1:20260101T000000.000000Z", "host-b:2:20260101T000000.000000Z"
READY, RUNNING = TaskRecord.Status.READY, TaskRecord.Status.RUNNING


def row(priority=0, queue="default", **fields):
    return TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.add", queue_name=queue, backend="default", priority=priority,
        args=[1, 2], **fields,
    )  # fmt: skip


def claim(workers, owner=A, queue="default", lease=30):
    with transaction.atomic():
        return claims.claim_batch(queue, workers, owner, lease)


def test_one_claim_hands_out_a_batch_highest_priority_first():
    low, high, middle = row(0), row(9), row(5)
    row(9, queue="mail")  # another queue
    row(9, run_after=timezone.now() + timedelta(hours=1))  # not due

    jobs, due_in = claim(["c0", "c1"])

    assert [(job["id"], job["worker"], job["attempt"]) for job in jobs] == [
        (high.pk, "c0", 1),
        (middle.pk, "c1", 1),
    ]
    held = TaskRecord.objects.get(pk=high.pk)
    assert (held.status, held.owner, held.worker_ids) == (RUNNING, A, ["c0"])
    assert timedelta(seconds=25) < held.lease_until - held.last_attempted_at <= timedelta(seconds=31)
    assert due_in is None  # every worker got a row

    jobs, due_in = claim(["c0", "c1"])
    assert [job["id"] for job in jobs] == [low.pk]
    assert 3500 < due_in <= 3600  # the row due in an hour


def test_a_row_is_claimed_once():
    only = row()
    assert [job["id"] for job in claim(["c0"], owner=A)[0]] == [only.pk]
    assert claim(["c0"], owner=B)[0] == []
    assert TaskRecord.objects.get().owner == A


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's; SQLite has one master"
)
def test_two_masters_claiming_at_once_skip_each_others_rows():
    ids = {row().pk for _ in range(4)}
    first_holds, second_done = threading.Event(), threading.Event()
    got = {}

    def master(owner, hold):
        try:
            with transaction.atomic():
                got[owner] = {job["id"] for job in claims.claim_batch("default", ["c0", "c1"], owner, 30)[0]}
                if hold:  # keep the rows locked, uncommitted, while the other claims
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

    assert not second.is_alive()  # it did not wait for the first one's locks
    assert len(got[A]) == len(got[B]) == 2 and got[A] | got[B] == ids
    assert set(TaskRecord.objects.filter(owner=B).values_list("pk", flat=True)) == got[B]


def hold(owner, lease, **fields):
    held = row(**fields)
    TaskRecord.objects.filter(pk=held.pk).update(
        status=RUNNING, owner=owner, lease_until=timezone.now() + timedelta(seconds=lease), worker_ids=["c0"]
    )
    return held


def test_a_live_lease_is_never_taken_an_expired_one_is_with_an_event():
    live = hold(B, 30, enqueued_at=timezone.now() - timedelta(days=3))  # long running, lease renewed
    expired = hold(B, -1)

    with transaction.atomic():
        queues = claims.take_over(A, holding=set())

    assert queues == {"default"}
    assert TaskRecord.objects.get(pk=live.pk).status == RUNNING
    back = TaskRecord.objects.get(pk=expired.pk)
    assert (back.status, back.owner, back.lease_until) == (READY, "", None)
    event = TaskEvent.objects.get(event="takeover")
    assert event.task_result_id == expired.pk and event.payload["from"] == B and event.payload["by"] == A


def test_a_master_never_takes_what_it_runs_and_sqlite_takes_any_other():
    mine = hold(A, -1)  # its lease is old, but this master runs it: the heartbeat was late
    theirs = hold(B, 30)

    with transaction.atomic():
        claims.take_over(A, holding={mine.pk})
    assert TaskRecord.objects.get(pk=mine.pk).status == RUNNING

    with transaction.atomic():
        claims.take_over(A, holding={mine.pk}, exclusive=True)  # SQLite: B cannot be alive
    assert TaskRecord.objects.get(pk=theirs.pk).status == READY
    assert TaskRecord.objects.get(pk=mine.pk).status == RUNNING


def test_renew_keeps_what_is_held_and_release_gives_it_back():
    held, lost = hold(A, 1), hold(A, 1)
    before = TaskRecord.objects.get(pk=held.pk).lease_until

    with transaction.atomic():
        assert claims.renew(A, {held.pk}, 60) == 1
    assert TaskRecord.objects.get(pk=held.pk).lease_until > before + timedelta(seconds=30)
    assert TaskRecord.objects.get(pk=lost.pk).lease_until < before + timedelta(seconds=1)

    with transaction.atomic():
        assert claims.release(A) == 2
    assert set(TaskRecord.objects.values_list("status", "owner")) == {(READY, "")}


def test_an_outcome_is_recorded_only_by_the_owner():
    taken = hold(B, 30)  # A's lease ran out and B took the row
    with transaction.atomic():
        taskstore.succeed(taken.pk, "c0", 3, owner=A)
    assert TaskRecord.objects.get(pk=taken.pk).status == RUNNING
    with transaction.atomic():
        taskstore.succeed(taken.pk, "c0", 3, owner=B)
    assert TaskRecord.objects.get(pk=taken.pk).status == TaskRecord.Status.SUCCESSFUL


def test_waiting_tells_which_queues_have_rows_due_now_or_later():
    row(queue="default")
    row(queue="mail", run_after=timezone.now() + timedelta(seconds=90))
    row(queue="elsewhere")

    with transaction.atomic():
        delays, unserved = claims.waiting(["default", "mail"])

    assert delays["default"] == 0 and 80 < delays["mail"] <= 90
    assert unserved == {"elsewhere"}
