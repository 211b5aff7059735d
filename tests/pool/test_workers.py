"""Worker, QueueWorker and CloudWorker over real children."""

import asyncio
import signal

import pytest

from relieve_app.pool import CloudWorker, NoTaskAvailable, QueueWorker, RoundRobinStrategy, Worker


async def echo_from(pool, task, value):
    answered = pool.next_event(task, "echo")
    await task.send("echo", value)
    return await pool.wait(answered)


# Worker ---------------------------------------------------------------------------


def test_add_task_tasks_and_duplicate_names(pool):
    worker = Worker()
    first, second = pool.script(name="first"), pool.script(name="second")
    assert worker.add(first).add(second) is worker
    assert worker.task("first") is first
    assert worker.tasks == {"first": first, "second": second}
    worker.tasks.clear()  # a copy: the worker's own table is untouched
    assert list(worker.tasks) == ["first", "second"]
    with pytest.raises(ValueError, match="already has a task named 'first'"):
        worker.add(pool.script(name="first"))
    with pytest.raises(KeyError, match="no task named 'third'"):
        worker.task("third")
    with pytest.raises(TypeError):
        worker.add("not a task")


def test_start_send_and_kill_every_task(pool, run):
    async def scenario():
        worker = Worker().add(pool.script(name="a")).add(pool.script(name="b"))
        echoes = []
        worker.on("echo", echoes.append)
        assert await pool.wait(worker.start()) is worker
        assert all(task.running for task in worker.tasks.values())
        both = [pool.next_event(task, "echo") for task in worker.tasks.values()]
        sent_to = await pool.wait(worker.send("echo", "to all"))
        assert sorted(task.name for task in sent_to) == ["a", "b"]
        await pool.wait(asyncio.gather(*both))
        assert echoes == ["to all", "to all"]
        assert await pool.wait(worker.kill(signal.SIGKILL)) == {"a": -signal.SIGKILL, "b": -signal.SIGKILL}
        assert not any(task.running for task in worker.tasks.values())

    run(scenario())


def test_start_leaves_running_tasks_alone(pool, run):
    async def scenario():
        running, idle = pool.script(name="running"), pool.script(name="idle")
        await pool.wait(running.start())
        pid = running.pid
        await pool.wait(Worker().add(running).add(idle).start())
        assert running.pid == pid and idle.running

    run(scenario())


def test_listeners_reach_tasks_added_later_and_off_removes_them(pool, run):
    async def scenario():
        worker = Worker()
        early = pool.script(name="early")
        worker.add(early)
        echoes, firsts = [], []

        def on_echo(value):
            echoes.append(value)

        worker.on("echo", on_echo)
        worker.once("echo", firsts.append)
        late = pool.script(name="late")
        worker.add(late)
        await pool.wait(worker.start())
        await echo_from(pool, early, "early 1")
        await echo_from(pool, late, "late 1")
        await echo_from(pool, late, "late 2")
        assert echoes == ["early 1", "late 1", "late 2"]
        assert firsts == ["early 1", "late 1"]  # once per task
        worker.off("echo", on_echo)
        worker.add(pool.script(name="after off"))
        await echo_from(pool, early, "early 2")
        assert echoes == ["early 1", "late 1", "late 2"]
        assert worker.task("after off").listeners("echo") == [firsts.append]

    run(scenario())


def test_remove_stops_the_task_and_takes_the_workers_listeners_back(pool, run):
    async def scenario():
        worker = Worker()
        seen = []
        worker.on("echo", seen.append)
        task = pool.script(name="leaving")
        worker.add(task).add(pool.script(name="staying"))
        await pool.wait(worker.start())
        assert await pool.wait(worker.remove("leaving")) is task
        assert not task.running
        assert list(worker.tasks) == ["staying"]
        assert task.listeners("echo") == []
        with pytest.raises(KeyError):
            await worker.remove("leaving")

    run(scenario())


def test_a_plain_worker_takes_a_fork_task(pool, run):
    async def scenario():
        child = await pool.fork(name="forked")
        await pool.wait(pool.next_event(child, "ready"))
        worker = Worker().add(child)
        await pool.wait(worker.start())  # already running: nothing to do
        echo = pool.next_event(child, "echo")
        await pool.wait(worker.send("echo", "to the fork"))
        assert await pool.wait(echo) == ("to the fork",)
        assert await pool.wait(worker.kill()) == {"forked": -signal.SIGTERM}

    run(scenario())


# QueueWorker ---------------------------------------------------------------------


def test_queue_worker_keeps_at_most_concurrency_children_alive(pool, run):
    async def scenario():
        worker = QueueWorker(concurrency=2)
        for code in range(5):
            worker.add(pool.script("job.py:Job", name=f"job{code}", arguments=[0.6, code]))
        alive, most = set(), [0]

        def started(task):
            alive.add(task.name)
            most[0] = max(most[0], len(alive))

        for task in worker.tasks.values():
            task.on("start", lambda _at, task=task: started(task))
            task.on("exit", lambda _code, task=task: alive.discard(task.name))
        codes = await pool.wait(worker.run(), timeout=30)
        assert codes == [0, 1, 2, 3, 4]
        assert most[0] == 2
        assert alive == set()

    run(scenario())


