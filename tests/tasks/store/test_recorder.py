"""The master's database thread: batches, replays, and never dies of a waiter that gave up."""

import asyncio
import threading
import time

import pytest
from django.db import OperationalError, connection, transaction

from relieve_app.contact import notify
from relieve_app.contact.outcomes import MAIL_TASK
from relieve_app.models import MailOutcome, TaskEvent, TaskRecord
from relieve_app.tasks.store import recorder, taskstore

pytestmark = pytest.mark.django_db(transaction=True)

OWNER = "host:1:1"


def new_outcome():
    task = TaskRecord.objects.create(task_path=MAIL_TASK, queue_name="mail", backend="default")
    return MailOutcome.objects.create(
        emitter="a@example.org", recipient="me@example.com", subject="s", body="b", task_result=task
    )


def claim(held, outcome):
    """The master's claim of an outcome's task, as one group of its ledger."""
    with transaction.atomic():  # as the recorder runs it: the claim's SELECT ... FOR UPDATE needs one
        [job] = taskstore.apply(held, [], [(outcome.task_result_id, "mail", "mail0")], OWNER, 60)
    return job


def mark_sent(held, outcome):
    taskstore.apply(
        held, [(outcome.task_result_id, "mail0", "success", {"message": "sent"}, None, None)], [], OWNER, 60
    )


def test_a_cancelled_waiter_does_not_stop_the_thread():
    outcome = new_outcome()
    gate = threading.Event()
    entered = threading.Event()

    def hold():
        entered.set()
        gate.wait(10)

    async def scenario():
        rec = recorder.Recorder().start()
        blocked = rec.submit(hold)  # holds the thread while the next waiter gives up
        await asyncio.to_thread(entered.wait, 10)  # the claim below comes in a later batch
        abandoned = rec.submit(claim, {}, outcome)
        abandoned.cancel()
        await asyncio.sleep(0.05)  # the cancel reaches the thread's future on the loop's next turn
        gate.set()
        await blocked
        job = await asyncio.wait_for(rec.submit(claim, {}, outcome), 10)
        await asyncio.wait_for(rec.stop(), 10)
        return job

    job = asyncio.run(scenario())
    assert job["attempt"] == 1  # the cancelled claim was skipped, not run
    assert MailOutcome.objects.get(pk=outcome.pk).status == "sending"


def test_a_failing_write_is_replayed_alone_and_the_rest_commit():
    outcome = new_outcome()

    def broken():
        raise RuntimeError("this write fails")

    async def scenario():
        rec = recorder.Recorder().start()
        gate = threading.Event()
        first = rec.submit(gate.wait, 10)
        failing = rec.submit(broken)
        rec.record(notify.add_notice, "mail0", "info", {"id": outcome.pk}, outcome.pk)
        gate.set()
        await first
        with pytest.raises(RuntimeError, match="this write fails"):
            await asyncio.wait_for(failing, 10)
        await asyncio.wait_for(rec.stop(), 10)

    asyncio.run(scenario())
    assert TaskEvent.objects.filter(outcome=outcome, event="info").count() == 1


def test_an_outcome_write_is_retried_past_the_ordinary_tries_until_it_commits():
    outcome = new_outcome()
    held = {}
    claim(held, outcome)
    failures = iter(range(recorder.RETRIES + 2))

    def flaky_mark_sent():
        if next(failures, None) is not None:
            raise OperationalError("the database went away")
        mark_sent(held, outcome)

    async def scenario():
        rec = recorder.Recorder().start()
        await asyncio.wait_for(rec.persist(flaky_mark_sent), 30)
        await asyncio.wait_for(rec.stop(), 10)

    asyncio.run(scenario())
    assert MailOutcome.objects.get(pk=outcome.pk).status == "sent"
    assert TaskRecord.objects.get(pk=outcome.task_result_id).status == "SUCCESSFUL"  # written together


def test_stop_gives_up_an_outcome_write_the_database_never_takes():
    def never():
        raise OperationalError("the database is away for good")

    async def scenario():
        rec = recorder.Recorder().start()
        lost = rec.persist(never)
        await asyncio.wait_for(rec.stop(timeout=0.5), 10)
        with pytest.raises(OperationalError):
            await lost

    asyncio.run(scenario())


def test_stop_returns_once_the_thread_closed_its_connection_and_ended(monkeypatch):
    """The master exits right after stop(): no thread of its may still be closing its connection
    (on SQLite the last close checkpoints the WAL) while the interpreter finalizes."""
    closed = []

    class SlowToClose:
        def __getattr__(self, name):
            return getattr(connection, name)

        def close(self):
            time.sleep(0.3)
            connection.close()
            closed.append(threading.current_thread().name)

    monkeypatch.setattr(recorder, "connection", SlowToClose())

    async def scenario():
        rec = recorder.Recorder().start()
        await asyncio.wait_for(rec.submit(TaskRecord.objects.count), 10)
        await asyncio.wait_for(rec.stop(), 10)
        return rec

    rec = asyncio.run(scenario())
    assert closed == ["relieve-recorder"]
    assert not rec._thread.is_alive()
