"""ScriptTask, CallableTask and ForkTask: lifecycle, options and events, against real children."""

import asyncio
import logging
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest

from relieve_app.pool import BootError, CallableTask, NotRunning, RelieveError, ScriptTask, TaskExited
from relieve_app.pool.container import EXIT_BOOT

MONITOR = "relieve_app.pool.containers.monitor"


# construction -------------------------------------------------------------------


def test_building_a_task_starts_nothing(pool):
    task = pool.callable(arguments=[1])
    assert task.pid is None
    assert task.process is None
    assert not task.running
    assert task.started_at is None
    assert task.restarts == 0
    assert task.in_flight == 0
    assert task.arguments == [1]


def test_a_task_script_must_be_a_non_empty_string():
    with pytest.raises(TypeError):
        ScriptTask("")
    with pytest.raises(TypeError):
        ScriptTask(None)


def test_the_default_name_is_a_stable_uuid4(pool):
    task = pool.script()
    assert uuid.UUID(task.name).version == 4
    assert task.name == task.name
    assert pool.script().name != task.name


def test_a_name_can_be_set_once(pool):
    named = pool.script(name="mailer")
    assert named.name == "mailer"
    with pytest.raises(TypeError):
        named.name = "other"
    later = pool.script()
    later.name = "set later"
    assert later.name == "set later"
    with pytest.raises(TypeError):
        later.name = "again"
    assert later.name == "set later"


# start, stop, kill, restart --------------------------------------------------------


def test_start_resolves_once_the_child_runs_and_emits_start(pool, run):
    async def scenario():
        task = pool.callable()
        started = pool.next_event(task, "start")
        before = time.time()
        assert await pool.wait(task.start()) is task
        (started_at,) = await pool.wait(started)
        assert before <= started_at <= time.time()
        assert task.started_at == started_at
        assert task.running
        assert task.pid == await task.get("pid")
        assert task.pid != os.getpid()

    run(scenario())


