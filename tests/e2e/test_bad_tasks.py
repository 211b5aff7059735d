"""Tasks that misbehave, run by a real runrelieve in real children: sys.exit(), os._exit(3),
exceptions that cannot be printed, grandchildren that would outlive their child, jobs that cannot
reach a child, outcomes the database cannot store, and a backlog in a queue nobody serves."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import DataError, connection, transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

from relieve_app.models import TaskRecord
from relieve_app.tasks import backend, client
from tests.e2e.conftest import wait_until
from tests.e2e.test_tasks import finished, running
from tests.tasks_fixtures import basic, misbehaving

pytestmark = pytest.mark.e2e

FAILED = TaskResultStatus.FAILED


def alive(pid):
    """A process that runs, zombies aside, read from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def pid_in(path):
    return int(wait_until(lambda: path.exists() and path.read_text(), message=f"a pid in {path}"))


def test_sys_exit_in_a_task_ends_its_attempt_at_once_and_the_child_goes_on(master):
    master.start(workers=1, queues=["default=1"])
    child = finished(basic.pid.enqueue()).return_value
    started = time.monotonic()

    result = finished(misbehaving.exit_zero.enqueue(), timeout=15)  # the call timeout is 20 s

    assert time.monotonic() - started < 10
    assert result.status == FAILED and result.attempts == 1
    assert result.errors[0].exception_class_path == "builtins.SystemExit"
    assert "sys.exit(0)" in TaskRecord.objects.get(pk=result.id).errors[0]["message"]
    assert finished(basic.pid.enqueue()).return_value == child  # the same child, still serving
    assert "no answer from" not in master.output()


def test_an_exception_that_cannot_be_printed_is_recorded_as_itself(master):
    master.start(workers=1)
    result = finished(misbehaving.raise_unprintable.enqueue())
    assert result.status == FAILED and result.attempts == 1
    assert result.errors[0].exception_class_path == "tests.tasks_fixtures.misbehaving.Unprintable"
    assert (
        "Unprintable whose str() raised RuntimeError"
        in TaskRecord.objects.get(pk=result.id).errors[0]["message"]
    )


def test_a_task_that_exits_with_code_3_is_not_a_child_that_could_not_boot(master):
    master.start(workers=1, queues=["default=1"])
    result = finished(misbehaving.hard_exit.enqueue(3))

    assert result.status == FAILED and result.attempts == 3  # RELIEVE_MAX_ATTEMPTS in these tests
    assert {e.exception_class_path for e in result.errors} == {"relieve_app.pool.errors.TaskExited"}
    assert "exited with code 3" in TaskRecord.objects.get(pk=result.id).errors[0]["message"]
    assert "could not boot" not in master.output()
    assert "exited with code 3; restarting" in master.output()


@pytest.mark.parametrize("own_session", [False, True], ids=["same-session", "own-session"])
def test_a_grandchild_does_not_outlive_its_child_killed_at_the_timeout(master, tmp_path, own_session):
    master.start(workers=1, queues=["default=1"])
    pid_file = tmp_path / "grandchild"
    result = misbehaving.fork_and_hang.enqueue(str(pid_file), own_session)  # timeout=1.0
    grandchild = pid_in(pid_file)
    assert alive(grandchild)

    assert finished(result).status == FAILED
    assert "killed it" in TaskRecord.objects.get(pk=result.id).errors[0]["message"]
    wait_until(lambda: not alive(grandchild), timeout=5, message=f"grandchild {grandchild} to be gone")


def test_a_grandchild_does_not_outlive_its_child_recycled(master, tmp_path):
    master.env["RELIEVE_MAX_CALLS"] = "1"
    master.start(workers=1, queues=["default=1"])
    gate = tmp_path / "gate"
    gate.touch()
    result = finished(misbehaving.fork_and_wait.enqueue(str(tmp_path / "grandchild"), str(gate)))
    grandchild = result.return_value

    wait_until(lambda: "recycling child default0" in master.output(), message="the recycle")
    wait_until(lambda: not alive(grandchild), timeout=5, message=f"grandchild {grandchild} to be gone")


