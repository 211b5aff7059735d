"""Schedules and control with real masters and children: on SQLite one master, on PostgreSQL two.

A 2 s schedule counted over a minute, a cancel of a waiting and of a running task (on another
master, with PostgreSQL), retry_on ending both ways, and a queue paused under load. A task claimed
ahead of its child (short tasks) and not started yet is cancelled, paused or stopped without
running and without an attempt.
"""

import itertools
import json
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

from relieve_app import control
from relieve_app.models import TaskRecord
from tests.e2e.conftest import MasterProcess, wait_until
from tests.e2e.test_tasks import finished, running
from tests.tasks_fixtures import basic, controlled, retrying

pytestmark = pytest.mark.e2e

FAILED, SUCCESSFUL = TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL
POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def masters(master, tmp_path):
    """The test's masters, not started: one on SQLite, two hosts on one PostgreSQL."""
    master.env.update(RELIEVE_HOST="host-a", RELIEVE_HEARTBEAT="0.5", RELIEVE_LEASE="5")
    found = [master]
    if POSTGRES:
        env = {**master.env, "RELIEVE_HOST": "host-b", "RELIEVE_SOCKET": str(tmp_path / "b.sock")}
        found.append(MasterProcess(tmp_path / "b.sock", tmp_path / "master-b.log", env))
    yield found
    for other in found[1:]:
        other.stop(signal.SIGKILL if other.process and other.process.poll() is None else signal.SIGTERM)


def start_all(masters, **options):
    for each in masters:
        each.start(**options)


def test_a_2s_schedule_runs_each_slot_once_over_a_minute(masters, tmp_path):
    log = tmp_path / "ticks.log"
    schedule = {"tick": {"task": "tests.tasks_fixtures.basic.log_line", "every": 2, "args": [str(log), "t"]}}
    for each in masters:
        each.env["RELIEVE_SCHEDULE"] = json.dumps(schedule)
    start_all(masters, workers=1)
    up = timezone.now()
    time.sleep(60)
    down = timezone.now()
    for each in masters:
        each.stop()

    rows = list(TaskRecord.objects.filter(schedule="tick").order_by("schedule_slot"))
    slots = [row.schedule_slot for row in rows]
    assert len(slots) == len(set(slots)) >= 28  # none twice
    steps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots)}
    assert steps == {2.0}  # none skipped
    assert slots[0] - up < timedelta(seconds=3) and down - slots[-1] < timedelta(seconds=3)
    done = [row for row in rows if row.status == SUCCESSFUL]
    assert len(log.read_text().splitlines()) == len(done) >= len(rows) - len(masters)  # each ran once
    assert all(row.task_path == basic.log_line.module_path for row in rows)


def test_cancel_fails_a_waiting_task_at_once_and_stops_a_running_one_on_its_master(masters, tmp_path):
    # On PostgreSQL the task runs on the second master, which the web side never talks to.
    runner = masters[-1]
    runner.start(workers=1, queues=["default=1"])
    pid_path = tmp_path / "pids"
    busy = running(controlled.spawn_and_wait.enqueue(str(pid_path)))
    wait_until(lambda: pid_path.exists() and pid_path.read_text(), message="the task's own process")
    child_pid, sleeper_pid = map(int, pid_path.read_text().split())
    if len(masters) > 1:
        masters[0].start(workers=1, queues=["default=1"])
        assert TaskRecord.objects.get(pk=busy.id).owner.startswith("host-b:")
    # Due later, so that no free child of either master starts it before the cancel.
    waiting = basic.add.using(run_after=timezone.now() + timedelta(minutes=5)).enqueue(2, 3)

    assert control.cancel(waiting.id) is True
    waiting.refresh()
    assert waiting.status == FAILED  # at once
    asked = time.monotonic()
    assert control.cancel(busy.id) is True
    busy = finished(busy, timeout=10)
    took = time.monotonic() - asked

    assert busy.status == FAILED and took < 2.0
    assert busy.errors[-1].exception_class_path == "relieve_app.control.TaskCancelled"
    assert waiting.errors[-1].exception_class_path == "relieve_app.control.TaskCancelled"
    wait_until(lambda: not Path(f"/proc/{sleeper_pid}").exists(), timeout=10, message="its process killed")
    assert not Path(f"/proc/{child_pid}").exists()
    assert control.cancel(busy.id) is False  # finished: left alone
    # The child was replaced and the queue goes on.
    assert finished(basic.add.enqueue(1, 1)).return_value == 2


def test_retry_on_retries_until_success_or_until_its_attempts_are_spent(masters, tmp_path):
    start_all(masters, workers=2)
    recovers = retrying.flaky.enqueue(str(tmp_path / "a"), 2)
    gives_up = retrying.flaky.enqueue(str(tmp_path / "b"), 10)
    other = retrying.wrong_kind.enqueue(str(tmp_path / "c"))

    recovers, gives_up, other = finished(recovers), finished(gives_up), finished(other)

    assert (recovers.status, recovers.return_value, len(recovers.errors)) == (SUCCESSFUL, 3, 2)
    assert (gives_up.status, gives_up.attempts, len(gives_up.errors)) == (FAILED, 4, 4)
    assert {e.exception_class_path for e in gives_up.errors} == {"builtins.ConnectionRefusedError"}
    assert (other.status, other.attempts) == (FAILED, 1)
    assert (tmp_path / "c").read_text() == "1"


