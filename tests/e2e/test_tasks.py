"""Django tasks run by a real runrelieve in real children: modules outside relieve_app, priority,
run_after across a restart, async and context, a child killed mid-task, a hung task, an import
that fails, and RetryLater."""

import os
import re
import signal
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

from relieve_app.models import TaskEvent, TaskRecord
from relieve_app.monitor import status, status_text
from relieve_app.tasks import backend, client
from tests.e2e.conftest import wait_until
from tests.tasks_fixtures import basic, contextual, hooked, signalled

pytestmark = pytest.mark.e2e

SUCCESSFUL, FAILED, READY = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED, TaskResultStatus.READY


def finished(result, timeout=60):
    """Wait for the result to finish, and return it refreshed."""

    def done():
        result.refresh()
        return result.is_finished

    wait_until(done, timeout=timeout, message=f"task {result.id} ({result.task.name}) to finish")
    return result


def running(result, timeout=60):
    def now_running():
        result.refresh()
        return result.status == TaskResultStatus.RUNNING

    wait_until(now_running, timeout=timeout, message=f"task {result.id} to run")
    return result


def child_pid(master, name):
    return next(c["pid"] for c in master.status()["children"] if c["name"] == name)


def test_tasks_of_several_modules_run_in_the_children_and_signal(master, tmp_path):
    master.start(workers=1)
    notes = tmp_path / "signals.txt"
    results = [
        basic.add.enqueue(2, 3),
        contextual.count_outcomes.enqueue("nothing with this subject"),
        signalled.mark.enqueue(str(notes)),
    ]
    added, counted, marked = (finished(result) for result in results)

    assert [r.status for r in (added, counted, marked)] == [SUCCESSFUL] * 3
    assert (added.return_value, counted.return_value, marked.return_value) == (5, 0, str(notes))
    assert added.worker_ids == ["default0"] and added.attempts == 1
    assert added.enqueued_at <= added.started_at <= added.finished_at
    # The master sent both signals once the state they announce was committed.
    lines = wait_until(lambda: len(notes.read_text().splitlines()) == 2 and notes.read_text().splitlines())
    assert lines == [f"started {marked.id} RUNNING", f"finished {marked.id} SUCCESSFUL"]


def test_higher_priority_runs_first_while_every_child_is_busy(master, tmp_path):
    master.start(workers=1, queues=["default=1"])
    gate, order = tmp_path / "gate", tmp_path / "order.txt"
    blocker = running(basic.wait_for_file.enqueue(str(gate)))
    waiting = [
        basic.log_line.using(priority=priority).enqueue(str(order), name)
        for name, priority in [("low", -5), ("first3", 3), ("top", 10), ("zero", 0), ("second3", 3)]
    ]
    assert all(TaskRecord.objects.get(pk=r.id).status == READY for r in waiting)
    # enqueue() does not wait for the master: the order is among the tasks it has heard of when the
    # child is free, so the child is freed once the master holds all five.
    wait_until(lambda: queued(master, "default") == 5, message="the master to hold the five tasks")
    gate.touch()

    assert finished(blocker).status == SUCCESSFUL
    assert [finished(r).status for r in waiting] == [SUCCESSFUL] * 5
    assert order.read_text().split() == ["top", "first3", "second3", "zero", "low"]


def queued(master, queue):
    return next(q["queued"] for q in master.status()["queues"] if q["name"] == queue)


def heard(master, result):
    """Make sure the master has handled the arrival of ``result``: its answer to a submit comes
    after it did (``enqueue()``'s own note to it is not answered)."""
    row = TaskRecord.objects.get(pk=result.id)
    client.request(
        "submit", socket_path=master.socket_path, id=row.pk, queue=row.queue_name, priority=row.priority
    )


def behind_one_child(master, tmp_path, count, **env):
    """A master holding at most 4 ids, its one child busy until ``gate`` exists, and ``count`` tasks
    heard of behind it, each writing its name to ``order`` as it runs."""
    master.env.update(RELIEVE_MAX_HELD="4", **env)
    master.start(workers=1, queues=["default=1"])
    gate, order = tmp_path / "gate", tmp_path / "order.txt"
    blocker = running(basic.wait_for_file.enqueue(str(gate)))
    with transaction.atomic():
        backlog = [basic.log_line.enqueue(str(order), f"low{n}") for n in range(count)]
    for result in backlog:
        heard(master, result)
    return gate, order, blocker, backlog