def test_queue_worker_runs_the_named_tasks_in_that_order(pool, run):
    async def scenario():
        worker = QueueWorker()
        for code in (3, 4, 5):
            worker.add(pool.script("job.py:Job", name=f"job{code}", arguments=[0.05, code]))
        assert await pool.wait(worker.run("job5", "job3")) == [5, 3]
        assert not worker.task("job4").running and worker.task("job4").pid is None

    run(scenario())


def test_queue_worker_reports_a_task_that_cannot_boot(pool, run):
    async def scenario():
        worker = QueueWorker()
        worker.add(pool.script("broken_import.py", name="broken"))
        worker.add(pool.script("job.py:Job", name="fine", arguments=[0.05, 0]))
        assert await pool.wait(worker.run()) == [3, 0]

    run(scenario())


def test_queue_worker_needs_a_concurrency_of_one_or_more():
    with pytest.raises(ValueError):
        QueueWorker(concurrency=0)


@pytest.mark.parametrize("worker_class", [QueueWorker, CloudWorker])
def test_queue_and_cloud_workers_refuse_a_fork_task(pool, run, worker_class):
    async def scenario():
        child = await pool.fork()
        with pytest.raises(TypeError):
            worker_class().add(child)

    run(scenario())


# CloudWorker ---------------------------------------------------------------------


def test_cloud_worker_call_get_and_send_reach_its_tasks(pool, run):
    async def scenario():
        worker, tasks = await pool.cloud("t0", "t1")
        pids = {await pool.wait(worker.get("pid")) for _ in range(4)}
        assert pids == {task.pid for task in tasks}
        assert await pool.wait(worker.get("add", 2, 3)) == 5
        reports = []
        worker.on("report", lambda *args: reports.append(args))
        chosen = await pool.wait(worker.call("report", "called"))
        assert chosen in tasks
        await pool.eventually(lambda: len(reports) == 2)
        echoes = []
        worker.on("echo", lambda value: echoes.append(value))
        sent_to = await pool.wait(worker.send("echo", "sent"))
        assert sent_to in tasks
        await pool.eventually(lambda: echoes == ["sent"])

    run(scenario())


def test_a_task_stopped_for_good_leaves_the_strategy(pool, run):
    async def scenario():
        worker = CloudWorker()
        staying, leaving = pool.callable(name="staying"), pool.callable(name="leaving")
        worker.add(staying).add(leaving)
        await pool.wait(worker.run())
        assert set(worker.strategy.tasks) == {staying, leaving}
        await pool.wait(leaving.stop())
        assert worker.strategy.tasks == [staying]
        assert {await pool.wait(worker.get("pid")) for _ in range(3)} == {staying.pid}

    run(scenario())


def test_a_restarted_task_comes_back_to_the_strategy(pool, run):
    async def scenario():
        worker = CloudWorker()
        task = pool.callable(restart=True)
        worker.add(task)
        await pool.wait(worker.run())
        back = pool.next_event(task, "start")
        await pool.wait(task.kill(signal.SIGKILL))
        assert task not in worker.strategy.tasks
        with pytest.raises(NoTaskAvailable):
            await worker.get("pid")
        await pool.wait(back)
        assert worker.strategy.tasks == [task]
        assert await pool.wait(worker.get("pid")) == task.pid
        await pool.wait(task.restart())
        assert worker.strategy.tasks == [task]

    run(scenario())


def test_a_task_running_before_it_is_added_is_dispatched_to(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        worker = CloudWorker(strategy=RoundRobinStrategy()).add(task)
        assert worker.strategy.tasks == [task]
        assert await pool.wait(worker.get("pid")) == task.pid

    run(scenario())


def test_no_task_available_when_none_runs(pool, run):
    async def scenario():
        worker = CloudWorker()
        with pytest.raises(NoTaskAvailable):
            await worker.call("add", 1, 2)
        worker.add(pool.callable())
        with pytest.raises(NoTaskAvailable):
            await worker.get("add", 1, 2)
        await pool.wait(worker.run())
        assert await pool.wait(worker.get("add", 1, 2)) == 3
        await pool.wait(worker.kill())
        with pytest.raises(NoTaskAvailable):
            await worker.send("echo", 1)

    run(scenario())


def test_a_removed_task_leaves_the_strategy_for_good(pool, run):
    async def scenario():
        worker = CloudWorker()
        removed, kept = pool.callable(name="removed"), pool.callable(name="kept")
        worker.add(removed).add(kept)
        await pool.wait(worker.run())
        await pool.wait(worker.remove("removed"))
        assert worker.strategy.tasks == [kept]
        await pool.wait(removed.start())  # started again on its own: no longer the worker's
        assert worker.strategy.tasks == [kept]

    run(scenario())


def test_drain_waits_for_the_calls_the_children_hold(pool, run):
    async def scenario():
        worker = CloudWorker()
        task = pool.callable(name="busy")
        worker.add(task)
        await pool.wait(worker.run())
        await worker.call("block")  # resolved: the child has it, and holds it
        assert await worker.drain(timeout=0.2) is False
        await task.send("release")
        assert await pool.wait(worker.drain(timeout=10)) is True
        assert task.in_flight == 0

    run(scenario())
