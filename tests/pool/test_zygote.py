"""The zygote: children forked warm, watched by pidfd, restarted whatever happened to the zygote."""

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from relieve_app.pool import CallableTask, Zygote, zygote_handle
from relieve_app.pool.shared_image import IMMORTAL
from relieve_app.pool.zygote_handle import ZygoteChild
from tests.pool.conftest import IMMORTAL_HERE, script_path

pytestmark = pytest.mark.parametrize("pool", ["cold"], indirect=True)  # each test makes its own zygote


def parent_of(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1])


def session_of(pid):
    return os.getsid(pid)


def warm(pool, zygote, **options):
    return pool.track(CallableTask(script_path("calc.py:Calc"), zygote=zygote, **options))


def test_a_child_is_forked_by_the_zygote_in_a_session_of_its_own(pool, run):
    async def scenario():
        zygote = Zygote(["xml.dom.minidom"])
        task = warm(pool, zygote)
        try:
            await pool.wait(task.start())
            assert isinstance(task.process, ZygoteChild)
            assert parent_of(task.pid) == zygote.pid
            assert session_of(task.pid) == task.pid
            assert await task.get("pid") == task.pid
            assert await task.get("loaded", "xml.dom.minidom")  # preloaded, not imported by the child
            assert await pool.wait(task.stop()) == -signal.SIGTERM
        finally:
            await zygote.stop()

    run(scenario())


def test_a_started_zygote_runs_the_warm_ups_its_preloads_registered_once_before_it_forks(pool, run):
    async def scenario():
        zygote = Zygote(["tests.pool.scripts.warming"])
        first, second = warm(pool, zygote), warm(pool, zygote)
        try:
            await pool.wait(first.start())
            await pool.wait(second.start())
            for task in (first, second):
                assert await task.get("attribute", "tests.pool.scripts.warming", "warmed") == [zygote.pid]
        finally:
            await zygote.stop()

    run(scenario())


@pytest.mark.parametrize("immortal", [True, False])
def test_what_a_started_zygote_preloaded_is_immortal_in_its_children_unless_asked_not(pool, run, immortal):
    async def scenario():
        zygote = Zygote(["xml.dom.minidom"], immortal=immortal)
        task = warm(pool, zygote)
        try:
            await pool.wait(task.start())
            count = await task.get("count_of", "xml.dom.minidom", "parseString")
            assert (count == IMMORTAL) is (immortal and IMMORTAL_HERE)
        finally:
            await task.stop()
            await zygote.stop()

    run(scenario())


def test_a_killed_child_comes_back_forked_again(pool, run):
    async def scenario():
        zygote = Zygote()
        task = warm(pool, zygote, restart=True)
        try:
            await pool.wait(task.start())
            first = task.pid
            codes = pool.collect(task, "exit")
            started = pool.next_event(task, "start")
            os.kill(first, signal.SIGKILL)
            await pool.wait(started)
            assert [args for _at, args in codes] == [(-signal.SIGKILL,)]
            assert task.pid != first and parent_of(task.pid) == zygote.pid
            assert zygote.starts == 1
        finally:
            await task.stop()
            await zygote.stop()

    run(scenario())


def test_children_still_restart_after_the_zygote_was_killed(pool, run, caplog):
    async def scenario():
        zygote = Zygote()
        task = warm(pool, zygote, restart=True)
        try:
            await pool.wait(task.start())
            first_zygote, first = zygote.pid, task.pid
            os.kill(first_zygote, signal.SIGKILL)
            await pool.eventually(lambda: zygote.pid is None)
            assert await task.get("add", 2, 3) == 5  # the child outlives its zygote
            codes = pool.collect(task, "exit")
            started = pool.next_event(task, "start")
            os.kill(first, signal.SIGKILL)
            await pool.wait(started)
            assert [args for _at, args in codes] == [(None,)]  # no zygote was left to report the code
            assert zygote.starts == 2 and zygote.pid not in (None, first_zygote)
            assert parent_of(task.pid) == zygote.pid
            assert await task.get("add", 1, 1) == 2
        finally:
            await task.stop()
            await zygote.stop()

    with caplog.at_level(logging.WARNING, "relieve_app.pool.zygote_handle"):
        run(scenario())
    assert "died" in caplog.text and "starting a new one" in caplog.text


def test_a_zygote_that_cannot_start_leaves_children_to_start_cold(pool, run, tmp_path, caplog):
    broken = tmp_path / "relieve_app" / "pool"
    broken.mkdir(parents=True)
    for folder in (broken.parent, broken):
        (folder / "__init__.py").write_text("")
    (broken / "zygote.py").write_text("raise SystemExit(9)\n")

    async def scenario():
        zygote = Zygote(python_path=[str(tmp_path)])  # finds the broken engine first
        task = warm(pool, zygote, restart=True)
        try:
            await pool.wait(task.start())
            assert not isinstance(task.process, ZygoteChild)
            assert await task.get("add", 1, 2) == 3
        finally:
            await task.stop()
            await zygote.stop()

    with caplog.at_level(logging.WARNING, "relieve_app.pool.tasks"):
        run(scenario())
    assert "starts cold: the zygote did not start" in caplog.text