def test_a_backlog_past_max_held_waits_in_the_table_and_runs_most_urgent_first(master, tmp_path, capsys):
    """RELIEVE_MAX_HELD=4: of 20 tasks the master holds 4, the rest wait in the table; two urgent
    ones heard of last take the place of the least urgent. Once the child is free, what waits in
    the table is read as the lane empties, long before the next sweep (60 s)."""
    gate, order, blocker, backlog = behind_one_child(master, tmp_path, 20, RELIEVE_SWEEP_INTERVAL="60")
    assert queued(master, "default") == 4
    urgent = [basic.log_line.using(priority=5).enqueue(str(order), f"urgent{n}") for n in range(2)]
    for result in urgent:
        heard(master, result)
    assert queued(master, "default") == 4
    assert TaskRecord.objects.filter(status=READY).count() == 22
    call_command("relievestatus", "--socket", str(master.socket_path))
    assert "4 queued here and more in the database (RELIEVE_MAX_HELD)" in capsys.readouterr().out
    gate.touch()

    assert finished(blocker).status == SUCCESSFUL
    assert [finished(r, timeout=30).status for r in urgent + backlog] == [SUCCESSFUL] * 22
    assert order.read_text().split() == ["urgent0", "urgent1", *(f"low{n}" for n in range(20))]


def test_a_master_started_on_a_backlog_past_max_held_reads_it_as_it_goes(master, tmp_path):
    """Enqueued with no master up: the start-up sweep takes 4 of 30, and the rest are read as the
    lane empties, long before the next sweep (60 s), the most urgent first."""
    order = tmp_path / "order.txt"
    backlog = [basic.log_line.enqueue(str(order), f"low{n}") for n in range(28)]
    urgent = [basic.log_line.using(priority=3).enqueue(str(order), f"urgent{n}") for n in range(2)]
    master.env.update(RELIEVE_MAX_HELD="4", RELIEVE_SWEEP_INTERVAL="60")
    master.start(workers=1, queues=["default=1"])

    assert [finished(r, timeout=30).status for r in urgent + backlog] == [SUCCESSFUL] * 30
    assert order.read_text().split() == ["urgent0", "urgent1", *(f"low{n}" for n in range(28))]


def test_rows_due_later_do_not_call_for_a_sweep_at_each_task(master):
    """Rows due within two sweeps are read and held on timers, as many as RELIEVE_MAX_HELD (4), the
    rest left in the table; they fill no lane, so tasks run meanwhile must not make the master read
    the table again and again (the next sweep in 60 s)."""
    soon = basic.noop.using(run_after=timezone.now() + timedelta(seconds=100))
    deferred = [soon.enqueue() for _ in range(40)]
    master.env.update(RELIEVE_MAX_HELD="4", RELIEVE_SWEEP_INTERVAL="60")
    master.start(workers=1, queues=["default=1"])
    wait_until(lambda: "sweep: 4 waiting tasks picked up" in master.output(), message="the start-up sweep")
    assert finished(basic.noop.enqueue()).status == SUCCESSFUL
    time.sleep(0.5)  # on PostgreSQL, the sweep of LISTEN's first connection too
    sweeps = master.output().count("waiting tasks picked up")

    assert [finished(basic.noop.enqueue()).status for _ in range(10)] == [SUCCESSFUL] * 10
    assert master.output().count("waiting tasks picked up") == sweeps
    assert master.status()["retrying"] == 4
    assert TaskRecord.objects.filter(pk__in=[r.id for r in deferred], status=READY).count() == 40
    shown = status_text.render(status.collect(socket_path=master.socket_path), master.socket_path)
    assert "4 waiting for their time (a retry's delay, run_after or a rate limit)" in "\n".join(shown)


def test_tasks_due_beyond_two_sweeps_wait_in_the_table_and_still_start_on_time(master):
    """A master holds on timers only what is due within two sweeps (5 s at least): rows due in an
    hour, read at start-up or heard of over the socket, cost it nothing, and one due in 12 s is read
    by a sweep in time to start when due, not a sweep later."""
    an_hour = basic.noop.using(run_after=timezone.now() + timedelta(hours=1))
    early = [an_hour.enqueue() for _ in range(20)]
    master.start(workers=1, queues=["default=1"])  # the sweep every second: 5 s ahead
    late = [an_hour.enqueue() for _ in range(20)]
    due_at = timezone.now() + timedelta(seconds=12)
    soon = basic.add.using(run_after=due_at).enqueue(2, 3)
    assert finished(basic.noop.enqueue()).status == SUCCESSFUL  # heard of after the deferred ones
    assert master.status()["retrying"] == 0

    wait_until(lambda: master.status()["retrying"] == 1, timeout=15, message="the row due soon held")
    assert finished(soon).status == SUCCESSFUL and soon.return_value == 5
    assert due_at <= soon.started_at <= due_at + timedelta(seconds=3)
    assert master.status()["retrying"] == 0
    waiting = TaskRecord.objects.filter(pk__in=[r.id for r in early + late], status=READY)
    assert waiting.count() == 40


