"""Fixtures of the engine tests: tasks built from tests/pool/scripts/, and no child left behind.

Tests are plain functions that hand one coroutine to ``run``; every task made through ``pool`` is
stopped in that same event loop when the coroutine ends, and the fixture fails the test if a child
still runs after that. Nothing waits longer than ``WAIT`` seconds without failing.

Every test that uses ``pool`` runs twice: its ScriptTasks started cold (a fresh interpreter each)
and forked from a zygote, which must keep every behaviour the cold start has.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relieve_app.pool import CallableTask, CloudWorker, ForkTask, ScriptTask, Zygote, shared_image

SCRIPTS = Path(__file__).parent / "scripts"
ENGINE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds relieve_app/
WAIT = 10.0  # seconds: the bound of every single wait, far above what any of them needs
# Where shared_image writes immortal counts (test_shared_image.py pins where that must be): elsewhere
# what a zygote loaded stays mortal.
IMMORTAL_HERE = shared_image.supported()


def script_path(spec):
    """``"calc.py:Calc"`` -> ``"/…/tests/pool/scripts/calc.py:Calc"``: loaded by path, not sys.path."""
    file, sep, attr = spec.partition(":")
    return str(SCRIPTS / file) + sep + attr


def script_report(script, *flags, timeout=60):
    """Run tests/pool/scripts/``script`` in a process of its own (one that forks, or changes every
    object it holds, must not be the test process) and return the JSON of its last line."""
    env = {**os.environ, "PYTHONPATH": ENGINE_ROOT}
    argv = [sys.executable, script_path(script), *flags]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


class Pool:
    """Builds the tasks of one test and stops every child they started when the test ends."""

    def __init__(self, zygote=False):
        self.tasks = []
        self.zygote = Zygote() if zygote else None

    def track(self, task):
        self.tasks.append(task)
        return task

    def callable(self, spec="calc.py:Calc", **options):
        return self.track(CallableTask(script_path(spec), **{"zygote": self.zygote, **options}))

    def script(self, spec="calc.py:Calc", **options):
        return self.track(ScriptTask(script_path(spec), **{"zygote": self.zygote, **options}))

    async def cloud(self, *names, strategy=None):
        """A running CloudWorker of CallableTasks with these names; returns it and its tasks."""
        worker = CloudWorker(strategy)
        tasks = [self.callable(name=name) for name in names]
        for task in tasks:
            worker.add(task)
        await self.wait(worker.run())
        return worker, tasks

    async def fork(self, spec="fork_child.py", **popen_kwargs):
        """A ForkTask running a script of SCRIPTS, which can import relieve_app."""
        env = {**os.environ, "PYTHONPATH": ENGINE_ROOT}
        task = await ForkTask.spawn([sys.executable, script_path(spec)], env=env, **popen_kwargs)
        return self.track(task)

    # waiting ------------------------------------------------------------------

    @staticmethod
    def next_event(emitter, event):
        """A future of the args of the next ``event`` emitted by ``emitter``."""
        future = asyncio.get_running_loop().create_future()
        emitter.once(event, lambda *args: future.done() or future.set_result(args))
        return future

    @staticmethod
    def collect(emitter, event):
        """A list that receives ``(time.monotonic(), args)`` for each ``event`` from now on."""
        seen = []
        emitter.on(event, lambda *args: seen.append((time.monotonic(), args)))
        return seen

    @staticmethod
    async def wait(awaitable, timeout=WAIT):
        return await asyncio.wait_for(awaitable, timeout)

    @staticmethod
    async def eventually(predicate, timeout=WAIT):
        """Poll ``predicate`` until it holds; for state no event announces (a file's content)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout}s: {predicate}")
            await asyncio.sleep(0.02)

    # ending -------------------------------------------------------------------

    async def close(self):
        """Stop every task for good, in the test's own loop."""
        for task in self.tasks:
            try:
                if isinstance(task, ForkTask):
                    await asyncio.wait_for(task.kill(signal.SIGKILL), WAIT)
                else:
                    await asyncio.wait_for(task.stop(signal.SIGKILL), WAIT)
            except Exception as exc:  # one bad task must not keep the others alive
                print(f"could not stop {task!r}: {exc!r}", file=sys.stderr)
        if self.zygote is not None:
            await asyncio.wait_for(self.zygote.stop(), WAIT)

    def leaked(self):
        """Pids of children still running after ``close``; they are killed and reaped here."""
        pids = []
        for task in self.tasks:
            process = getattr(task, "process", None)
            if process is None or process.returncode is not None or getattr(process, "exited", False):
                continue  # a zygote's child whose code went with its zygote is exited all the same
            if _exited_unreaped(process.pid):  # a child let go (``let_go``) is not waited for here
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(process.pid, 0)
                continue
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            pids.append(process.pid)
            with contextlib.suppress(ChildProcessError):  # a zygote's child is not ours to reap
                os.waitpid(process.pid, 0)
        if self.zygote is not None:
            for generation in [self.zygote.current, *self.zygote.retired]:
                if generation is not None and generation.process.returncode is None:
                    pids.append(generation.process.pid)
                    generation.process.kill()
        return pids


@pytest.fixture(params=["cold", "zygote"])
def pool(request):
    pool = Pool(zygote=request.param == "zygote")
    yield pool
    leaked = pool.leaked()
    assert not leaked, f"children outlived the test: {leaked}"


@pytest.fixture
def run(pool):
    """``run(coro)``: run a test's coroutine in a fresh loop, bounded, then stop the pool's tasks."""

    def run(coro, timeout=45.0):
        async def main():
            try:
                return await asyncio.wait_for(coro, timeout)
            finally:
                await pool.close()

        return asyncio.run(main())

    return run


def _exited_unreaped(pid):
    """Whether ``pid`` has exited and waits to be reaped (a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
