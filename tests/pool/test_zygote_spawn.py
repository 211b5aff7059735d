"""Helpers a zygote forks warm at its children's request (zygote.py's "spawn", zygote_spawn.py)."""

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from relieve_app.pool import CallableTask, Zygote, zygote_spawn
from relieve_app.pool.family import members_of
from relieve_app.pool.zygote_handle import Generation, ZygoteChild
from tests.pool.conftest import script_path
from tests.pool.scripts.helpers import ECHO, MODULE, PREPARE
from tests.pool.test_zygote import forked_by, parent_of

pytestmark = pytest.mark.parametrize("pool", ["cold"], indirect=True)  # each test makes its own zygote


def asking(pool, zygote, **options):
    return pool.track(CallableTask(script_path("helpers.py:Helpers"), zygote=zygote, **options))


def sockets_of(pid):
    return sum(os.readlink(fd).startswith("socket:") for fd in Path(f"/proc/{pid}/fd").iterdir())


def kinds_of_fds(pid):
    """How many sockets and pipes ``pid`` holds, past its standard output and error."""
    kinds = {"socket": 0, "pipe": 0}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        kind = os.readlink(fd).partition(":")[0]
        if kind in kinds and fd.name not in ("1", "2"):
            kinds[kind] += 1
    return kinds