def test_an_urgent_task_due_later_is_read_before_it_is_due_though_its_lane_is_full(master, tmp_path):
    """RELIEVE_MAX_HELD=4 and a sweep every second (5 s ahead): a task due in 8 s is too far ahead
    to be held when heard of; a sweep reads it onto a timer before it is due, though the lane is
    full of a backlog, and once due it takes the place of the least urgent held there."""
    gate, order, blocker, backlog = behind_one_child(master, tmp_path, 10)
    due_at = timezone.now() + timedelta(seconds=8)
    urgent = basic.log_line.using(priority=5, run_after=due_at).enqueue(str(order), "urgent")
    client.request("ping", socket_path=master.socket_path)
    assert queued(master, "default") == 4 and master.status()["retrying"] == 0

    wait_until(lambda: master.status()["retrying"] == 1, timeout=10, message="the urgent task on a timer")
    wait_until(lambda: timezone.now() > due_at + timedelta(seconds=0.5), message="the urgent task due")
    gate.touch()
    assert finished(blocker).status == SUCCESSFUL
    assert [finished(r, timeout=30).status for r in [urgent, *backlog]] == [SUCCESSFUL] * 11
    assert order.read_text().split() == ["urgent", *(f"low{n}" for n in range(10))]


def test_a_task_held_behind_one_that_turns_out_long_runs_in_the_next_free_child(master, tmp_path):
    master.start(workers=1, queues=["default=2"])
    warm = [basic.add.enqueue(n, n) for n in range(20)]
    assert [finished(r).status for r in warm] == [SUCCESSFUL] * 20  # short on average: claims go ahead
    long_gate, medium_gate = tmp_path / "long", tmp_path / "medium"
    with transaction.atomic():  # heard of together, in priority order: the long one takes default0,
        # the medium one default1, and the quick one is claimed ahead behind the long one
        long = basic.wait_for_file.using(priority=2).enqueue(str(long_gate))
        medium = basic.wait_for_file.using(priority=1).enqueue(str(medium_gate))
        quick = basic.add.enqueue(1, 2)
    running(long)
    running(medium)
    medium_gate.touch()

    assert finished(quick, timeout=15).status == SUCCESSFUL  # while the long one still runs
    medium.refresh()
    assert quick.worker_ids == medium.worker_ids  # given back by default0, and its claim undone there
    assert TaskRecord.objects.get(pk=long.id).status == TaskResultStatus.RUNNING
    long_gate.touch()
    assert finished(long).status == SUCCESSFUL


def test_run_after_is_never_early_and_survives_a_master_restart(master):
    master.start(workers=1)
    soon = basic.add.using(run_after=timezone.now() + timedelta(seconds=2)).enqueue(1, 1)
    later_at = timezone.now() + timedelta(seconds=6)
    later = basic.add.using(run_after=later_at).enqueue(2, 2)

    assert finished(soon).status == SUCCESSFUL
    assert soon.started_at >= soon.task.run_after
    assert master.stop() == 0
    assert TaskRecord.objects.get(pk=later.id).status == READY  # the stopped master never ran it

    master.start(workers=1)
    assert finished(later).status == SUCCESSFUL and later.return_value == 4
    assert later.started_at >= later_at


def test_async_task_is_awaited_and_its_context_counts_attempts(master):
    master.start(workers=1)
    result = finished(contextual.async_attempt.enqueue(0.05))
    assert result.status == SUCCESSFUL
    assert result.return_value == {"attempt": 1, "id": result.id}