def test_stopping_the_zygote_leaves_its_children_running(pool, run):
    async def scenario():
        zygote = Zygote()
        task = warm(pool, zygote)
        await pool.wait(task.start())
        zygote_process = zygote.current.process
        await pool.wait(zygote.stop())
        assert zygote_process.returncode == 0
        assert await task.get("add", 4, 4) == 8
        assert parent_of(task.pid) != zygote_process.pid
        await pool.wait(task.stop())  # seen by its pidfd; its code went with the zygote
        assert not task.running

    run(scenario())


def test_a_restarted_zygote_gives_new_children_the_new_code(pool, run, tmp_path):
    module = tmp_path / "zygote_version.py"
    module.write_text("VERSION = 1\n")

    async def scenario():
        zygote = Zygote(["zygote_version"], env={"PYTHONPATH": str(tmp_path)})
        task = warm(pool, zygote)
        try:
            await pool.wait(task.start())
            assert await task.get("attribute", "zygote_version", "VERSION") == 1
            module.write_text("VERSION = 2\n")
            await pool.wait(task.restart())  # forked from the same zygote: what it imported stays
            assert await task.get("attribute", "zygote_version", "VERSION") == 1
            old = zygote.pid
            await pool.wait(zygote.restart())
            assert zygote.pid != old
            await pool.wait(task.restart())
            assert await task.get("attribute", "zygote_version", "VERSION") == 2
            assert parent_of(task.pid) == zygote.pid
            await pool.eventually(lambda: not zygote.retired or all(g.sock is None for g in zygote.retired))
        finally:
            await task.stop()
            await zygote.stop()

    run(scenario())


def test_many_children_forked_at_once(pool, run):
    async def scenario():
        zygote = Zygote()
        tasks = [warm(pool, zygote, name=f"w{n}") for n in range(6)]
        try:
            await pool.wait(asyncio.gather(*(task.start() for task in tasks)))
            assert len({task.pid for task in tasks}) == 6
            assert zygote.starts == 1
            assert [await task.get("add", n, 1) for n, task in enumerate(tasks)] == list(range(1, 7))
        finally:
            await asyncio.gather(*(task.stop() for task in tasks))
            await zygote.stop()

    run(scenario())


def forked_by(zygote_pid):
    """Pids of the living (not zombie) children of ``zygote_pid``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rfind(")") + 2 :].split()[:2]
        if int(ppid) == zygote_pid and state != "Z":
            pids.add(int(entry.name))
    return pids


def test_a_fork_answered_too_late_is_undone_and_the_cold_child_keeps_its_channel(pool, run, monkeypatch):
    """The zygote got the child's channel with the request: the child it forks after the spawn gave
    up must not live on beside the cold one, nor share its channel."""
    monkeypatch.setattr(zygote_handle, "FORK_TIMEOUT", 0.5)

    async def scenario():
        zygote = Zygote()
        first, late, third = (warm(pool, zygote, name=name) for name in ("first", "late", "third"))
        try:
            await pool.wait(first.start())
            os.kill(zygote.pid, signal.SIGSTOP)
            try:
                await pool.wait(late.start())
            finally:
                os.kill(zygote.pid, signal.SIGCONT)
            assert not isinstance(late.process, ZygoteChild)
            await pool.wait(third.start())  # the zygote answers in order: the late request came first
            assert isinstance(third.process, ZygoteChild)
            await pool.eventually(lambda: forked_by(zygote.pid) == {first.pid, third.pid})
            assert [await late.get("pid") for _ in range(5)] == [late.pid] * 5
        finally:
            await asyncio.gather(*(task.stop() for task in (first, late, third)))
            await zygote.stop()

    run(scenario())


def process_state(pid):
    """What a child got from whoever started it: signals blocked, ignored and caught, its threads,
    and its open descriptors by kind (their numbers may differ)."""
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    kinds = sorted(os.readlink(fd).partition(":[")[0] for fd in Path(f"/proc/{pid}/fd").iterdir())
    return {field: status[field].strip() for field in ("SigBlk", "SigIgn", "SigCgt", "Threads")} | {
        "descriptors": kinds
    }


def test_a_forked_child_holds_what_a_cold_child_holds_and_nothing_of_the_zygote(pool, run):
    """Besides a cold child's, one descriptor: its own spawn socket to the zygote (zygote_spawn.py).
    Not another child's: the later children hold the same as the first."""

    async def scenario():
        zygote = Zygote(["xml.dom.minidom"])
        cold = pool.track(CallableTask(script_path("calc.py:Calc")))
        forked = [warm(pool, zygote, name=f"warm{n}") for n in range(3)]
        try:
            await pool.wait(asyncio.gather(cold.start(), *(task.start() for task in forked)))
            assert all(isinstance(task.process, ZygoteChild) for task in forked)
            for task in (cold, *forked):  # each has served a call: its lane thread runs
                assert await task.get("add", 1, 1) == 2
            expected = process_state(cold.pid)
            expected["descriptors"] = sorted([*expected["descriptors"], "socket"])
            for task in forked:
                assert process_state(task.pid) == expected
            assert process_state(zygote.pid)["SigCgt"] != process_state(forked[0].pid)["SigCgt"]  # SIGCHLD
        finally:
            await asyncio.gather(cold.stop(), *(task.stop() for task in forked))
            await zygote.stop()

    run(scenario())