def test_a_paused_queue_starts_nothing_on_any_master_until_resumed(masters, tmp_path, capsys):
    start_all(masters, workers=2)
    log = tmp_path / "load.log"
    results = [basic.log_line.enqueue(str(log), n, 0.05) for n in range(60)]
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 5, message="the load under way")

    control.pause_queue("default")
    paused_at = timezone.now()
    late = [basic.log_line.enqueue(str(log), 100 + n) for n in range(5)]  # enqueue() still takes tasks
    time.sleep(3)
    started = TaskRecord.objects.filter(pk__in=[int(r.id) for r in results + late], started_at__isnull=False)
    ran_before = len(log.read_text().splitlines())
    assert not started.filter(started_at__gt=paused_at + timedelta(seconds=1)).exists()
    assert ran_before < len(results)  # the pause held tasks back
    assert not TaskRecord.objects.filter(status=TaskResultStatus.RUNNING).exists()  # running ones finished
    call_command("relievestatus")
    assert "queue default: paused" in capsys.readouterr().out

    # A restart keeps the pause.
    masters[0].stop()
    masters[0].start(workers=2)
    time.sleep(1.5)
    assert len(log.read_text().splitlines()) == ran_before

    control.resume_queue("default")
    for result in results + late:
        assert finished(result).status == SUCCESSFUL
    assert len(log.read_text().splitlines()) == len(results) + len(late)


def held_ahead(master, tmp_path, log):
    """One child runs a task held open by a file (the gate) while a second, which would log a
    line, waits claimed ahead of it: the queue's tasks were short, so its next one is claimed early."""
    master.start(workers=1, queues=["default=1"])
    for result in [basic.noop.enqueue() for _ in range(20)]:
        assert finished(result).status == SUCCESSFUL
    gate = tmp_path / "gate"
    with transaction.atomic():  # handed over together: the second is claimed as the first starts
        blocker = basic.wait_for_file.using(priority=10).enqueue(str(gate))
        target = basic.log_line.enqueue(str(log), "target")
    running(blocker)
    running(target, timeout=10)  # RUNNING while its only child is busy: claimed ahead
    assert target.attempts == 1
    return gate, blocker, target


def test_a_task_claimed_ahead_and_cancelled_ends_failed_without_running(master, tmp_path):
    log = tmp_path / "target.log"
    gate, blocker, target = held_ahead(master, tmp_path, log)

    asked = time.monotonic()
    assert control.cancel(target.id) is True
    target = finished(target, timeout=10)
    took = time.monotonic() - asked

    assert target.status == FAILED and took < 2.0
    assert target.errors[-1].exception_class_path == "relieve_app.control.TaskCancelled"
    assert (target.attempts, target.started_at) == (0, None)  # it never had one
    gate.touch()
    assert finished(blocker).status == SUCCESSFUL  # the child's own task was left alone
    assert finished(basic.add.enqueue(1, 1)).return_value == 2
    assert not log.exists()


def test_a_paused_queue_gives_back_a_task_claimed_ahead_until_resumed(master, tmp_path):
    log = tmp_path / "target.log"
    gate, blocker, target = held_ahead(master, tmp_path, log)

    control.pause_queue("default")
    wait_until(lambda: target.refresh() or target.status == TaskResultStatus.READY, timeout=2)
    assert (target.attempts, target.started_at) == (0, None)
    gate.touch()
    assert finished(blocker).status == SUCCESSFUL
    time.sleep(1.5)  # the child is free, the queue paused: the task stays READY and unrun
    target.refresh()
    assert target.status == TaskResultStatus.READY and not log.exists()

    control.resume_queue("default")
    target = finished(target)
    assert (target.status, target.attempts) == (SUCCESSFUL, 1)
    assert log.read_text() == "target\n"


def test_a_graceful_stop_gives_back_a_task_claimed_ahead_with_no_attempt(master, tmp_path):
    log = tmp_path / "target.log"
    gate, blocker, target = held_ahead(master, tmp_path, log)

    threading.Timer(1.0, gate.touch).start()
    master.stop()

    blocker = finished(blocker)  # in the child that ran it, which outlived its master (RELIEVE_FAILSAFE)
    target.refresh()
    assert (blocker.status, blocker.attempts) == (SUCCESSFUL, 1)
    assert target.status == TaskResultStatus.READY
    assert (target.attempts, target.started_at, target.errors) == (0, None, [])
    assert not log.exists()


def test_relieveschedule_lists_entries_with_their_last_run(masters, tmp_path, settings, capsys):
    schedule = {"tick": {"task": "tests.tasks_fixtures.basic.noop", "every": 1}}
    settings.RELIEVE_SCHEDULE = schedule
    masters[0].env["RELIEVE_SCHEDULE"] = json.dumps(schedule)
    masters[0].start(workers=1)
    wait_until(
        lambda: TaskRecord.objects.filter(schedule="tick", status=SUCCESSFUL).exists(), message="one run"
    )
    call_command("relieveschedule", "--json")
    [row] = json.loads(capsys.readouterr().out)
    assert (row["name"], row["rule"], row["enabled"]) == ("tick", "every 1s", True)
    assert row["last_result"] is not None and row["next_run"]
