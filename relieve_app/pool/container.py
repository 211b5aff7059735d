"""The child side of a task, run as ``python -m relieve_app.pool``.

The parent passes the channel's descriptor and what to load in the environment::

    RELIEVE_CHANNEL_FD   the child's end of the socketpair
    RELIEVE_SCRIPT       "pkg.module", "pkg.module:Attr" or a path to a .py file
    RELIEVE_CONTAINERS   JSON list of modules whose setup(channel) runs first
    RELIEVE_TASK_NAME    the task's name, for messages

Then, over the channel::

    parent -> relieve:start [arguments]         child -> relieve:started [pid]
    parent -> relieve:call  [id, method, args]  child -> relieve:done    [id, ok]
    parent -> relieve:get   [id, name, args]    child -> relieve:result  [id, ok, value or error]
    parent -> relieve:drop  [id]                child -> relieve:dropped [id, dropped]
                                                (dropped: it had not started and never will; its
                                                 answer is then the error {"type": "CallDropped"})

Plain methods run one at a time on a lane thread, so the event loop keeps serving
the channel; ``async def`` methods run on the loop. An exception that nothing can
receive is sent as ``error [message, stack]``; outside a call it ends the child.

When the channel closes (the parent stopped, or died), the lane starts no call any more: those
waiting on it are never run. A child whose lane is in a call asks the script's ``orphaned()``, if
it has one: a true answer lets the call run to its end (its reply has nowhere to go; the script
records what it must itself). Then the script's ``parent_gone()``, if it has one, is called:
answers already written may never have been read, and the script may keep what it must of them.
Then the child exits: at once, or after the call ``orphaned()`` kept.
"""

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import queue
import sys
import threading
import traceback
from pathlib import Path

from .channel import Channel, ChannelClosed
from .errors import CallDropped, RemoteError

EXIT_BOOT = 3  # reserved: the script or a container could not be loaded or started
EXIT_UNCAUGHT = 1


def load_script(spec):
    """Import what a task names: a module, ``module:Attr`` or a .py file; classes are instantiated."""
    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py"):
        path = Path(module_name)
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None:
            raise ImportError(f"cannot load {path}")
        target = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = target
        module_spec.loader.exec_module(target)
    else:
        target = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        target = getattr(target, part)
    return target() if inspect.isclass(target) else target


def _error_args(exc):
    return [f"{type(exc).__qualname__}: {exc}", "".join(traceback.format_exception(exc))]


