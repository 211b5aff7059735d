"""A zygote's child asks it for helper processes, forked warm (``zygote.py``'s ``spawn``).

A child that starts a helper with ``subprocess.Popen`` pays for a fresh interpreter and for
everything the helper imports; one the zygote forks shares the zygote's pages instead. ``spawn()``
asks for one and returns a ``Helper`` with the face of a ``Popen`` (``pid``, ``stdin``, ``stdout``,
``poll()``, ``wait()``, ``kill()``), or None when it cannot be had: this process was not forked by
a zygote (a cold child, a web process, a test), the zygote is gone, refused, or did not answer within
``timeout``. The caller then starts its helper as it would without a zygote.

The zygote attaches this process's end of their socketpair (``attach``) when it forks the child,
rather than naming it in the environment: a process the child starts would inherit the name of a
descriptor that is not its own. A process forked from the child without an exec finds no zygote.

A helper is the zygote's child, not this process's: it is in neither its session nor its family
(``family.py``), and is watched by a pidfd the zygote took before it could reap it. Its exit code
is the one the zygote reports; ``returncode`` stays None when the zygote is gone and cannot tell.

``spawn(..., share=True)`` asks for the zygote's one helper of that target, shared with every other
process that asks for it (``zygote.py``): the Helper's pipes are this process's own, the process is
not. ``release()`` gives the pipes back and leaves the process to the others; ``kill()`` ends it for
all of them.
"""

import collections
import contextlib
import itertools
import json
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time

from .pidfd import SignalledByPidfd

SPAWN_TIMEOUT = 5.0  # seconds: the first spawn of a target may import its modules in the zygote
REPORT_WAIT = 1.0  # seconds an exited helper's code may take to come from a living zygote
QUIET_AFTER = 30.0  # seconds without asking a zygote that did not answer in time
MAX_MESSAGE = 1 << 16

log = logging.getLogger(__name__)

_link = None


def attach(sock):
    """Called by the zygote in the child it forked: ``sock`` is this child's end of its spawn socket."""
    global _link
    sock.setblocking(False)
    _link = _Link(sock)


def detach():
    """Forget the zygote (and close the socket): later spawns return None."""
    global _link
    link, _link = _link, None
    if link is not None:
        link.close()


def available():
    """Whether this process may ask a zygote for helpers (it may still refuse or be gone)."""
    link = _link
    return link is not None and link.owner == os.getpid() and link.sock is not None


def spawn(target, *, prepare=None, timeout=SPAWN_TIMEOUT, share=False):
    """A ``Helper`` forked by this process's zygote, running ``target()`` ("pkg.module:callable"),
    or None (see the module docstring). ``prepare`` is called once in the zygote first. ``share``:
    the zygote's one helper of ``target``, which serves every process that asks (``helper_loop.py``).
    Thread-safe."""
    link = _link
    if link is None or link.owner != os.getpid():
        return None
    return link.spawn(target, prepare, timeout, share)


class Helper(SignalledByPidfd):
    """A helper process the zygote forked for this process; used by one thread at a time, as a Popen."""

    def __init__(self, link, pid, pidfd, stdin_fd, stdout_fd, shared=False):
        self.pid = pid
        self.shared = shared  # the zygote's one helper of its target, which other processes use too
        self.returncode = None  # once exited: its code, or None if the zygote could not report it
        self.stdin = open(stdin_fd, "wb", buffering=0)  # noqa: SIM115 - closed by its owner, as a Popen's
        self.stdout = open(stdout_fd, "rb", buffering=0)  # noqa: SIM115
        self._link = link
        self._pidfd = pidfd

    @property
    def exited(self):
        return self._pidfd is None

    def poll(self):
        """None while it runs; once it exited, its code (None too when unknown: see ``exited``)."""
        if self._pidfd is not None and _readable(self._pidfd, 0):
            self._settle()
        return self.returncode

    def wait(self, timeout=None):
        if self._pidfd is not None:
            if not _readable(self._pidfd, timeout):
                raise subprocess.TimeoutExpired(f"helper {self.pid}", timeout)
            self._settle()
        return self.returncode

    def _settle(self):
        self.returncode = self._link.exit_code(self.pid, REPORT_WAIT)
        os.close(self._pidfd)
        self._pidfd = None

    def release(self):
        """Close this process's pipes to the helper and stop watching it, without ending it: a
        shared helper drops this asker and serves on (one that has no asker left ends)."""
        self.stdin.close()
        self.stdout.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
            self._link.unwatch(self.pid)

    def __repr__(self):
        return f"<Helper pid={self.pid} returncode={self.returncode}>"


