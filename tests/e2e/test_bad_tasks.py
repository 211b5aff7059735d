"""Tasks that misbehave, run by a real runrelieve in real children: sys.exit(), os._exit(3),
exceptions that cannot be printed, and grandchildren that would outlive their child."""

import time
from pathlib import Path

import pytest
from django.tasks import TaskResultStatus

from relieve_app.models import TaskRecord
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
    master.env["RELIEVE_GRACE"] = "0.5"
    master.start(workers=1, queues=["default=1"])
    pid_file = tmp_path / "grandchild"
    running(misbehaving.fork_and_wait.enqueue(str(pid_file), str(tmp_path / "never")))
    grandchild = pid_in(pid_file)

    assert master.stop() == 0
    assert not alive(grandchild)