async def ended(pid, pool):
    """Waits, by a pidfd of its own, until ``pid`` (not this process's child) has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        readable = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(pidfd, lambda: readable.done() or readable.set_result(True))
        await pool.wait(readable)
    finally:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)


async def stop_all(zygote, *tasks):
    """Stop the tasks, kill what the zygote still has forked (helpers), then stop it."""
    await asyncio.gather(*(task.stop() for task in tasks))
    if zygote.pid is not None:
        for pid in forked_by(zygote.pid):
            os.kill(pid, signal.SIGKILL)
    await zygote.stop()


@contextlib.asynccontextmanager
async def asked(pool):
    """A zygote, and a child of it started to ask for helpers; all of them stopped at the end."""
    zygote = Zygote()
    task = asking(pool, zygote)
    try:
        await pool.wait(task.start())
        yield zygote, task
    finally:
        await stop_all(zygote, task)


def test_a_forked_child_gets_a_helper_forked_warm_by_its_zygote(pool, run):
    async def scenario():
        async with asked(pool) as (zygote, task):
            assert isinstance(task.process, ZygoteChild)
            assert await task.get("available")
            first = await task.get("spawn")
            answer = await task.get("ask", first, "hello")
            assert answer["line"] == "hello" and answer["pid"] == first
            assert answer["ppid"] == zygote.pid  # the zygote's child, not the asker's
            assert answer["sid"] == first  # in a session of its own
            assert answer["prepared"] == [zygote.pid]  # prepared in the zygote, before the fork
            assert first not in members_of(task.pid)  # nor in the asker's family

            second = await task.get("spawn")
            assert second != first
            assert (await task.get("ask", second, "again"))["prepared"] == [zygote.pid]  # prepared once
            assert (await task.get("ask", first, "still"))["line"] == "still"

    run(scenario())


def test_a_helper_is_killed_through_its_process_and_its_exit_is_no_childs_exit(pool, run, monkeypatch):
    heard = []
    on_message = Generation._on_message
    monkeypatch.setattr(
        Generation, "_on_message", lambda self, message: (heard.append(message), on_message(self, message))
    )

    async def scenario():
        async with asked(pool) as (_zygote, task):
            exits = pool.collect(task, "exit")
            helper = await task.get("spawn")
            assert await task.get("poll", helper) == [None, False]
            assert await task.get("kill", helper) == -signal.SIGKILL  # the zygote told its asker
            assert await task.get("poll", helper) == [-signal.SIGKILL, True]
            assert await task.get("pid") == task.pid  # the child lives on
            assert not exits
            assert not [message for message in heard if message.get("pid") == helper]

    run(scenario())


def test_a_helper_whose_stdin_closes_exits_with_its_own_code(pool, run):
    async def scenario():
        async with asked(pool) as (_zygote, task):
            assert await task.get("close", await task.get("spawn")) == 0
            assert await task.get("close", await task.get("spawn", f"{MODULE}:fail", None)) == 7

    run(scenario())


def test_a_child_that_dies_leaves_its_helper_to_exit_on_end_of_file(pool, run):
    async def scenario():
        async with asked(pool) as (zygote, task):
            helper = await task.get("spawn")
            await task.get("ask", helper, "up")
            assert parent_of(helper) == zygote.pid
            sockets = sockets_of(zygote.pid)
            exited = pool.next_event(task, "exit")
            os.kill(task.pid, signal.SIGKILL)
            await pool.wait(exited)
            await ended(helper, pool)  # nobody killed it: its stdin's last writer went
            # The zygote closed its end of the dead child's spawn socket.
            await pool.eventually(lambda: sockets_of(zygote.pid) == sockets - 1)

    run(scenario())


def test_a_bad_target_or_a_failing_prepare_gives_none_and_the_zygote_serves_on(pool, run):
    async def scenario():
        async with asked(pool) as (zygote, task):
            assert await task.get("spawn", "no_such_module:serve", None) is None
            assert await task.get("spawn", f"{MODULE}:nothing_here", None) is None
            assert await task.get("spawn", f"{MODULE}:MODULE", None) is None  # not callable
            for _ in range(2):  # refused each time, from the one failure it remembers
                assert await task.get("spawn", ECHO, f"{MODULE}:failing_prepare") is None
            assert forked_by(zygote.pid) == {task.pid}
            helper = await task.get("spawn", ECHO, PREPARE)
            assert (await task.get("ask", helper, "fine"))["line"] == "fine"

    run(scenario())


def test_no_helper_without_a_zygote(pool, run):
    """The test process, and a child started cold, were forked by no zygote: the caller falls back."""
    assert not zygote_spawn.available()
    assert zygote_spawn.spawn(ECHO) is None

    async def scenario():
        cold = pool.track(CallableTask(script_path("helpers.py:Helpers")))
        await pool.wait(cold.start())
        assert not await cold.get("available")
        assert await cold.get("spawn") is None
        await cold.stop()

    run(scenario())


def test_a_zygote_gone_gives_none_at_once(pool, run):
    async def scenario():
        async with asked(pool) as (zygote, task):
            helper = await task.get("spawn")
            os.kill(zygote.pid, signal.SIGKILL)
            await pool.eventually(lambda: zygote.pid is None)
            assert await task.get("spawn") is None
            assert not await task.get("available")
            assert (await task.get("ask", helper, "orphan"))["line"] == "orphan"  # a helper outlives it
            assert await task.get("kill", helper) is None  # killed; no zygote left to report its code

    run(scenario())


def test_a_spawn_answered_too_late_gives_none_and_its_helper_goes(pool, run):
    async def scenario():
        async with asked(pool) as (zygote, task):
            await task.get("close", await task.get("spawn"))  # the target's imports are done
            os.kill(zygote.pid, signal.SIGSTOP)
            try:
                assert await task.get("spawn", ECHO, PREPARE, 0.5) is None
            finally:
                os.kill(zygote.pid, signal.SIGCONT)
            assert await task.get("spawn") is None  # a zygote that answered late is let be a while
            # The helper it forked late has nobody at the other end of its pipes: it leaves.
            await pool.eventually(lambda: forked_by(zygote.pid) == {task.pid})

    run(scenario())


@contextlib.asynccontextmanager
async def sharing(pool):
    """A zygote, and two children of it handed its one shared echo helper: (zygote, first, second, pid)."""
    async with asked(pool) as (zygote, first):
        second = asking(pool, zygote)
        await pool.wait(second.start())
        try:
            shared = await first.get("spawn_shared")
            assert await second.get("spawn_shared") == shared  # one process for both
            yield zygote, first, second, shared
        finally:
            await second.stop()


def test_askers_of_a_shared_helper_share_one_process_and_each_hears_of_its_end(pool, run):
    async def scenario():
        async with sharing(pool) as (zygote, first, second, shared):
            assert parent_of(shared) == zygote.pid
            # Its socket to the zygote, and two pipes for each asker: nothing else of the zygote's.
            assert kinds_of_fds(shared) == {"socket": 1, "pipe": 4}
            assert await first.get("ask_frame", shared, {"n": 1}) == {"echo": {"n": 1}, "pid": shared}
            assert await second.get("ask_frame", shared, {"n": 2}) == {"echo": {"n": 2}, "pid": shared}

            await first.get("release", shared)  # one asker lets go: the other is served on
            assert (await second.get("ask_frame", shared, {"n": 3}))["echo"] == {"n": 3}
            assert await first.get("spawn_shared") == shared  # and the same one is handed over again

            assert await second.get("kill", shared) == -signal.SIGKILL  # ended for both askers
            assert await first.get("wait", shared) == -signal.SIGKILL  # each told of its end
            following = await first.get("spawn_shared")
            assert following != shared
            assert (await first.get("ask_frame", following, {"n": 4}))["pid"] == following

            await first.get("release", following)  # its last asker let go: it ends on its own
            await ended(following, pool)
            assert forked_by(zygote.pid) == {first.pid, second.pid}

    run(scenario())


def test_a_shared_helper_outlives_an_asker_that_dies(pool, run):
    async def scenario():
        async with sharing(pool) as (_zygote, first, second, shared):
            exited = pool.next_event(first, "exit")
            os.kill(first.pid, signal.SIGKILL)
            await pool.wait(exited)
            assert (await second.get("ask_frame", shared, {"n": 1}))["echo"] == {"n": 1}
            os.kill(second.pid, signal.SIGKILL)  # its last asker dies: it reads end-of-file and ends
            await ended(shared, pool)

    run(scenario())