def test_a_child_killed_mid_task_runs_it_again(master, tmp_path):
    master.start(workers=1, queues=["default=1"])
    result = running(contextual.held_attempt.enqueue(str(tmp_path / "never")))
    killed = child_pid(master, result.worker_ids[-1])
    os.kill(killed, signal.SIGKILL)

    result = finished(result)
    assert result.status == SUCCESSFUL
    assert result.attempts == 2 and result.return_value["attempt"] == 2
    assert result.return_value["pid"] != killed
    assert result.errors[0].exception_class_path == "relieve_app.pool.errors.TaskExited"


def test_a_hung_task_is_killed_at_its_timeout_until_its_attempts_are_spent(master):
    master.start(workers=1, queues=["default=1"])
    result = finished(contextual.hang.enqueue(), timeout=90)  # timeout=1.0, max_attempts=2

    assert result.status == FAILED and result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == ["builtins.TimeoutError"] * 2
    row = TaskRecord.objects.get(pk=result.id)
    assert "within 1s; killed it" in row.errors[0]["message"]
    assert "gave up after 2 attempts" in row.errors[-1]["message"]
    # The reason reaches the Python API as well as the admin and the log.
    assert result.errors[0].traceback == f"TimeoutError: {row.errors[0]['message']}\n"
    assert "no answer from default0 within 1s; killed it" in result.errors[0].traceback
    assert "gave up after 2 attempts" in result.errors[-1].traceback
    assert TaskEvent.objects.filter(task_result=row, event="timeout").count() == 2
    # The child that hung was replaced, and the queue goes on.
    assert finished(basic.add.enqueue(1, 2)).return_value == 3


def test_a_task_that_cannot_import_fails_alone_and_the_pool_goes_on(master):
    master.start(workers=1, queues=["default=1"])
    # Rows whose code is gone or broken on the master's side, as after a bad deploy.
    broken = [
        TaskRecord.objects.create(task_path=path, queue_name="default", backend="default")
        for path in ["tests.tasks_fixtures.broken.job", "tests.tasks_fixtures.removed_module.job"]
    ]
    assert client.submit_many([(row.pk, backend.hints(row)) for row in broken]) == len(broken)
    before = basic.pid.enqueue()
    pids = {finished(before).return_value}

    for row in broken:
        result = finished(backend.RelieveBackend("default", {}).get_result(row.pk))
        assert result.status == FAILED and result.attempts == 1  # an import is not retried
        error = result.errors[0]
        assert error.exception_class_path == "relieve_app.tasks.runner.TaskNotFound"
        assert f"the task {row.task_path} cannot be imported" in error.traceback
    assert "a_module_that_does_not_exist" in result_errors(broken[0])
    pids.add(finished(basic.pid.enqueue()).return_value)
    assert len(pids) == 1  # the same child served them all


def test_a_task_raising_retry_later_runs_again_until_it_succeeds(master):
    master.start(workers=1)
    result = finished(contextual.flaky.enqueue(3))
    assert result.status == SUCCESSFUL and result.return_value == 3 and result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["relieve_app.retry.RetryLater"] * 2


def test_a_retry_due_beyond_two_sweeps_is_let_go_to_the_table_and_read_back_in_time(master):
    master.start(workers=1)  # the sweep every second: 5 s ahead
    result = contextual.retry_once_after.enqueue(10)

    def first_attempt_recorded():
        row = TaskRecord.objects.get(pk=result.id)
        return row.status == READY and len(row.errors) == 1 and row

    row = wait_until(first_attempt_recorded, message="the first attempt's RetryLater recorded")
    time.sleep(0.3)  # the outcome's commit seen by the master too
    assert master.status()["retrying"] == 0  # not held on a timer for 10 s
    result = finished(result)
    assert result.status == SUCCESSFUL and result.attempts == 2
    assert row.run_after <= result.last_attempted_at <= row.run_after + timedelta(seconds=3)


def test_a_raising_task_fails_at_once_with_its_traceback(master):
    master.start(workers=1)
    result = finished(basic.fail.enqueue("no good"))
    assert result.status == FAILED and result.attempts == 1
    assert result.errors[0].exception_class_path == "builtins.ValueError"
    assert result.errors[0].exception_class is ValueError
    assert "raise ValueError(message)" in result.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018 - the property raises


def result_errors(row):
    row.refresh_from_db()
    return "".join(error["traceback"] for error in row.errors)


