"""Answers a killed master never recorded, recorded by the child that gave them (failsafe.py)."""

import pytest

from relieve_app.models import TaskEvent, TaskRecord
from relieve_app.tasks import failsafe
from relieve_app.tasks.store import taskstore

pytestmark = pytest.mark.django_db(transaction=True)  # record_unheard writes from a thread of its own

DEAD = "host:1:1"


def claimed(*workers):
    row = TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.add",
        backend="default",
        status="RUNNING",
        owner=DEAD,
        worker_ids=list(workers),
    )
    return taskstore.job(row, lease=30)


def test_only_answers_whose_claim_still_waits_are_recorded_once_each():
    first = claimed("default0")
    retried = claimed("default0", "default0")  # the dead master had recorded attempt 1 and claimed 2
    earlier_attempt = {**retried, "attempt": 1, "worker_ids": ["default0"]}
    recorded = claimed("default0")
    TaskRecord.objects.filter(pk=recorded["id"]).update(status="SUCCESSFUL")  # its master wrote it
    taken_back = claimed("default0")
    TaskRecord.objects.filter(pk=taken_back["id"]).update(owner="host:2:2")  # another master took it over

    failsafe.record_unheard(
        [
            (first, {"ok": True, "value": 1}),
            (earlier_attempt, {"ok": False, "error": {"message": "old"}, "retry": True}),
            (retried, {"ok": True, "value": 2}),
            (recorded, {"ok": True, "value": 3}),
            (taken_back, {"ok": True, "value": 4}),
        ]
    )

    rows = {row.pk: row for row in TaskRecord.objects.all()}
    assert (rows[first["id"]].status, rows[first["id"]].return_value) == ("SUCCESSFUL", 1)
    assert (rows[retried["id"]].status, rows[retried["id"]].return_value) == ("SUCCESSFUL", 2)
    assert rows[recorded["id"]].return_value is None
    assert (rows[taken_back["id"]].status, rows[taken_back["id"]].owner) == ("RUNNING", "host:2:2")
    assert not TaskEvent.objects.filter(task_result_id=retried["id"], event="error").exists()


def test_a_database_away_is_given_up_at_once(monkeypatch):
    job = claimed("default0")
    reads = []

    def away(jobs):
        reads.append(jobs)
        raise OSError("the database is away")

    monkeypatch.setattr(failsafe, "_unheard", away)
    failsafe.record_unheard([(job, {"ok": True, "value": 1}), (claimed("default0"), {"ok": True})])

    assert len(reads) == 1  # one read for all, not retried: a clean stop's children must not linger
    assert TaskRecord.objects.get(pk=job["id"]).status == "RUNNING"  # left for the next master
