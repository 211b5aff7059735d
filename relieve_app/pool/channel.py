"""Channel: named events between two processes over a connected AF_UNIX stream socket.

Each event is one frame of ``framing`` (4-byte length, JSON object)::

    {"e": "<event>", "a": [arg, ...], "s": [index, ...]}

``s`` lists the positions in ``a`` that held a ``socket.socket``; those sockets travel
as file descriptors (SCM_RIGHTS) attached to the frame's first byte, and ``a`` holds
``null`` in their place. The receiver keeps descriptors in arrival order and hands
them to the frame that names them.

A channel is bound to the event loop it was made on. ``send`` may be called from any
thread: it writes straight away when nothing is queued and hands the rest to the loop.
"""

import array
import asyncio
import collections
import concurrent.futures
import inspect
import logging
import os
import socket
import threading

from . import framing
from .errors import RelieveError

log = logging.getLogger(__name__)

CHANNEL_FD_ENV = "RELIEVE_CHANNEL_FD"
MAX_FDS_PER_READ = 32
MAX_IOV = 512
READ_SIZE = 64 * 1024  # reused for every read: no allocation per recv


class ChannelClosed(RelieveError):
    """The channel was closed, by us or by the peer."""


class Emitter:
    """A small event emitter: plain or async listeners, ``once``, and errors that never escape."""

    def __init__(self):
        self._listeners = collections.defaultdict(list)
        self._background = set()

    def on(self, event, fn):
        self._listeners[event].append((fn, False))
        return self

    def once(self, event, fn):
        self._listeners[event].append((fn, True))
        return self

    def off(self, event, fn):
        # equality, not identity: `obj.method` is a new bound-method object at each access
        self._listeners[event] = [(f, o) for f, o in self._listeners[event] if f != fn]
        return self

    def listeners(self, event):
        return [fn for fn, _ in self._listeners.get(event, ())]

    def emit(self, event, *args):
        """Call the listeners of ``event``; returns how many there were."""
        entries = self._listeners.get(event)
        if not entries:
            return 0
        if any(once for _, once in entries):
            self._listeners[event] = [(f, o) for f, o in entries if not o]
        for fn, _ in list(entries):
            try:
                result = fn(*args)
            except Exception as exc:
                self.listener_failed(event, exc)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._background.add(task)
                task.add_done_callback(self._background_done(event))
        return len(entries)

    def _background_done(self, event):
        def done(task):
            self._background.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.listener_failed(event, task.exception())

        return done

    def listener_failed(self, event, exc):
        """A listener raised; the default logs it. The child container makes it fatal."""
        log.error("listener for %r raised", event, exc_info=exc)


