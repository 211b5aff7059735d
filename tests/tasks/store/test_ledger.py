"""The master's ledger: while its children have work ahead, writes wait a moment to share a group."""

import asyncio

import pytest

from relieve_app.contact.outcomes import MAIL_TASK
from relieve_app.models import TaskRecord
from relieve_app.tasks.store import recorder
from relieve_app.tasks.store.ledger import Ledger

pytestmark = pytest.mark.django_db(transaction=True)

OWNER = "host:1:1"
LONG = 30.0  # a gathering window no test waits out: what is written before it passed did not wait


class CountingRecorder(recorder.Recorder):
    """The real recorder, counting the groups handed to it."""

    groups = 0

    def submit(self, fn, *args):
        self.groups += 1
        return super().submit(fn, *args)

    def persist(self, fn, *args):
        self.groups += 1
        return super().persist(fn, *args)


def new_tasks(count):
    return [
        TaskRecord.objects.create(task_path=MAIL_TASK, queue_name="mail", backend="default").pk
        for _ in range(count)
    ]


def run(scenario, gather, may_gather):
    async def main():
        rec = CountingRecorder().start()
        ledger = Ledger(rec, OWNER, 60, may_gather=lambda: may_gather[0], gather=gather)
        try:
            return await scenario(rec, ledger)
        finally:
            ledger.close()
            await asyncio.wait_for(rec.stop(), 10)

    return asyncio.run(main())


def test_an_outcome_and_the_next_claim_gathered_go_in_one_group():
    first, second = new_tasks(2)
    may_gather = [False]

    async def scenario(rec, ledger):
        job = await asyncio.wait_for(ledger.claim(first, "mail", "mail0"), 10)
        assert job["id"] == first
        may_gather[0] = True  # the children have work ahead: the writes below may wait for each other
        written = ledger.outcome(first, "mail0", "success", {"message": "sent"})
        claimed = ledger.claim(second, "mail", "mail1")
        assert ledger.busy and rec.groups == 1  # gathering: nothing handed over yet
        next_job = await asyncio.wait_for(claimed, 10)
        await asyncio.wait_for(written, 10)
        return rec.groups, next_job, ledger.busy

    groups, next_job, busy = run(scenario, gather=0.1, may_gather=may_gather)
    assert groups == 2  # the first claim, then the outcome and the next claim together
    assert next_job["id"] == second
    assert not busy
    assert TaskRecord.objects.get(pk=first).status == "SUCCESSFUL"
    assert TaskRecord.objects.get(pk=second).status == "RUNNING"


def test_without_work_ahead_each_write_starts_at_once():
    [task] = new_tasks(1)

    async def scenario(rec, ledger):
        await asyncio.wait_for(ledger.claim(task, "mail", "mail0"), 10)
        await asyncio.wait_for(ledger.outcome(task, "mail0", "success", {"message": "sent"}), 10)
        return rec.groups

    assert run(scenario, gather=LONG, may_gather=[False]) == 2
    assert TaskRecord.objects.get(pk=task).status == "SUCCESSFUL"


def test_writes_that_come_while_a_group_is_written_go_in_the_next_at_once():
    first, second, third = new_tasks(3)

    async def scenario(rec, ledger):
        await asyncio.wait_for(ledger.claim(first, "mail", "mail0"), 10)
        await asyncio.wait_for(ledger.claim(second, "mail", "mail1"), 10)
        outcome = ledger.outcome(first, "mail0", "success", {"message": "sent"})  # starts a group
        later = ledger.claim(third, "mail", "mail0")  # waits for that group, not for a window
        assert rec.groups == 3
        await asyncio.wait_for(asyncio.gather(outcome, later), 10)
        return rec.groups

    assert run(scenario, gather=LONG, may_gather=[False]) == 4
    assert TaskRecord.objects.get(pk=third).status == "RUNNING"


def test_a_stop_fails_what_was_still_gathering():
    [task] = new_tasks(1)

    async def scenario(rec, ledger):
        await asyncio.wait_for(ledger.claim(task, "mail", "mail0"), 10)
        ledger.may_gather = lambda: True
        written = ledger.outcome(task, "mail0", "success", {"message": "sent"})
        ledger.close()
        with pytest.raises(Exception, match="stopped before writing it"):
            await written
        await asyncio.sleep(0.2)  # a window that was not cancelled would write it now
        return rec.groups

    assert run(scenario, gather=0.05, may_gather=[False]) == 1
    assert TaskRecord.objects.get(pk=task).status == "RUNNING"