class _Link:
    """This process's end of its zygote's spawn socket, and what came on it."""

    def __init__(self, sock):
        self.sock = sock
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.watched = collections.Counter()  # pid -> Helpers not yet settled: only their codes are kept
        self.codes = {}  # pid -> code the zygote reported
        self.quiet_until = 0.0

    def spawn(self, target, prepare, timeout, share):
        with self.lock:
            if self.sock is None or time.monotonic() < self.quiet_until:
                return None
            request_id = next(self.ids)
            message = {"op": "spawn", "id": request_id, "target": target}
            if prepare is not None:
                message["prepare"] = prepare
            if share:
                message["share"] = True
            data = json.dumps(message).encode()
            stdin_read, stdin_write = os.pipe()
            stdout_read, stdout_write = os.pipe()
            ours = [stdin_write, stdout_read]
            try:
                try:
                    socket.send_fds(self.sock, [data], [stdin_read, stdout_write])
                finally:
                    os.close(stdin_read)  # the zygote has its copies, in the message
                    os.close(stdout_write)
                reply, fds = self._reply(request_id, time.monotonic() + timeout)
            except BlockingIOError:  # its socket is full: the zygote reads nothing
                reply, fds = None, []
            except OSError:
                self._lost()
                reply, fds = None, []
            if reply is None and self.sock is not None:
                log.warning(
                    "the zygote did not answer a spawn within %gs; it is not asked again for %gs",
                    timeout,
                    QUIET_AFTER,
                )
                self.quiet_until = time.monotonic() + QUIET_AFTER
            if reply is None or reply.get("op") != "spawned" or len(fds) != 1:
                if reply is not None and reply.get("op") == "spawn_failed":
                    log.warning("the zygote could not spawn %s: %s", target, reply.get("error"))
                for fd in [*ours, *fds]:
                    os.close(fd)
                return None
            self.watched[reply["pid"]] += 1
            return Helper(self, reply["pid"], fds[0], stdin_write, stdout_read, share)

    def exit_code(self, pid, wait):
        """The code the zygote reports for helper ``pid``, waited for up to ``wait`` seconds."""
        with self.lock:
            deadline = time.monotonic() + wait
            while pid not in self.codes:
                message, fds = self._next(deadline)
                if message is None:
                    break
                self._other(message, fds)
            code = self.codes.get(pid)
            self._unwatch(pid)
            return code

    def unwatch(self, pid):
        with self.lock:
            self._unwatch(pid)

    def _unwatch(self, pid):
        """One Helper of ``pid`` fewer; its code is forgotten with the last."""
        self.watched[pid] -= 1
        if self.watched[pid] <= 0:
            del self.watched[pid]
            self.codes.pop(pid, None)

    def _reply(self, request_id, deadline):
        """The answer to ``request_id``; what comes before it is handled on the way."""
        while True:
            message, fds = self._next(deadline)
            if message is None:
                return None, []
            if message.get("id") == request_id and message.get("op") in ("spawned", "spawn_failed"):
                return message, fds
            self._other(message, fds)

    def _next(self, deadline):
        """The next message and its descriptors; (None, []) at the deadline or once the zygote is gone."""
        while self.sock is not None:
            if not _readable(self.sock.fileno(), max(0.0, deadline - time.monotonic())):
                return None, []
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 1)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                self._lost()
                break
            try:
                message = json.loads(data)
            except ValueError:
                message = None
            if isinstance(message, dict):
                return message, fds
            for fd in fds:
                os.close(fd)
        return None, []

    def _other(self, message, fds):
        """A report for a helper, or the answer to a spawn that gave up waiting: that one is killed."""
        try:
            if message.get("op") == "exited" and message.get("pid") in self.watched:
                self.codes[message["pid"]] = message.get("code")
            elif message.get("op") == "spawned" and fds:
                log.warning(
                    "the zygote forked helper %s after its spawn gave up waiting; killing it",
                    message.get("pid"),
                )
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fds[0], signal.SIGKILL)
        finally:
            for fd in fds:
                os.close(fd)

    def _lost(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def close(self):
        with self.lock:
            self._lost()


def _readable(fd, timeout):
    """Whether ``fd`` is readable within ``timeout`` seconds (None: however long it takes)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    milliseconds = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return bool(poller.poll(milliseconds))