class Channel(Emitter):
    """Events over a stream socket; see the module docstring for the frame layout.

    Local events (never sent by the peer): ``close()`` once the channel is closed and
    ``protocol_error(message)`` for a frame that could not be read. ``on_event(event, *args)``,
    when given, receives the peer's events instead of this channel's own listeners.
    """

    def __init__(self, sock, *, max_frame=framing.MAX_FRAME, loop=None, on_event=None):
        super().__init__()
        self._on_event = on_event or self.emit
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise TypeError("a Channel needs a connected AF_UNIX stream socket")
        self._loop = loop or asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self._decoder = framing.FrameDecoder(max_frame=max_frame)
        self._max_frame = max_frame
        self._fds = collections.deque()
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._lock = threading.Lock()
        self._queue = collections.deque()  # [memoryview, fds, sockets, future]
        self._writing = False
        self._burst = False
        self._closed = False
        sock.setblocking(False)
        self._loop.add_reader(self._fd, self._read)

    @classmethod
    def from_parent(cls, **kwargs):
        """The end a ForkTask or ScriptTask gave this child, named by RELIEVE_CHANNEL_FD."""
        fd = os.environ.get(CHANNEL_FD_ENV)
        if fd is None:
            raise RelieveError(f"{CHANNEL_FD_ENV} is not set: this process was not started by a task")
        return cls(socket.socket(fileno=int(fd)), **kwargs)

    @property
    def closed(self):
        return self._closed

    # sending ---------------------------------------------------------------

    def send(self, event, *args):
        """Queue one event; returns an awaitable resolved once written (ignoring it is fine).

        From a thread other than the channel's loop the return value is a
        ``concurrent.futures.Future``, since such a caller cannot await.
        """
        on_loop = self._on_loop_thread()
        future = self._loop.create_future() if on_loop else concurrent.futures.Future()
        self._enqueue(event, args, future, on_loop)
        return future

    def post(self, event, *args):
        """``send`` for callers that never wait: no future."""
        self._enqueue(event, args, None, self._on_loop_thread())

    def _enqueue(self, event, args, future, on_loop):
        indices = [i for i, arg in enumerate(args) if isinstance(arg, socket.socket)]
        sockets = [args[i] for i in indices]
        values = list(args)
        for i in indices:
            values[i] = None
        frame = {"e": event, "a": values}
        if indices:
            frame["s"] = indices
        data = framing.encode(frame, max_frame=self._max_frame)
        with self._lock:
            if self._closed:
                for s in sockets:
                    s.close()
                if future is not None:
                    future.set_exception(ChannelClosed(f"cannot send {event!r}: channel closed"))
                    _silence(future)
                return
            self._queue.append([memoryview(data), [s.fileno() for s in sockets], sockets, future])
            if self._writing:
                return
            if on_loop:
                if self._burst:
                    return  # written by _end_burst with the rest of this loop iteration's frames
                self._burst = True
                self._loop.call_soon(self._end_burst)
            self._flush_locked()
            self._watch_writable_locked(on_loop)

    def _watch_writable_locked(self, on_loop):
        if self._queue and not self._writing and not self._closed:
            self._writing = True
            if on_loop:
                self._loop.add_writer(self._fd, self._write)
            else:
                self._loop.call_soon_threadsafe(self._start_writer)

    def _end_burst(self):
        with self._lock:
            self._burst = False
            if self._writing or self._closed or not self._queue:
                return
            self._flush_locked()
            self._watch_writable_locked(True)

    def _start_writer(self):
        with self._lock:
            if self._closed or not self._queue:
                self._writing = False
                return
        self._loop.add_writer(self._fd, self._write)

    def _write(self):
        with self._lock:
            self._flush_locked()
            if self._queue and not self._closed:
                return
            self._writing = False
        if not self._closed:
            self._loop.remove_writer(self._fd)

    def _flush_locked(self):
        """Write what the socket takes, many frames per syscall when none carries sockets; lock held."""
        queue = self._queue
        while queue:
            item = queue[0]
            fds = item[1]
            try:
                if fds:
                    sent = self._sock.sendmsg(
                        [item[0]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                    )
                    item[1] = []
                else:
                    views = []
                    for other in queue:
                        if other[1] or len(views) == MAX_IOV:
                            break
                        views.append(other[0])
                    sent = self._sock.sendmsg(views) if len(views) > 1 else self._sock.send(views[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail_locked(exc)
                return
            while sent and queue:
                item = queue[0]
                size = len(item[0])
                if sent < size:
                    item[0] = item[0][sent:]
                    return
                sent -= size
                queue.popleft()
                for s in item[2]:
                    s.close()
                if item[3] is not None:
                    _resolve(item[3], self._loop, None)

    def _fail_locked(self, exc):
        self._closed = True
        self._loop.call_soon_threadsafe(self._teardown, exc)

    # receiving -------------------------------------------------------------

    def read_waiting(self):
        """Read and dispatch now whatever the peer already sent; on the loop's thread."""
        if not self._closed and self._sock is not None:
            self._read()

    def _read(self):
        frames = []
        while True:
            try:
                size, ancdata, _flags, _addr = self._sock.recvmsg_into(
                    [self._buffer], socket.CMSG_SPACE(MAX_FDS_PER_READ * 4), socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._teardown(exc)
                return
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
                    self._fds.extend(fds)
            if not size:
                self._dispatch(frames)
                self._teardown(None)
                return
            frames.extend(self._decoder.feed(self._buffer[:size]))
            if size < READ_SIZE:
                break
        self._dispatch(frames)

    def _dispatch(self, frames):
        for frame in frames:
            if self._closed:
                return
            if isinstance(frame, framing.FrameError):
                self._protocol_error(str(frame))
                continue
            event, args = frame.get("e"), frame.get("a", [])
            indices = frame.get("s", [])
            if not isinstance(event, str) or not isinstance(args, list) or not isinstance(indices, list):
                self._protocol_error(f"frame is not an event: {str(frame)[:200]}")
                continue
            if indices and not self._take_sockets(args, indices):
                continue
            self._on_event(event, *args)

    def _take_sockets(self, args, indices):
        valid = all(isinstance(i, int) and 0 <= i < len(args) for i in indices)
        if not valid or len(indices) > len(self._fds):
            self._protocol_error(f"frame names sockets it did not carry: {indices}")
            return False
        for i in indices:
            args[i] = socket.socket(fileno=self._fds.popleft())
        return True

    def _protocol_error(self, message):
        log.warning("channel: %s", message)
        self.emit("protocol_error", message)

    # closing ---------------------------------------------------------------

    def close(self):
        """Close the socket; pending sends fail with ChannelClosed. Safe to call twice."""
        if self._on_loop_thread():
            self._close_now()
        else:
            self._loop.call_soon_threadsafe(self._close_now)

    def _close_now(self):
        with self._lock:  # what the socket takes now still goes out: frames queued by a burst
            if not self._closed and self._sock is not None:
                self._flush_locked()
        self._teardown(None)

    def _teardown(self, exc):
        with self._lock:
            if self._sock is None:
                return
            self._closed = True
            pending, self._queue = list(self._queue), collections.deque()
            self._writing = False
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        self._sock = None
        while self._fds:
            os.close(self._fds.popleft())
        error = ChannelClosed(f"channel closed: {exc}" if exc else "channel closed")
        for _view, _fds, sockets, future in pending:
            for s in sockets:
                s.close()
            if future is not None:
                _resolve(future, self._loop, error)
        self.emit("close")

    def _on_loop_thread(self):
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False


def _resolve(future, loop, exc):
    if isinstance(future, concurrent.futures.Future):
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)
        return
    if future.done():
        return
    if exc is None:
        if _running_in(loop):
            future.set_result(None)
        else:
            loop.call_soon_threadsafe(_set_if_pending, future, None, None)
    else:
        _silence(future)
        if _running_in(loop):
            future.set_exception(exc)
        else:
            loop.call_soon_threadsafe(_set_if_pending, future, None, exc)


def _set_if_pending(future, result, exc):
    if not future.done():
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)


def _silence(future):
    """Nobody has to await a send: mark its failure as seen so asyncio does not warn."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


def _running_in(loop):
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
