"""A master's restart cuts no task short: its children finish what they run and record it themselves.

Real masters, real children, the test database: a master stopped (SIGTERM) or killed (SIGKILL) in the
middle of tasks, and the next one started at once on the same socket, as a deploy does.
"""

import os
import signal
import time

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone

from relieve_app.models import TaskEvent, TaskRecord
from relieve_app.tasks.owners import detached_owner, is_detached
from tests.e2e.conftest import wait_until
from tests.e2e.test_tasks import finished, running
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.e2e

TASKS = 4


@pytest.fixture
def restartable(master):
    """A master whose graceful stop would wait 1 s at most, with its lease renewed often."""
    master.env.update(RELIEVE_GRACE="1", RELIEVE_HEARTBEAT="0.5", RELIEVE_LEASE="3")
    return master


def start_tasks(master, gate, count=TASKS):
    """``count`` tasks held until ``gate`` exists, each started in its child: a row is RUNNING from
    its claim, a moment before its child has the task, and a stop then gives it back unstarted."""
    master.start(workers=count, queues=[f"default={count}"])
    markers = [gate.with_name(f"started-{n}") for n in range(count)]
    results = [running(basic.wait_for_file.enqueue(str(gate), started=str(m))) for m in markers]
    wait_until(lambda: all(m.exists() for m in markers), timeout=30, message="the children to start")
    children = {child["pid"] for child in master.status()["children"] if child["queue"] == "default"}
    return master.status()["owner"], results, children


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_restart_lets_every_running_task_finish_in_its_child_once(restartable, tmp_path):
    master, gate = restartable, tmp_path / "gate"
    first, results, children = start_tasks(master, gate)

    stopped = time.monotonic()
    assert master.stop() == 0
    assert "finish in their children" in master.output()
    for result in results:  # held by the child that runs it, which outlives its master
        row = TaskRecord.objects.get(pk=result.id)
        assert row.status == TaskRecord.Status.RUNNING and is_detached(row.owner), row.owner
        assert row.owner.endswith(f":{first}")
    master.start(workers=TASKS, queues=[f"default={TASKS}"])
    time.sleep(max(0.0, stopped + 2.0 - time.monotonic()))  # the tasks outlive the grace by far
    gate.touch()

    results = [finished(result) for result in results]
    assert [result.status for result in results] == [TaskResultStatus.SUCCESSFUL] * TASKS
    events = list(TaskEvent.objects.values_list("task_result_id", "event", "task_name", "payload"))
    assert all(len(result.worker_ids) == 1 for result in results), (events, master.output())
    assert {result.return_value for result in results} == children  # run to the end by the first children
    assert not TaskEvent.objects.filter(event="takeover").exists()
    assert TaskEvent.objects.filter(event="info", task_result_id__in=[r.id for r in results]).count() == TASKS
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=30, message="the children to exit")
    assert "took over" not in master.output()


def test_a_killed_master_loses_no_task_and_leaves_none_running(restartable, tmp_path):
    master, gate = restartable, tmp_path / "gate"
    _first, results, children = start_tasks(master, gate)

    master.stop(signal.SIGKILL)
    master.start(workers=TASKS, queues=[f"default={TASKS}"])
    gate.touch()

    results = [finished(result) for result in results]
    assert [result.status for result in results] == [TaskResultStatus.SUCCESSFUL] * TASKS
    for result in results:  # finished by its first child, or taken back and run again by the new master
        assert result.return_value in children or len(result.worker_ids) == 2
    assert not TaskRecord.objects.filter(status=TaskRecord.Status.RUNNING).exists()
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=30, message="the children to exit")


def test_a_detached_child_killed_leaves_its_task_to_be_taken_back_once_its_lease_ran_out(
    restartable, tmp_path
):
    master, gate = restartable, tmp_path / "gate"
    first, [result], [child] = start_tasks(master, gate, count=1)

    assert master.stop() == 0
    row = TaskRecord.objects.get(pk=result.id)
    assert row.owner == detached_owner(first, child)
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: not alive(child), timeout=10, message="the child to die")
    lease_until = TaskRecord.objects.get(pk=result.id).lease_until
    master.start(workers=1, queues=["default=1"])
    gate.touch()

    result = finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and len(result.worker_ids) == 2
    takeover = TaskEvent.objects.get(task_result_id=result.id, event="takeover")
    assert takeover.payload["from"] == detached_owner(first, child)
    assert takeover.created_at >= lease_until  # never before the child's lease ran out
    assert timezone.now() >= lease_until


def test_without_failsafe_a_stop_waits_its_grace_then_cuts_the_task_short(restartable, tmp_path):
    master, gate = restartable, tmp_path / "gate"
    master.env["RELIEVE_FAILSAFE"] = "false"
    _first, [result], [child] = start_tasks(master, gate, count=1)

    stopped = time.monotonic()
    assert master.stop() == 0
    assert time.monotonic() - stopped >= 1.0  # RELIEVE_GRACE
    assert not alive(child)
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.owner) == (TaskRecord.Status.READY, "")
    master.start(workers=1, queues=["default=1"])
    gate.touch()

    result = finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and len(result.worker_ids) == 2


def test_an_answer_its_killed_master_never_read_is_recorded_by_its_child(restartable, tmp_path):
    master, gate = restartable, tmp_path / "gate"
    _first, [result], [child] = start_tasks(master, gate, count=1)

    master.process.send_signal(signal.SIGSTOP)  # frozen: the child's answer waits, unread, in the socket
    try:
        gate.touch()
        time.sleep(1.0)  # the task ends 20 ms after the gate and its child answers
        assert TaskRecord.objects.get(pk=result.id).status == TaskRecord.Status.RUNNING
    finally:
        master.stop(signal.SIGKILL)

    result = finished(result)  # no master runs: the child recorded its own answer
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == child
    assert len(result.worker_ids) == 1
    wait_until(lambda: not alive(child), timeout=10, message="the child to exit")
    master.start(workers=1, queues=["default=1"])
    time.sleep(1.0)  # a sweep and a takeover would have run by now
    assert TaskRecord.objects.get(pk=result.id).worker_ids == result.worker_ids
    assert not TaskEvent.objects.filter(event="takeover").exists()
    assert TaskEvent.objects.filter(event="info", task_result_id=result.id).count() == 1