def test_a_projects_hook_writes_its_row_with_each_change_of_its_task(master):
    """Any app's task, not only the contact mail: its rows follow the task's state in one transaction."""
    master.env["DJANGO_SETTINGS_MODULE"] = "tests.tasks_fixtures.hooked_settings"
    master.start(workers=1)
    done, failed = finished(hooked.double.enqueue(4)), finished(hooked.double.enqueue(-1))

    assert (done.status, done.return_value, failed.status) == (SUCCESSFUL, 8, FAILED)

    def rows(result):
        events = TaskEvent.objects.filter(task_result_id=int(result.id)).order_by("id")
        return [(event.task_name, event.event, event.payload.get("hooked")) for event in events]

    wait_until(lambda: len(rows(failed)) == 4, message="the hook's row after the commit")
    assert rows(done) == [
        ("hooked", "running", None),
        ("hooked", "succeeded", None),
        ("default0", "info", True),
        ("hooked", "committed succeeded", None),
    ]
    assert rows(failed) == [
        ("hooked", "running", None),
        ("hooked", "failed", None),
        ("default0", "error", True),
        ("hooked", "committed failed", None),
    ]


def test_a_hook_that_always_raises_fails_its_task_alone_and_the_others_go_through(master):
    """A hook that refuses one outcome on every try: that task ends FAILED with the hook's error,
    written without the hook; the outcomes written beside it and every later task are not held up."""
    master.env["DJANGO_SETTINGS_MODULE"] = "tests.tasks_fixtures.hooked_settings"
    master.start(workers=2)
    values = ["first", "unfileable", "second", "third"]
    results = [finished(result) for result in [hooked.keep.enqueue(value) for value in values]]
    later = finished(hooked.keep.enqueue("later"))

    kept, refused = [results[0], *results[2:], later], results[1]
    assert [r.status for r in kept] == [SUCCESSFUL] * 4
    assert [r.return_value for r in kept] == ["first", "second", "third", "later"]
    assert refused.status == FAILED and refused.attempts == 1
    [error] = refused.errors
    assert error.exception_class is ValueError
    assert (
        "a hook of tests.tasks_fixtures.hooked.keep failed"
        in TaskRecord.objects.get(pk=refused.id).errors[0]["message"]
    )
    assert "cannot file 'unfileable'" in error.traceback and "file_away" in error.traceback

    def filed(result):
        events = TaskEvent.objects.filter(task_result_id=int(result.id), task_name="filed")
        return sorted(events.values_list("event", flat=True))

    wait_until(lambda: all(len(filed(r)) == 3 for r in kept), message="the hook's rows after the commits")
    assert all(filed(r) == ["committed succeeded", "running", "succeeded"] for r in kept)
    # Neither part of the failing hook ran on the failure it caused; its claim was filed before.
    assert filed(refused) == ["running"]
    failure = TaskEvent.objects.get(task_result_id=int(refused.id), event="error")
    assert "cannot file 'unfileable'" in failure.payload["message"]


def test_the_masters_log_lines_all_carry_a_time_django_tasks_ones_too(master):
    """Django logs each task's start and end (``Task id=… state=…``); they read like the master's own."""
    master.start(workers=1, queues=["default=1"])
    result = finished(basic.add.enqueue(2, 3))
    wait_until(lambda: f"Task id={result.id} path=" in master.output(), message="django.tasks' lines")
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")
    lines = [line for line in master.output().splitlines() if f"Task id={result.id}" in line]
    assert lines and all(stamped.match(line) for line in lines), lines
    assert all(" django.tasks: " in line for line in lines)


def test_verbosity_0_leaves_a_busy_masters_log_to_warnings_and_errors(master):
    """No line a task (as db_worker's -v 0 and Celery's WARNING level), but a task that fails is said."""
    master.start(workers=1, queues=["default=1"], options=["--verbosity", "0"])
    done = finished(basic.add.enqueue(2, 3))
    failed = finished(basic.fail.enqueue("no good"))
    assert done.status == SUCCESSFUL and failed.status == FAILED
    wait_until(lambda: f"Task id={failed.id} path=" in master.output(), message="the failure's line")
    output = master.output()
    assert f"Task id={done.id} " not in output
    assert next(line for line in output.splitlines() if f"Task id={failed.id} " in line).split()[2] == "ERROR"
    assert " INFO " not in output and " DEBUG " not in output, output


def test_verbosity_2_adds_the_masters_debug_lines(master):
    master.start(workers=1, queues=["default=1"], options=["-v", "2"])
    done = finished(basic.add.enqueue(2, 3))
    wait_until(lambda: f"task {done.id} done by " in master.output(), message="the master's debug line")
    assert " DEBUG relieve_app." in master.output()
