"""CallableTask.call and .get: results, remote errors, a dying child, timeouts and work in flight."""

import asyncio
import signal
import time

import pytest

from relieve_app.pool import CallDropped, NotRunning, RelieveError, RemoteError, TaskExited
from relieve_app.pool.framing import FrameError


def test_get_returns_values_attributes_and_awaited_coroutine_results(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        assert await pool.wait(task.get("add", 1, 2)) == 3
        assert await pool.wait(task.get("add", [1], [2])) == [1, 2]
        assert await pool.wait(task.get("add", "a", "b")) == "ab"
        assert await pool.wait(task.get("value")) == 42
        assert await pool.wait(task.get("aslow", 0.01)) == 0.01
        assert await pool.wait(task.get("say", "nothing back")) is None

    run(scenario())


def test_call_resolves_at_once_and_the_child_runs_it_off_its_loop(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        assert await pool.wait(task.call("slow", 2)) is task
        assert task.in_flight == 1
        # the slow call holds the lane thread; the loop still answers attributes and coroutines
        assert await pool.wait(task.get("value")) == 42
        assert await pool.wait(task.get("aslow", 0.01)) == 0.01
        assert task.in_flight == 1  # so both came back before the slow call finished

    run(scenario())


def test_a_blocked_get_does_not_hold_up_attribute_and_coroutine_gets(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        blocked = asyncio.ensure_future(task.get("block"))  # returns once the child gets "release"
        await asyncio.sleep(0)  # the blocking get is written first
        assert task.in_flight == 1
        assert await pool.wait(task.get("value")) == 42
        assert await pool.wait(task.get("aslow", 0.01)) == 0.01
        assert not blocked.done()
        await task.send("release")
        assert await pool.wait(blocked) is True
        assert task.in_flight == 0

    run(scenario())


def test_a_raise_in_the_child_is_a_remote_error_with_its_traceback(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        with pytest.raises(RemoteError) as caught:
            await pool.wait(task.get("boom", "bad input"))
        error = caught.value
        assert isinstance(error, RelieveError)
        assert error.type == "ValueError"
        assert error.message == "bad input"
        assert error.traceback.startswith("Traceback (most recent call last):")
        assert "calc.py" in error.traceback and "in boom" in error.traceback
        assert error.traceback.rstrip().endswith("ValueError: bad input")
        assert "Remote traceback:" in str(error) and "in boom" in str(error)
        assert RemoteError.from_dict(error.to_dict()).to_dict() == error.to_dict()
        assert await pool.wait(task.get("add", 1, 1)) == 2  # the child goes on

    run(scenario())


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("boom", ["from a plain method"], "ValueError: from a plain method"),
        ("aslow", ["not a number"], "TypeError: "),
        ("no_such_method", [], "AttributeError: "),
    ],
)
def test_a_call_that_fails_is_an_error_event(pool, run, method, args, message):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        error = pool.next_event(task, "error")
        await task.call(method, *args)
        text, stack = await pool.wait(error)
        assert text.startswith(message)
        assert stack.startswith("Traceback (most recent call last):")
        assert await pool.wait(task.get("add", 1, 1)) == 2
        assert task.in_flight == 0

    run(scenario())


def test_large_arguments_and_results_cross_whole(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        result = await pool.wait(task.get("add", "a" * 300_000, "b" * 300_000))
        assert result == "a" * 300_000 + "b" * 300_000

    run(scenario())


def test_concurrent_gets_each_get_their_own_answer(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        gets = [task.get("add", i, 1000) for i in range(40)]
        gets += [task.get("aslow", i / 1000) for i in range(40)]
        results = await pool.wait(asyncio.gather(*gets))
        assert results == [i + 1000 for i in range(40)] + [i / 1000 for i in range(40)]
        assert task.in_flight == 0

    run(scenario())


def test_a_coroutine_that_raises_is_a_remote_error(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        with pytest.raises(RemoteError) as caught:
            await pool.wait(task.get("aslow", "not a number"))
        assert caught.value.type == "TypeError"

    run(scenario())


@pytest.mark.parametrize("name", ["_private", "__class__", "no_such_member", ""])
def test_a_private_or_unknown_name_is_a_remote_error(pool, run, name):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        with pytest.raises(RemoteError) as caught:
            await pool.wait(task.get(name))
        assert caught.value.type == "AttributeError"
        assert repr(name) in caught.value.message
        assert task.in_flight == 0

    run(scenario())


def test_a_result_json_cannot_carry_is_a_remote_error(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        with pytest.raises(RemoteError) as caught:
            await pool.wait(task.get("not_json"))
        assert caught.value.type == "TypeError"
        assert "cannot cross the channel" in caught.value.message
        assert await pool.wait(task.get("add", 1, 1)) == 2

    run(scenario())


def test_arguments_json_cannot_carry_are_refused_and_not_counted(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        with pytest.raises(FrameError):
            await task.get("add", object(), 1)
        with pytest.raises(FrameError):
            await task.call("add", object(), 1)
        assert task.in_flight == 0
        assert await pool.wait(task.get("add", 1, 1)) == 2

    run(scenario())


def test_sigkill_fails_every_pending_get_at_once(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        pending = [asyncio.ensure_future(task.get("slow", 30)) for _ in range(3)]
        pending.append(asyncio.ensure_future(task.get("aslow", 30)))
        await asyncio.sleep(0)
        assert task.in_flight == 4
        assert await pool.wait(task.kill(signal.SIGKILL)) == -signal.SIGKILL
        done, _ = await asyncio.wait(pending, timeout=5)  # failed by the exit, not after the 30 s
        assert len(done) == 4
        for future in pending:
            error = future.exception()
            assert isinstance(error, TaskExited)
            assert error.code == -signal.SIGKILL and error.name == task.name
        assert task.in_flight == 0
        with pytest.raises(NotRunning):
            await task.get("value")

    run(scenario())


def test_a_get_waiting_when_the_child_exits_by_itself_raises_task_exited(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        waiting = asyncio.ensure_future(task.get("aslow", 30))
        await asyncio.sleep(0)
        await task.send("explode")  # an uncaught error: the child exits 1
        with pytest.raises(TaskExited) as caught:
            await pool.wait(waiting)
        assert caught.value.code == 1

    run(scenario())


def test_timeout_raises_timeout_error_and_the_child_goes_on(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        with pytest.raises(TimeoutError):
            await task.get("slow", 1, timeout=0.1)
        assert task.in_flight == 1  # the child still runs it
        # the lane runs plain methods in order: this answer comes after the slow one is done
        assert await pool.wait(task.get("add", 1, 2)) == 3
        assert task.in_flight == 0
        assert task.running

    run(scenario())


def test_an_answer_already_received_wins_over_the_timeout(pool, run):
    """A frozen loop wakes with the timer due and the answer waiting: the answer counts."""

    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        assert await pool.wait(task.get("add", 0, 0)) == 0  # the lane is warm
        answer = asyncio.ensure_future(task.get("slow", 0.05, timeout=0.5))
        await asyncio.sleep(0)  # the request is written
        time.sleep(2.0)  # the loop is frozen well past the timeout; the child answers meanwhile
        assert await pool.wait(answer) == 0.05
        assert task.in_flight == 0

    run(scenario())


def test_in_flight_counts_up_and_back_to_zero(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        assert task.in_flight == 0
        await task.call("slow", 0.3)
        await task.call("slow", 0.3)
        assert task.in_flight == 2
        last = asyncio.ensure_future(task.get("add", 1, 2))
        await asyncio.sleep(0)
        assert task.in_flight == 3
        assert await pool.wait(last) == 3
        assert task.in_flight == 0
        error = pool.next_event(task, "error")
        await task.call("boom")
        assert task.in_flight == 1
        await pool.wait(error)
        # the lane sends the failed call's done before it runs this add, so before this answer
        assert await pool.wait(task.get("add", 1, 1)) == 2
        assert task.in_flight == 0

    run(scenario())


def test_call_and_get_need_a_running_child(pool, run):
    async def scenario():
        task = pool.callable()
        with pytest.raises(NotRunning):
            await task.call("add", 1, 2)
        with pytest.raises(NotRunning):
            await task.get("add", 1, 2)
        await pool.wait(task.start())
        await pool.wait(task.stop())
        with pytest.raises(NotRunning):
            await task.get("value")
        assert task.in_flight == 0

    run(scenario())


def test_calls_reported_from_the_lane_and_from_threads_reach_the_parent(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        reports = pool.collect(task, "report")
        await pool.wait(task.get("report", "x"))  # sends from the lane thread and a thread of its own
        await pool.eventually(lambda: len(reports) == 2)
        assert sorted(args for _, args in reports) == [("lane", "x"), ("thread", "x")]

    run(scenario())


def test_calls_submitted_ahead_run_in_order_without_waiting_for_the_parent(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        first = await task.submit("block")  # returns once the child gets "release"
        second = await task.submit("add", 1, 2)
        await task.send("release")
        assert await pool.wait(task.answer(first)) is True
        assert await pool.wait(task.answer(second)) == 3
        assert task.in_flight == 0

    run(scenario())


def test_a_call_dropped_before_it_started_never_runs_and_the_next_one_does(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        running = await task.submit("block")
        dropped = await task.submit("add", 1, 2)
        after = await task.submit("add", 2, 3)
        assert await pool.wait(task.drop(dropped)) is True
        with pytest.raises(CallDropped):  # answered at once, while the call before it still runs
            await pool.wait(task.answer(dropped))
        await task.send("release")
        assert await pool.wait(task.answer(running)) is True
        assert await pool.wait(task.answer(after)) == 5
        assert task.in_flight == 0

    run(scenario())


def test_a_drop_that_comes_after_the_start_changes_nothing(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        started = await task.submit("block")
        await asyncio.sleep(0.2)  # the lane has taken it
        assert await pool.wait(task.drop(started)) is False
        await task.send("release")
        assert await pool.wait(task.answer(started)) is True
        assert await pool.wait(task.get("add", 1, 1)) == 2

    run(scenario())


def test_a_call_submitted_to_a_child_that_dies_first_raises_task_exited(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        running = await task.submit("block")
        waiting = await task.submit("add", 1, 2)
        await task.kill(signal.SIGKILL)
        for call in (running, waiting):
            with pytest.raises(TaskExited):
                await pool.wait(task.answer(call))

    run(scenario())


def test_dropping_a_call_to_a_child_that_died_raises_task_exited(pool, run):
    async def scenario():
        task = pool.callable()
        await pool.wait(task.start())
        await task.submit("block")
        waiting = await task.submit("add", 1, 2)
        await task.kill(signal.SIGKILL)
        with pytest.raises(TaskExited):
            await pool.wait(task.drop(waiting))

    run(scenario())