class Container:
    """Runs one task's script in this process and answers the parent."""

    def __init__(self, script, containers=(), name=""):
        self.script = script
        self.containers = list(containers)
        self.name = name
        self.target = None
        self.channel = None
        self._lane = queue.SimpleQueue()
        self._queued = {}  # id -> reply of the calls waiting on the lane, not started
        self._dropped = set()  # ids the parent dropped while they waited: the lane skips them
        self._drops = threading.Lock()  # the loop's thread drops, the lane's starts: one at a time
        self._exit = None
        self._calling = False  # the lane thread is in a call whose reply has not been posted
        self._orphaned = False  # the channel closed during that call, and the script keeps it running
        self._gone = False  # the channel closed: the lane starts no call any more

    @classmethod
    def from_env(cls):
        return cls(
            os.environ["RELIEVE_SCRIPT"],
            json.loads(os.environ.get("RELIEVE_CONTAINERS", "[]")),
            os.environ.get("RELIEVE_TASK_NAME", ""),
        )

    async def run(self):
        loop = asyncio.get_running_loop()
        self._exit = loop.create_future()
        self.channel = Channel.from_parent(on_event=self._on_event)
        self.channel.listener_failed = self._listener_failed
        self.channel.on("close", self._parent_gone)
        arguments = loop.create_future()
        self.channel.once("relieve:start", lambda *args: arguments.done() or arguments.set_result(args))
        try:
            for module in self.containers:
                setup = getattr(importlib.import_module(module), "setup", None)
                if setup is not None:
                    setup(self.channel)
            self.target = load_script(self.script)
            if hasattr(self.target, "set_channel"):
                self.target.set_channel(self.channel)
            await asyncio.wait({arguments, self._exit}, return_when=asyncio.FIRST_COMPLETED)
            if not arguments.done():
                return self._exit.result()
            args = arguments.result()
            if hasattr(self.target, "start"):
                result = self.target.start(*args)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            await self._report(exc)
            return EXIT_BOOT
        threading.Thread(target=self._serve_lane, name="relieve-lane", daemon=True).start()
        try:
            await self.channel.send("relieve:started", os.getpid())
        except ChannelClosed:
            return 0  # the parent went away while this child was starting: leave as it would
        return await self._exit

    # events from the parent -------------------------------------------------

    def _on_event(self, event, *args):
        handler = self._handlers.get(event)
        if handler is None:
            self.channel.emit(event, *args)
        elif event == "relieve:drop" and len(args) == 1:
            self._handle_drop(args[0])
        elif event != "relieve:drop" and len(args) == 3 and isinstance(args[2], list):
            handler(self, *args)
        else:
            self.channel.emit("protocol_error", f"malformed {event}: {args!r}"[:300])

    def _handle_call(self, call_id, method, args):
        self._dispatch(call_id, method, args, reply=self._call_done)

    def _handle_get(self, call_id, name, args):
        self._dispatch(call_id, name, args, reply=self._get_done)

    def _handle_drop(self, call_id):
        """A call still waiting on the lane is answered CallDropped at once and never runs; one
        started or done goes on as if nothing was asked. Either way the parent is told which."""
        with self._drops:
            reply = self._queued.pop(call_id, None)
            if reply is not None:
                self._dropped.add(call_id)
        self.channel.post("relieve:dropped", call_id, reply is not None)
        if reply is not None:
            reply(call_id, CallDropped(f"call {call_id} was dropped before it started"), None)

    _handlers = {"relieve:call": _handle_call, "relieve:get": _handle_get, "relieve:drop": _handle_drop}

    def _dispatch(self, call_id, name, args, reply):
        try:
            member = self._member(name)
        except Exception as exc:
            reply(call_id, exc, None)
            return
        if not callable(member):
            reply(call_id, None, member)
        elif inspect.iscoroutinefunction(member):
            task = asyncio.ensure_future(member(*args))
            task.add_done_callback(lambda t: self._coroutine_done(call_id, t, reply))
        else:
            with self._drops:
                self._queued[call_id] = reply
            self._lane.put((call_id, member, args, reply))

    def _coroutine_done(self, call_id, task, reply):
        if task.cancelled() and self._exit.done():
            return  # cancelled because this child is ending: the parent learns it from the exit
        reply(call_id, *_outcome(task))

    def _member(self, name):
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise AttributeError(f"{name!r} is not a public method or attribute")
        try:
            return getattr(self.target, name)
        except AttributeError:
            raise AttributeError(f"{self.script} has no method or attribute {name!r}") from None

    def _serve_lane(self):
        """The lane thread: plain methods one at a time, each reply written from here before the
        next call starts, so a child that dies in a call has answered every call before it."""
        loop = self._exit.get_loop()
        while True:
            call_id, member, args, reply = self._lane.get()
            with self._drops:
                self._queued.pop(call_id, None)
                if call_id in self._dropped:
                    self._dropped.discard(call_id)
                    continue  # answered when it was dropped
                if self._gone:  # no parent would hear its answer: a call not started never starts
                    return
                self._calling = True
            try:
                result = member(*args)
                if inspect.isawaitable(result):
                    result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
            except (Exception, SystemExit) as exc:  # an exit must not end the lane with a call unanswered
                reply(call_id, exc, None)
            else:
                reply(call_id, None, result)
            finally:
                self._calling = False
            if self._orphaned:  # the call its parent left behind is over: nothing else will come
                loop.call_soon_threadsafe(self._finish, 0)
                return

    # replies ----------------------------------------------------------------

    def _call_done(self, call_id, exc, _result):
        if exc is not None:
            self.channel.post("error", *_error_args(exc))
        self.channel.post("relieve:done", call_id, exc is None)

    def _get_done(self, call_id, exc, result):
        if exc is None:
            try:
                self.channel.post("relieve:result", call_id, True, result)
                return
            except ValueError as encode_error:
                exc = TypeError(f"the result cannot cross the channel: {encode_error}")
        self.channel.post("relieve:result", call_id, False, RemoteError.from_exception(exc).to_dict())

    # ending -----------------------------------------------------------------

    def _parent_gone(self):
        """The channel closed: no call starts from now on. The call in progress, if any, runs on
        when the script's ``orphaned()`` keeps it; the script's ``parent_gone()`` may then keep what
        its parent may not have read; the child ends now, or after the call it kept."""
        with self._drops:
            self._gone = True
            calling = self._calling
        hook = getattr(self.target, "orphaned", None)
        if calling and callable(hook):
            try:
                self._orphaned = bool(hook())
            except Exception as exc:
                traceback.print_exception(exc)
        gone = getattr(self.target, "parent_gone", None)
        if callable(gone):
            try:
                gone()
            except Exception as exc:
                traceback.print_exception(exc)
        if not self._orphaned or not self._calling:  # the call may have ended meanwhile
            self._finish(0)

    def _listener_failed(self, event, exc):
        """An exception in a listener has no caller: report it and end, as an uncaught error would."""
        self.channel.send("error", *_error_args(exc))
        self._finish(EXIT_UNCAUGHT)

    async def _report(self, exc):
        if self.channel is not None and not self.channel.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.ensure_future(self.channel.send("error", *_error_args(exc))), 2
                )
        traceback.print_exception(exc)

    def _finish(self, code):
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(code)


async def _awaited(awaitable):
    return await awaitable


def _outcome(task):
    if task.cancelled():
        return asyncio.CancelledError("cancelled"), None
    if task.exception() is not None:
        return task.exception(), None
    return None, task.result()


def main():
    code = asyncio.run(Container.from_env().run())
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
