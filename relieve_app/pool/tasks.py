"""Tasks: the master's handle on one child process.

ForkTask wraps a child you start yourself. ScriptTask starts ``container.py`` with a
script to load, restarts it when asked, and backs off when it keeps dying young.
CallableTask adds ``call`` and ``get`` on the script's methods.

A ScriptTask given a ``zygote`` (``zygote_handle.Zygote``) has its child forked from that warm process
instead of started as a fresh interpreter, and falls back to the fresh start when the zygote
cannot fork. Either way ``self.process`` has the same face: ``pid``, ``returncode``, ``wait()``,
``send_signal``, and ``stdout``/``stderr`` when an interface captures them. A forked child's
``returncode`` is ``None`` when its zygote died before reporting it.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .channel import CHANNEL_FD_ENV, Channel, ChannelClosed, Emitter
from .errors import BootError, CallDropped, NotRunning, RelieveError, RemoteError, TaskExited
from .family import clear_away, signal_family
from .zygote_handle import ENGINE_ROOT, ZygoteUnavailable

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL in stop()
EXIT_DRAIN = 1.0  # seconds to read a dead child's last frames
MIN_UPTIME = 1.0  # a child that dies younger than this counts as a crash loop
MAX_BACKOFF = 30.0
LET_GO = 0  # the exit code asyncio's transport is told of for a child left running (``let_go``)


class Named:
    """A uuid4 name unless set; it can be set once, so workers can key tasks by it."""

    _name = None

    @property
    def name(self):
        if self._name is None:
            self._name = str(uuid.uuid4())
        return self._name

    @name.setter
    def name(self, value):
        if self._name is not None:
            raise TypeError(f"task name is already {self._name!r}; it can be set once")
        self._name = str(value)


def _socketpair():
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent.set_inheritable(False)
    return parent, child


class ForkTask(Named, Channel):
    """A Channel to a child you start with ``await ForkTask.spawn(argv)``; plus ``kill`` and ``pid``.

    The child gets its end with ``Channel.from_parent()``. Emits ``exit(code)`` locally.
    """

    def __init__(self, sock, process, **kwargs):
        super().__init__(sock, **kwargs)
        self.process = process
        self._exited = asyncio.ensure_future(self._watch())

    @classmethod
    async def spawn(cls, argv, *, name=None, **popen_kwargs):
        parent, child = _socketpair()
        env = dict(popen_kwargs.pop("env", None) or os.environ)
        env[CHANNEL_FD_ENV] = str(child.fileno())
        pass_fds = (*popen_kwargs.pop("pass_fds", ()), child.fileno())
        try:
            process = await asyncio.create_subprocess_exec(*argv, env=env, pass_fds=pass_fds, **popen_kwargs)
        finally:
            child.close()
        task = cls(parent, process)
        if name is not None:
            task.name = name
        return task

    @property
    def pid(self):
        return self.process.pid

    @property
    def running(self):
        return self.process.returncode is None

    async def _watch(self):
        code = await self.process.wait()
        self.close()
        self.emit("exit", code)
        return code

    async def wait(self):
        return await asyncio.shield(self._exited)

    async def kill(self, sig=signal.SIGTERM):
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await self.wait()

    async def stop(self, sig=signal.SIGTERM):
        return await self.kill(sig)


class ScriptTask(Named, Emitter):
    """A child process running ``script`` inside the container; see the module docstring."""

    def __init__(
        self,
        script,
        *,
        restart=False,
        restart_delay=0.0,
        containers=(),
        env=None,
        cwd=None,
        interfaces=(),
        name=None,
        arguments=(),
        zygote=None,
    ):
        super().__init__()
        if not isinstance(script, str) or not script:
            raise TypeError("script must be 'pkg.module', 'pkg.module:Attr' or a path to a .py file")
        path, colon, attr = script.partition(":")
        # A file is found from where the task was made, whatever cwd the child gets.
        self.script = str(Path(path).resolve()) + colon + attr if path.endswith(".py") else script
        self.restart_on_exit = bool(restart)
        self.restart_delay = float(restart_delay)
        self.containers = list(containers)
        self.env = dict(env or {})
        self.cwd = cwd
        self.interfaces = list(interfaces)
        self.arguments = list(arguments)
        self.zygote = zygote  # a zygote_handle.Zygote to fork the child from; None: a fresh interpreter
        if name is not None:
            self.name = name
        self.restarts = 0
        self.started_at = None
        self.process = None
        self.channel = None
        self.last_error = None
        self._run_arguments = None
        self._stopping = False
        self._started = None
        self._exited = None
        self._restarting = None
        self._watcher = None
        self._fast_failures = 0

    # state --------------------------------------------------------------------

    @property
    def running(self):
        return self._started is not None and self._started.done() and not self._exited.done()

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def in_flight(self):
        return 0

    def __repr__(self):
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {self.script} {state} pid={self.pid}>"

    # lifecycle ----------------------------------------------------------------

    async def start(self, *args):
        """Start the child; resolves once it has loaded its script and run ``start(*args)``."""
        if self._alive():
            raise RelieveError(f"task {self.name} is already running")
        if self._restarting is not None:
            self._restarting.cancel()  # this start replaces a restart still waiting for its delay
        self._run_arguments = list(args) if args else list(self.arguments)
        self._stopping = False
        self._fast_failures = 0
        await self._spawn()
        return self

    async def stop(self, sig=signal.SIGTERM, grace=STOP_GRACE):
        """Stop for good (no restart): ``sig``, then SIGKILL after ``grace`` seconds. Returns the code."""
        self._stopping = True
        if self._restarting is not None:
            self._restarting.cancel()
        if not self._alive():
            return self.process.returncode if self.process else None
        self._signal(sig)
        try:
            return await asyncio.wait_for(asyncio.shield(self._exited), grace)
        except TimeoutError:
            log.warning("task %s ignored signal %s for %.1fs; killing it", self.name, sig, grace)
            self._signal(signal.SIGKILL)
            return await asyncio.shield(self._exited)

    async def kill(self, sig=signal.SIGTERM):
        """Send ``sig`` and wait for the exit; the restart option decides what happens next."""
        if not self._alive():
            raise NotRunning(f"task {self.name} is not running")
        exited = self._exited
        self._signal(sig)
        return await asyncio.shield(exited)

    def let_go(self):
        """Leave the child running on its own, for good: no signal, no restart, its channel closed.

        The child hears its channel close as it would its parent's death (``container.py``): idle,
        it exits; in a call its script keeps (``orphaned()``), it ends that call first. Calls and
        gets awaiting an answer fail with TaskExited (code None). This process may then exit: asyncio
        kills a child whose transport is closed, or collected, while it runs, so the transport is
        told the child has ended; the child is never waited for here again.
        """
        self._stopping = True
        if self._restarting is not None:
            self._restarting.cancel()
        if not self._alive():
            return False
        self._watcher.cancel()
        transport = getattr(self.process, "_transport", None)  # asyncio's, for a child it spawned
        popen = transport.get_extra_info("subprocess") if transport is not None else None
        if popen is not None and popen.returncode is None:
            popen.returncode = LET_GO  # what the transport's close() takes for an exit: no SIGKILL
            transport.close()
        self.channel.close()
        self._child_gone(None)
        self._exited.set_result(None)
        self.emit("let_go", self.process.pid)
        return True

    async def restart(self):
        """Stop the child and start a new one with the same arguments; resolves once it runs."""
        await self.stop()
        self.restarts += 1  # counted before "restart" is emitted, as in _restart_later
        self.emit("restart")
        self._stopping = False
        await self._spawn()
        return self

    async def wait(self):
        """The exit code of the current child, once it has exited."""
        if self._exited is None:
            raise NotRunning(f"task {self.name} was never started")
        return await asyncio.shield(self._exited)

    def _alive(self):
        return self._exited is not None and not self._exited.done()

    def _signal(self, sig):
        """Signal the child and all it started; one already reaped (its exit still being drained)
        has had what it left cleared away by its watcher."""
        if self.process.returncode is None:
            signal_family(self.process.pid, sig)

    def _python_path(self):
        """This engine first, then the master's folder and the task's: never the child's cwd before
        the engine, which could hold another relieve_app."""
        return [ENGINE_ROOT, os.getcwd(), *([os.fspath(Path(self.cwd).resolve())] if self.cwd else [])]

    def _child_env(self, channel_end):
        env = {**os.environ, **self.env}
        env.update(
            {
                CHANNEL_FD_ENV: str(channel_end.fileno()),
                "RELIEVE_SCRIPT": self.script,
                "RELIEVE_CONTAINERS": json.dumps(self.containers),
                "RELIEVE_TASK_NAME": self.name,
                "PYTHONSAFEPATH": "1",
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [*self._python_path(), env.get("PYTHONPATH", "")])
                ),
            }
        )
        return env

    async def _start_process(self, capture):
        """The child and the parent's end of its channel: forked by the zygote when there is one
        that can, else a fresh interpreter."""
        if self.zygote is not None:
            parent, child = _socketpair()
            try:
                process = await self.zygote.spawn(
                    env=self._child_env(child),
                    cwd=self.cwd,
                    path=self._python_path(),
                    channel=child,
                    capture_output=capture,
                )
            except ZygoteUnavailable as exc:
                # The zygote may hold this channel's other end, and fork with it once it answers:
                # the cold child gets a channel of its own, and a late fork finds nobody at its end.
                parent.close()
                log.warning("task %s starts cold: %s", self.name, exc)
            except BaseException:
                parent.close()
                raise
            else:
                return process, parent
            finally:
                child.close()
        parent, child = _socketpair()
        pipe = asyncio.subprocess.PIPE if capture else None
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relieve_app.pool",
                env=self._child_env(child),
                cwd=self.cwd,
                pass_fds=(child.fileno(),),
                stdout=pipe,
                stderr=pipe,
                start_new_session=True,  # a terminal's Ctrl-C reaches the master, which stops children
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return process, parent

    async def _spawn(self):
        loop = asyncio.get_running_loop()
        capture = any(i.captures_output for i in self.interfaces)
        self._started = loop.create_future()
        self._exited = loop.create_future()
        self.last_error = None
        try:
            self.process, parent = await self._start_process(capture)
        except BaseException:
            self._exited.set_result(None)
            raise
        self.channel = Channel(parent, on_event=self._on_child_event)
        for interface in self.interfaces:
            interface.attach(self, self.process)
        arguments = self.arguments if self._run_arguments is None else self._run_arguments
        self.channel.send("relieve:start", *arguments)
        self._watcher = asyncio.ensure_future(
            self._watch(self.process, self.channel, self._started, self._exited)
        )
        await asyncio.shield(self._started)

    async def _watch(self, process, channel, started, exited):
        code = await process.wait()
        clear_away(process.pid)  # however it ended, what it started goes with it
        if not channel.closed:
            closed = asyncio.get_running_loop().create_future()
            channel.once("close", lambda: closed.done() or closed.set_result(None))
            try:
                await asyncio.wait_for(closed, EXIT_DRAIN)
            except TimeoutError:
                channel.close()
        uptime = time.time() - self.started_at if started.done() and self.started_at else 0.0
        self._child_gone(code)
        booted = started.done()
        if not booted:
            reason = self.last_error[0] if self.last_error else f"exit code {code} before it started"
            started.set_exception(BootError(self.name, code, reason))
            started.exception()  # a restart attempt may have nobody awaiting it
        exited.set_result(code)
        self.emit("exit", code)
        if self.restart_on_exit and not self._stopping:
            self._restarting = asyncio.ensure_future(self._restart_later(code, booted, uptime))

    async def _restart_later(self, code, booted, uptime):
        self._fast_failures = self._fast_failures + 1 if (not booted or uptime < MIN_UPTIME) else 0
        delay = self.restart_delay
        if self._fast_failures > 1:
            delay = max(delay, min(0.1 * 2 ** (self._fast_failures - 2), MAX_BACKOFF))
        if not booted:  # once started, any exit code (EXIT_BOOT too) is the task's, not a boot failure
            reason = self.last_error[0] if self.last_error else f"exit code {code}"
            log.warning("task %s could not boot: %s; next try in %.1fs", self.name, reason, delay)
        await asyncio.sleep(delay)
        if self._stopping:
            return
        self.restarts += 1
        self.emit("restart")
        try:
            await self._spawn()
        except BootError:
            pass  # its own watcher schedules the next try
        except OSError as exc:
            log.error("task %s could not be restarted: %s", self.name, exc)

    def _child_gone(self, code):
        """Hook for subclasses: the child exited with ``code``."""

    # events -------------------------------------------------------------------

    def _on_child_event(self, event, *args):
        if event == "relieve:started":
            self.started_at = time.time()
            if not self._started.done():
                self._started.set_result(self.started_at)
            self.emit("start", self.started_at)
        elif event == "error":
            self.last_error = args
            self.emit("error", *args)
        else:
            self.emit(event, *args)

    async def send(self, event, *args):
        """Send an event to the child; resolves with the task once written."""
        if not self.running:
            raise NotRunning(f"task {self.name} is not running; cannot send {event!r}")
        await self.channel.send(event, *args)
        return self


@dataclass(frozen=True)
class Call:
    """A call sent to a child (``CallableTask.submit``): its id, and the future of its answer."""

    id: int
    future: asyncio.Future
    pid: int  # of the child it was sent to


class CallableTask(ScriptTask):
    """A ScriptTask whose script's methods can be called (fire and forget) or got (with a result)."""

    def __init__(self, script, **options):
        super().__init__(script, **options)
        self._ids = itertools.count(1)
        self._in_flight = set()
        self._waiting = {}
        self._drops = {}  # call id -> future of the child's word on dropping it

    @property
    def in_flight(self):
        """Calls and gets sent to the current child and not yet finished by it."""
        return len(self._in_flight)

    async def call(self, method, *args):
        """Resolves once the child has the call; the child reports raises as ``error`` events."""
        await self._request("relieve:call", self._begin(), method, args)
        return self

    async def get(self, name, *args, timeout=None):
        """The result of ``name(*args)`` in the child, or the attribute's value.

        Raises RemoteError for a raise in the child, TaskExited when the child dies
        first, TimeoutError after ``timeout`` seconds (the child may still finish it).
        """
        return await self.answer(await self.submit(name, *args), timeout=timeout)

    async def submit(self, name, *args):
        """Send ``name(*args)`` now, to run once the child is done with the calls before it; returns
        the call, for ``answer`` and ``drop``. A child kept fed so never waits for its parent."""
        call_id = self._begin()
        future = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            await self._request("relieve:get", call_id, name, args)
        except ChannelClosed:
            self._waiting.pop(call_id, None)
            future.cancel()
            raise await self._exited_error() from None
        except BaseException:
            self._waiting.pop(call_id, None)
            future.cancel()
            raise
        return Call(call_id, future, self.pid)

    async def drop(self, call):
        """Ask the child not to start ``call``: True once it never will (its answer then raises
        CallDropped), False when it had started or ended. Raises TaskExited if the child dies first."""
        if call.future.done():
            error = None if call.future.cancelled() else call.future.exception()
            if isinstance(error, TaskExited):
                raise error
            return isinstance(error, CallDropped)
        if call.pid != self.pid or not self.running:
            raise TaskExited(self.name, self.process.returncode if self.process else None)
        future = asyncio.get_running_loop().create_future()
        self._drops[call.id] = future
        try:
            await self.channel.send("relieve:drop", call.id)
            return await future
        except ChannelClosed:
            raise await self._exited_error() from None
        finally:
            self._drops.pop(call.id, None)

    async def answer(self, call, timeout=None):
        """What ``get`` returns for a ``submit``ted call, ``timeout`` counted from now."""
        future = call.future
        try:
            if timeout is not None:
                await self._answer_within(future, timeout)
            return await future
        except ChannelClosed:
            raise await self._exited_error() from None
        finally:
            self._waiting.pop(call.id, None)
            if not future.done():
                future.cancel()

    async def _exited_error(self):
        """TaskExited with the child's code: the channel can close before the child is reaped, so
        the code is waited for, as _child_gone has it."""
        code = self.process.returncode
        if code is None:
            with contextlib.suppress(TimeoutError):
                code = await asyncio.wait_for(asyncio.shield(self._exited), EXIT_DRAIN + STOP_GRACE)
        return TaskExited(self.name, code)

    async def _answer_within(self, future, timeout):
        """Wait up to ``timeout`` for ``future``; an answer already received wins over the timeout.

        A master that was frozen (SIGSTOP, swap, a long pause) wakes with both the timer due and
        the answer waiting in the socket: the channel is read before the timeout is believed.
        """
        await asyncio.wait([future], timeout=timeout)
        if not future.done() and self.channel is not None:
            self.channel.read_waiting()
        if not future.done():
            raise TimeoutError(f"no answer from {self.name} within {timeout:g}s")

    async def _request(self, event, call_id, name, args):
        try:
            await self.channel.send(event, call_id, name, list(args))
        except BaseException:
            self._in_flight.discard(call_id)  # never sent: the child will not report it done
            raise

    def _begin(self):
        if not self.running:
            raise NotRunning(f"task {self.name} is not running")
        call_id = next(self._ids)
        self._in_flight.add(call_id)
        return call_id

    def _on_child_event(self, event, *args):
        if event == "relieve:dropped" and len(args) == 2:
            future = self._drops.get(args[0])
            if future is not None and not future.done():
                future.set_result(bool(args[1]))
        elif event == "relieve:done" and args:
            self._in_flight.discard(args[0])
        elif event == "relieve:result" and len(args) == 3:
            call_id, ok, value = args
            self._in_flight.discard(call_id)
            future = self._waiting.get(call_id)
            if future is not None and not future.done():
                if ok:
                    future.set_result(value)
                elif isinstance(value, dict) and value.get("type") == CallDropped.__name__:
                    future.set_exception(CallDropped(value.get("message", "")))
                else:
                    future.set_exception(RemoteError.from_dict(value if isinstance(value, dict) else {}))
        else:
            super()._on_child_event(event, *args)

    def _child_gone(self, code):
        self._in_flight.clear()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(TaskExited(self.name, code))
        self._waiting.clear()
        for future in self._drops.values():
            if not future.done():
                future.set_exception(TaskExited(self.name, code))