def test_starting_a_running_task_raises(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        pid = task.pid
        with pytest.raises(RelieveError, match="already running"):
            await task.start()
        assert task.pid == pid and task.running

    run(scenario())


def test_stop_resolves_at_exit_with_the_signal_as_a_negative_code(pool, run):
    async def scenario():
        task = pool.callable(restart=True)
        exits = pool.collect(task, "exit")
        restarts = pool.collect(task, "restart")
        await pool.wait(task.start())
        assert await pool.wait(task.stop()) == -signal.SIGTERM
        assert [args for _, args in exits] == [(-signal.SIGTERM,)]
        assert not task.running
        assert task.process.returncode == -signal.SIGTERM
        await asyncio.sleep(0.3)  # restart=True, delay 0: a restart would have begun by now
        assert restarts == [] and task.restarts == 0 and not task.running
        assert await task.stop() == -signal.SIGTERM  # stopping a stopped task is harmless

    run(scenario())


def test_kill_resolves_at_exit_with_the_negative_signal(pool, run):
    async def scenario():
        task = pool.callable()
        exited = pool.next_event(task, "exit")
        await pool.wait(task.start())
        assert await pool.wait(task.kill(signal.SIGKILL)) == -signal.SIGKILL
        assert await pool.wait(exited) == (-signal.SIGKILL,)
        assert not task.running
        with pytest.raises(NotRunning):
            await task.kill()

    run(scenario())


def running(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.mark.parametrize("own_session", [False, True], ids=["same-session", "own-session"])
@pytest.mark.parametrize("how", ["kill", "stop", "restart"])
def test_what_a_child_started_goes_with_it(pool, run, how, own_session):
    async def scenario():
        task = pool.callable("functions.py")
        await pool.wait(task.start())
        grandchild = await pool.wait(task.get("grandchild", own_session))
        assert running(grandchild)
        await pool.wait(getattr(task, how)())
        deadline = time.monotonic() + 5
        while running(grandchild) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not running(grandchild)
        if task.running:
            await pool.wait(task.stop())

    run(scenario())


def test_a_child_dead_but_still_draining_can_be_stopped_and_killed(pool, run):
    """Between the child's exit and the end of its channel, signalling it must not raise."""

    async def scenario():
        task = pool.script("lingering.py")
        await pool.wait(task.start())
        os.kill(task.pid, signal.SIGKILL)
        while task.process.returncode is None:
            await asyncio.sleep(0.005)
        assert await pool.wait(task.stop()) == -signal.SIGKILL

    run(scenario())


def test_kill_defaults_to_sigterm(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        assert await pool.wait(task.kill()) == -signal.SIGTERM

    run(scenario())


def test_a_stopped_task_can_be_started_again(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        first = task.pid
        await pool.wait(task.stop())
        await pool.wait(task.start())
        assert task.running and task.pid != first
        assert await task.get("add", 1, 1) == 2

    run(scenario())


def test_restart_resolves_when_the_new_child_runs(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        first = task.pid
        events = []
        task.on("exit", lambda code: events.append(("exit", code)))
        task.on("restart", lambda: events.append(("restart",)))
        task.on("start", lambda at: events.append(("start",)))
        assert await pool.wait(task.restart()) is task
        assert task.running
        assert task.pid != first
        assert task.restarts == 1
        assert events == [("exit", -signal.SIGTERM), ("restart",), ("start",)]
        assert await task.get("pid") == task.pid

    run(scenario())


def test_restart_option_brings_a_killed_child_back(pool, run):
    async def scenario():
        task = pool.callable(restart=True)
        await pool.wait(task.start())
        first = task.pid
        restarted = pool.next_event(task, "restart")
        started = pool.next_event(task, "start")
        assert await pool.wait(task.kill(signal.SIGKILL)) == -signal.SIGKILL
        await pool.wait(restarted)
        await pool.wait(started)
        assert task.running
        assert task.pid != first
        assert task.restarts == 1
        assert await task.get("pid") == task.pid

    run(scenario())


def test_restart_delay_is_waited_before_the_child_comes_back(pool, run):
    delay = 0.6

    async def scenario():
        task = pool.callable(restart=True, restart_delay=delay)
        await pool.wait(task.start())
        exits = pool.collect(task, "exit")
        restarts = pool.collect(task, "restart")
        started = pool.next_event(task, "start")
        await pool.wait(task.kill(signal.SIGKILL))
        await pool.wait(started)
        waited = restarts[0][0] - exits[0][0]
        assert delay - 0.01 <= waited < delay + 5
        assert task.restarts == 1

    run(scenario())


def test_start_while_a_restart_is_pending_takes_over(pool, run):
    async def scenario():
        task = pool.callable(restart=True, restart_delay=0.5)
        await pool.wait(task.start())
        restarts = pool.collect(task, "restart")
        await pool.wait(task.kill(signal.SIGKILL))
        await pool.wait(task.start())  # before the pending restart fires
        pid = task.pid
        await asyncio.sleep(1.0)  # past the restart delay
        assert restarts == [] and task.restarts == 0
        assert task.pid == pid and task.running
        assert await task.get("pid") == pid

    run(scenario())


def test_wait_returns_the_exit_code(pool, run):
    async def scenario():
        task = pool.callable()
        with pytest.raises(NotRunning):
            await task.wait()
        await pool.wait(task.start())
        waiting = asyncio.ensure_future(task.wait())
        await asyncio.sleep(0)
        assert not waiting.done()
        await task.send("explode")
        assert await pool.wait(waiting) == 1

    run(scenario())


# options -----------------------------------------------------------------------


def test_arguments_reach_start_and_start_args_override_them(pool, run):
    async def scenario():
        task = pool.callable(arguments=[1, "two"])
        await pool.wait(task.start())
        assert await task.get("args") == [1, "two"]
        await pool.wait(task.stop())
        await pool.wait(task.start(3, {"four": 4}))
        assert await task.get("args") == [3, {"four": 4}]
        assert task.arguments == [1, "two"]
        await pool.wait(task.restart())
        assert await task.get("args") == [3, {"four": 4}]  # a restart keeps what start() was given
        await pool.wait(task.stop())
        task.arguments = ["changed"]
        await pool.wait(task.start())
        assert await task.get("args") == ["changed"]

    run(scenario())


def test_module_level_functions_serve_as_the_script(pool, run):
    async def scenario():
        task = pool.callable("functions.py", arguments=["a", 2])
        await pool.wait(task.start())
        assert await task.get("multiply", 6, 7) == 42
        assert await task.get("arguments") == ["a", 2]
        assert await task.get("pid") == task.pid

    run(scenario())


def test_env_is_added_to_the_parents_environment(pool, run):
    async def scenario():
        task = pool.callable(env={"RELIEVE_TEST_VALUE": "from the task"})
        await pool.wait(task.start())
        assert await task.get("env", "RELIEVE_TEST_VALUE") == "from the task"
        assert await task.get("env", "PATH") == os.environ["PATH"]

    run(scenario())


def test_cwd_is_the_childs_working_directory(pool, run, tmp_path):
    async def scenario():
        task = pool.callable(cwd=tmp_path)
        await pool.wait(task.start())
        assert await task.get("cwd") == str(tmp_path)

    run(scenario())


def test_monitor_container_answers_usage(pool, run):
    async def scenario():
        task = pool.callable(containers=[MONITOR])
        await pool.wait(task.start())
        await pool.wait(task.get("spin", 0.05))
        usage = pool.next_event(task, "usage")
        await task.send("usage")
        (sample,) = await pool.wait(usage)
        assert set(sample) == {"cpu", "cpu_percent", "memory", "pid", "uptime"}
        assert sample["pid"] == task.pid
        assert sample["memory"] > 1_000_000  # a Python process holds megabytes
        assert sample["cpu"] > 0
        assert sample["cpu_percent"] >= 0
        assert sample["uptime"] >= 0
        again = pool.next_event(task, "usage")
        await task.send("usage")
        (second,) = await pool.wait(again)
        assert second["uptime"] >= sample["uptime"]

    run(scenario())


def test_monitor_cpu_percent_is_measured_between_two_questions():
    from relieve_app.pool.containers.monitor import Usage

    now = [100.0]
    usage = Usage(clock=lambda: now[0])
    now[0] = 102.0
    first = usage.sample()
    assert first["uptime"] == 2.0
    assert first["pid"] == os.getpid()
    assert first["cpu_percent"] >= 0
    second = usage.sample()  # no time passed: no division by zero
    assert second["cpu_percent"] == 0.0


# events -------------------------------------------------------------------------


def test_send_and_events_from_the_child(pool, run):
    async def scenario():
        task = pool.script()
        with pytest.raises(NotRunning):
            await task.send("echo", 1)
        await pool.wait(task.start())
        echo = pool.next_event(task, "echo")
        assert await pool.wait(task.send("echo", "hi", [1, 2])) is task
        assert await pool.wait(echo) == ("hi", [1, 2])
        await pool.wait(task.stop())
        with pytest.raises(NotRunning):
            await task.send("echo", 1)

    run(scenario())


def test_listeners_added_before_start_hold_across_restarts(pool, run):
    async def scenario():
        task = pool.callable(restart=True)
        echoes, firsts = [], []
        task.on("echo", echoes.append)
        task.once("echo", firsts.append)
        await pool.wait(task.start())

        async def echo(value):
            answered = pool.next_event(task, "echo")
            await task.send("echo", value)
            await pool.wait(answered)

        await echo("first child")
        await pool.wait(task.restart())
        await echo("second child")
        started = pool.next_event(task, "start")
        await pool.wait(task.kill(signal.SIGKILL))
        await pool.wait(started)
        await echo("third child")
        assert echoes == ["first child", "second child", "third child"]
        assert firsts == ["first child"]

    run(scenario())


@pytest.mark.parametrize(("event", "text"), [("explode", "listener"), ("aexplode", "async listener")])
def test_an_uncaught_error_in_a_child_listener_is_an_error_event_and_exit_1(pool, run, event, text):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        error = pool.next_event(task, "error")
        exited = pool.next_event(task, "exit")
        await task.send(event)
        message, stack = await pool.wait(error)
        assert message == f"RuntimeError: {text} blew up"
        assert "Traceback" in stack and f"in {event}" in stack and f"{text} blew up" in stack
        assert await pool.wait(exited) == (1,)
        assert not task.running

    run(scenario())


def test_exit_carries_the_childs_own_exit_code(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        exited = pool.next_event(task, "exit")
        await task.call("die", 5)
        assert await pool.wait(exited) == (5,)
        assert await task.wait() == 5

    run(scenario())


def test_stop_kills_a_child_that_ignores_the_signal_after_the_grace(pool, run, caplog):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        await pool.wait(task.get("ignore_sigterm"))
        assert await pool.wait(task.stop(grace=0.3)) == -signal.SIGKILL

    run(scenario())
    assert "ignored signal" in caplog.text


def test_a_raise_inside_call_is_an_error_event_and_the_child_goes_on(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        pid = task.pid
        exits = pool.collect(task, "exit")
        error = pool.next_event(task, "error")
        assert await task.call("boom", "bad input") is task
        message, stack = await pool.wait(error)
        assert message == "ValueError: bad input"
        assert "in boom" in stack
        assert await task.get("add", 2, 3) == 5
        assert task.running and task.pid == pid and exits == []

    run(scenario())


# boot failures ------------------------------------------------------------------


def test_a_script_failing_at_import_makes_start_raise_boot_error(pool, run):
    async def scenario():
        task = pool.script("broken_import.py")
        errors = pool.collect(task, "error")
        exited = pool.next_event(task, "exit")
        with pytest.raises(BootError) as caught:
            await pool.wait(task.start())
        assert caught.value.code == EXIT_BOOT
        assert caught.value.name == task.name
        assert caught.value.reason == "ImportError: broken_import needs a module that is missing"
        assert "ImportError: broken_import needs a module that is missing" in str(caught.value)
        assert await pool.wait(exited) == (EXIT_BOOT,)
        assert not task.running
        assert len(errors) == 1 and "broken_import.py" in errors[0][1][1]

    run(scenario())


def test_a_start_that_raises_is_a_boot_error(pool, run):
    async def scenario():
        task = pool.script("bad_start.py:BadStart")
        with pytest.raises(BootError, match="RuntimeError: start refused"):
            await pool.wait(task.start())

    run(scenario())


def test_a_missing_attribute_is_a_boot_error(pool, run):
    async def scenario():
        task = pool.script("calc.py:NoSuchClass")
        with pytest.raises(BootError, match="AttributeError"):
            await pool.wait(task.start())

    run(scenario())


def test_a_script_failing_at_import_is_retried_with_growing_delays(pool, run, caplog):
    caplog.set_level(logging.WARNING, logger="relieve_app.pool.tasks")

    async def scenario():
        task = pool.script("broken_import.py", restart=True)
        with pytest.raises(BootError):
            await pool.wait(task.start())
        await asyncio.sleep(2.0)
        count = task.restarts
        await pool.eventually(lambda: task.restarts >= 2)  # only waits on a very slow machine
        await pool.wait(task.stop())
        return count

    restarts = run(scenario())
    assert restarts <= 6  # a tight loop would make dozens in 2 s
    warnings = [r.getMessage() for r in caplog.records if r.name == "relieve_app.pool.tasks"]
    assert warnings and all("could not boot: ImportError: broken_import needs" in w for w in warnings)
    delays = [float(re.search(r"next try in ([0-9.]+)s", w).group(1)) for w in warnings]
    assert delays == sorted(delays) and delays[-1] > delays[0]


# ForkTask -----------------------------------------------------------------------


def test_fork_task_spawn_events_both_ways_pid_and_kill(pool, run):
    async def scenario():
        child = await pool.fork(name="forked")
        assert child.name == "forked"
        (pid,) = await pool.wait(pool.next_event(child, "ready"))
        assert pid == child.pid and child.running
        echo = pool.next_event(child, "echo")
        await child.send("echo", {"both": "ways"})
        assert await pool.wait(echo) == ({"both": "ways"},)
        exited = pool.next_event(child, "exit")
        assert await pool.wait(child.kill(signal.SIGKILL)) == -signal.SIGKILL
        assert await pool.wait(exited) == (-signal.SIGKILL,)
        assert not child.running and child.closed

    run(scenario())


def test_fork_task_reports_the_childs_own_exit_code(pool, run):
    async def scenario():
        child = await pool.fork()
        await pool.wait(pool.next_event(child, "ready"))
        await child.send("quit", 7)
        assert await pool.wait(child.wait()) == 7
        assert await child.kill() == 7  # already gone: kill only reports

    run(scenario())


def test_fork_task_kill_defaults_to_sigterm(pool, run):
    async def scenario():
        child = await pool.fork()
        await pool.wait(pool.next_event(child, "ready"))
        assert await pool.wait(child.kill()) == -signal.SIGTERM

    run(scenario())


def test_callable_task_is_a_script_task():
    assert issubclass(CallableTask, ScriptTask)


def test_restarts_counts_the_restart_being_announced(pool, run):
    """A listener of "restart" reads ``restarts`` already counting it, whether asked for or after a crash."""

    async def scenario():
        task = pool.callable(restart=True)
        seen = []
        task.on("restart", lambda: seen.append(task.restarts))
        await pool.wait(task.start())
        await pool.wait(task.restart())
        started = pool.next_event(task, "start")
        await pool.wait(task.kill(signal.SIGKILL))
        await pool.wait(started)
        assert seen == [1, 2]
        assert task.restarts == 2

    run(scenario())


# let go: a child left to finish its call ------------------------------------------


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_child_let_go_in_a_call_its_script_keeps_finishes_it_then_exits(pool, run, tmp_path):
    async def main():
        task = pool.callable("orphanable.py:Orphanable", arguments=[True])
        await pool.wait(task.start())
        pid = task.pid
        answer = asyncio.ensure_future(task.get("work", str(tmp_path)))
        await pool.eventually((tmp_path / "started").exists)

        assert task.let_go()
        with pytest.raises(TaskExited):
            await pool.wait(answer)
        assert not task.running and await pool.wait(task.stop()) is None  # never signalled
        await asyncio.sleep(0.3)
        assert _alive(pid) and not (tmp_path / "done").exists()
        (tmp_path / "gate").touch()
        await pool.eventually((tmp_path / "done").exists)
        await pool.eventually(lambda: not _alive(pid))

    run(main())


def test_a_child_let_go_whose_script_does_not_keep_the_call_or_that_is_idle_exits_at_once(
    pool, run, tmp_path
):
    async def main():
        busy = pool.callable("orphanable.py:Orphanable", arguments=[False])
        idle = pool.callable("orphanable.py:Orphanable", arguments=[True])
        await pool.wait(asyncio.gather(busy.start(), idle.start()))
        answer = asyncio.ensure_future(busy.get("work", str(tmp_path)))
        await pool.eventually((tmp_path / "started").exists)

        pids = [busy.pid, idle.pid]
        assert busy.let_go() and idle.let_go()
        with pytest.raises(TaskExited):
            await pool.wait(answer)
        await pool.eventually(lambda: not any(_alive(pid) for pid in pids))
        assert not (tmp_path / "done").exists()  # the call was cut short

    run(main())


def test_a_child_let_go_starts_none_of_the_calls_waiting_on_its_lane(pool, run, tmp_path):
    async def main():
        task = pool.callable("orphanable.py:Orphanable", arguments=[True, 0.5])
        await pool.wait(task.start())
        pid = task.pid
        first, second = tmp_path / "first", tmp_path / "second"
        first.mkdir()
        second.mkdir()
        (second / "gate").touch()
        answers = [asyncio.ensure_future(task.get("work", str(folder))) for folder in (first, second)]
        await pool.eventually((first / "started").exists)
        await asyncio.sleep(0.2)  # the second call waits on the child's lane

        assert task.let_go()
        (first / "gate").touch()  # the first call ends while its script decides to keep it
        for answer in answers:
            with pytest.raises(TaskExited):
                await pool.wait(answer)
        await pool.eventually(lambda: not _alive(pid))
        assert (first / "done").exists()
        assert not (second / "started").exists()  # nobody would hear its answer: never started
        assert (first / "parent-gone").read_text() == "first"  # told once the kept call ended

    run(main())