def test_no_grandchild_outlives_a_stopped_master(master, tmp_path):
    """The stop that kills its children (without RELIEVE_FAILSAFE) kills what their tasks started."""
    master.env.update(RELIEVE_GRACE="0.5", RELIEVE_FAILSAFE="false")
    master.start(workers=1, queues=["default=1"])
    pid_file = tmp_path / "grandchild"
    running(misbehaving.fork_and_wait.enqueue(str(pid_file), str(tmp_path / "never")))
    grandchild = pid_in(pid_file)

    assert master.stop() == 0
    assert not alive(grandchild)


def stored(args, queue="default", **fields):
    """A row as a foreign writer (or an older enqueue()) may have left it, handed to the master."""
    row = TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.add", queue_name=queue, backend="default", args=args, **fields
    )
    return row


def result_of(row):
    return backend.RelieveBackend("default", {}).get_result(row.pk)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["x" * (2 * 2**20), 1], "exceeds the 1048576-byte cap"),
        (["\ud800", "x"], "surrogates not allowed"),
    ],
    ids=["over-the-frame-cap", "lone-surrogate"],
)
def test_a_job_that_cannot_reach_a_child_counts_as_an_attempt_and_fails_with_the_reason(master, args, says):
    master.start(workers=1, queues=["default=1"])
    if connection.vendor == "postgresql" and "\ud800" in args:
        # PostgreSQL refuses it at the insert: nothing to hand over.
        with pytest.raises(DataError), transaction.atomic():
            stored(args)
        return
    row = stored(args)
    assert client.submit_many([(row.pk, {})]) == 1

    result = finished(result_of(row), timeout=20)
    assert result.status == FAILED and result.attempts == 1
    row.refresh_from_db()
    assert says in row.errors[0]["message"] and "cannot be handed to default0" in row.errors[0]["message"]
    assert finished(basic.add.enqueue(1, 2)).return_value == 3  # the child and the master go on


def test_an_outcome_the_database_cannot_store_fails_that_task_alone(master):
    master.start(workers=2, queues=["default=2"])
    results = [
        misbehaving.returns_nul.enqueue(),
        misbehaving.raises_nul.enqueue(),
        *(basic.add.enqueue(n, n) for n in range(6)),
    ]
    nul_value, nul_error, *sums = (finished(result, timeout=20) for result in results)

    assert [r.return_value for r in sums] == [0, 2, 4, 6, 8, 10]
    assert nul_error.status == FAILED and nul_error.attempts == 1
    if connection.vendor == "postgresql":  # its text cannot hold a NUL
        assert nul_value.status == FAILED and nul_value.attempts == 1
        for result in (nul_value, nul_error):
            message = TaskRecord.objects.get(pk=result.id).errors[-1]["message"]
            assert "the outcome of this attempt cannot be stored" in message
            assert result.errors[-1].exception_class_path == "django.db.utils.DataError"
    else:
        assert nul_value.status == TaskResultStatus.SUCCESSFUL and nul_value.return_value == {
            "text": "a\x00b"
        }
        assert TaskRecord.objects.get(pk=nul_error.id).errors[0]["message"] == "a\x00b"
    assert finished(basic.noop.enqueue(), timeout=10).status == TaskResultStatus.SUCCESSFUL


def test_the_sweep_finds_a_served_queues_tasks_behind_another_queues_backlog(master):
    long_ago = timezone.now() - timedelta(days=1)
    TaskRecord.objects.bulk_create(
        TaskRecord(task_path="app.tasks.parked", queue_name="parked", backend="default", enqueued_at=long_ago)
        for _ in range(12_000)  # more than one sweep reads of any queue
    )
    waiting = [basic.add.enqueue(n, 1) for n in range(3)]  # the master is down: only its sweep finds them

    master.start(workers=1, queues=["default=1"])
    assert [finished(result, timeout=15).return_value for result in waiting] == [1, 2, 3]
    wait_until(lambda: "tasks wait in queue 'parked'" in master.output(), timeout=10, message="the warning")
    assert TaskRecord.objects.filter(queue_name="parked", status="READY").count() == 12_000
