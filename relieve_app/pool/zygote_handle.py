"""The parent's handle on a zygote (``zygote.py``), and the process it hands back for each child.

``Zygote(preload)`` starts ``python -m relieve_app.pool.zygote`` on first use and asks it for
children; ``spawn`` returns a ``ZygoteChild``, which looks like the ``asyncio.subprocess.Process`` a
cold start gives (``pid``, ``returncode``, ``wait()``, ``send_signal``, ``stdout``/``stderr``), so
a ScriptTask treats both alike.

A parent that has loaded what its children need can instead fork its first zygote from itself,
``fork_zygote``, while it is one thread with no event loop: that zygote and every child it forks
then share the parent's own pages, rather than each interpreter holding a copy of Django. Later
zygotes (after a reload, or a death) are started fresh.

A child's exit is seen by its pidfd (``os.pidfd_open`` + ``loop.add_reader``): it is seen even if
the zygote, its parent, died meanwhile. The exit code is the one the zygote reports when it reaps
the child; if the zygote is gone and cannot report it, ``returncode`` is ``None``.

A zygote that died is started again by the next ``spawn`` (a warning says so). One that cannot start,
or cannot fork, raises ``ZygoteUnavailable``; so does a fork not answered within ``FORK_TIMEOUT``,
and the child the zygote forks for it later is killed (its task started cold meanwhile). After a
failed start, spawns fail at once for ``RETRY_AFTER`` seconds rather than each waiting for another
failure. ``restart()`` (a code reload)
starts a new zygote for the children to come; the old one stays until its last child is gone,
so their exit codes are still reported, then exits without touching them.
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
import threading
import time
import traceback
from pathlib import Path

from . import shared_image, warm_up, zygote
from .errors import RelieveError
from .pidfd import SignalledByPidfd
from .zygote import IMMORTAL_ENV, MAX_MESSAGE, PRELOAD_ENV, ZYGOTE_FD_ENV

log = logging.getLogger(__name__)

ENGINE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds relieve_app/
START_TIMEOUT = 60.0  # seconds for the preloads (Django's setup on a slow, busy machine)
FORK_TIMEOUT = 10.0
REPORT_WAIT = 2.0  # seconds a dead child's code may take to arrive from a living zygote
STOP_TIMEOUT = 5.0
RETRY_AFTER = 30.0  # seconds without a new start after one failed
STREAM_LIMIT = 2**16  # as asyncio.subprocess's pipes


class ZygoteUnavailable(RelieveError):
    """No zygote could fork this child: start it cold."""


class ZygoteChild(SignalledByPidfd):
    """A child forked by a zygote, with the face of an ``asyncio.subprocess.Process``."""

    def __init__(self, generation, pid):
        self.pid = pid
        self.returncode = None
        self.stdout = None
        self.stderr = None
        self._generation = generation
        self._loop = asyncio.get_running_loop()
        self._code = self._loop.create_future()  # from the zygote's report
        self._exited = self._loop.create_future()
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone and reaped: only the report can tell its code
            self._pidfd = None
            self._settle()
        else:
            self._loop.add_reader(self._pidfd, self._gone)

    def reported(self, code):
        if not self._code.done():
            self._code.set_result(code)

    def orphaned(self):
        """The zygote is gone: no code will come."""
        self.reported(None)

    def _gone(self):
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._settle()

    def _settle(self):
        task = asyncio.ensure_future(self._settled())
        task.add_done_callback(lambda _t: None)

    async def _settled(self):
        code = None
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(asyncio.shield(self._code), REPORT_WAIT)
        self.returncode = code
        self._generation.forget(self.pid)
        if not self._exited.done():
            self._exited.set_result(code)

    @property
    def exited(self):
        return self._exited.done()

    async def wait(self):
        return await asyncio.shield(self._exited)


class Generation:
    """One zygote process, its socket and the children it forked."""

    def __init__(self, process, sock):
        self.process = process
        self.sock = sock
        self.children = {}  # pid -> ZygoteChild not yet exited
        self.pending = {}  # request id -> future of ZygoteChild
        self.ready = asyncio.get_running_loop().create_future()
        self.retired = False
        self._ids = itertools.count(1)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read)

    @property
    def alive(self):
        return self.sock is not None and self.process.returncode is None

    def _read(self):
        while self.sock is not None:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            try:
                message = json.loads(data)
            except ValueError:
                log.error("the zygote sent something that is not JSON: %r", data[:200])
                continue
            self._on_message(message)

    def _on_message(self, message):
        op = message.get("op")
        if op == "ready":
            if not self.ready.done():
                self.ready.set_result(message)
        elif op == "forked":
            future = self.pending.pop(message.get("id"), None)
            if future is None or future.done():
                _undo_late_fork(message["pid"])
                return
            child = ZygoteChild(self, message["pid"])
            self.children[child.pid] = child
            if future is not None and not future.done():
                future.set_result(child)
        elif op == "fork_failed":
            future = self.pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_exception(ZygoteUnavailable(f"the zygote could not fork: {message.get('error')}"))
        elif op == "exit":
            child = self.children.get(message.get("pid"))
            if child is not None:
                child.reported(message.get("code"))

    def forget(self, pid):
        self.children.pop(pid, None)
        if self.retired and not self.children:
            self.close()

    def request(self, message, fds):
        """Send a fork request; returns a future of its ZygoteChild."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            socket.send_fds(self.sock, [json.dumps({**message, "id": request_id}).encode()], fds)
        except OSError as exc:
            self.pending.pop(request_id, None)
            raise ZygoteUnavailable(f"the zygote cannot be reached: {exc}") from exc
        return future

    def close(self):
        """Close our end: the zygote exits and leaves its children be."""
        if self.sock is None:
            return
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        gone = ZygoteUnavailable("the zygote went away")
        for future in [*self.pending.values(), self.ready]:
            if not future.done():
                future.set_exception(gone)
                future.exception()  # its waiter, if any, sees it; none waiting is no error
        self.pending.clear()
        for child in list(self.children.values()):
            child.orphaned()

    def retire(self):
        self.retired = True
        if not self.children:
            self.close()


class Preforked(SignalledByPidfd):
    """A zygote this process forked from itself (``fork_zygote``), with the face of the
    ``asyncio.subprocess.Process`` a started one has: ``pid``, ``returncode``, ``wait()``, ``kill()``.

    It is this process's own child, held by a pidfd from the fork on, so its pid names nobody else
    until it is reaped here."""

    def __init__(self, pid, sock):
        self.pid = pid
        self.sock = sock
        self.returncode = None
        self._pidfd = os.pidfd_open(pid)
        self._exited = None

    @property
    def attached(self):
        return self._exited is not None

    def attach(self):
        """Watch for its exit from the running loop (it was forked before there was one)."""
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        loop.add_reader(self._pidfd, self._reap)
        self._reap()

    def _reap(self):
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        self.returncode = os.waitstatus_to_exitcode(status)
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._exited.set_result(self.returncode)

    async def wait(self):
        return await asyncio.shield(self._exited)

    def discard(self):
        """Never used (the parent did not start): close our end, so the zygote exits, and reap it."""
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        os.close(self._pidfd)
        self._pidfd = None


def fork_zygote(preload, immortal=True):
    """Fork a zygote from this process as it is now; None when that would not be safe (more than
    one thread: a fork copies only the calling one, and any lock another holds stays held) or the
    fork fails, and the zygote is then started fresh when first needed.

    Call it before any thread, event loop or database connection exists: the zygote keeps what
    this process has open, and a connection shared by two processes corrupts both sessions.
    ``immortal``: make this process's objects immortal first (``shared_image.py``), so that neither
    side copies their pages by counting references to them. The warm-ups run first (``warm_up.py``),
    so that the zygote's image holds their work."""
    warm_up.run()
    if threading.active_count() != 1:
        log.info("the zygote starts fresh: %s threads run here", threading.active_count())
        return None
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent.set_inheritable(False)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the zygote would write what was buffered here once more
    # Else this process's collections and reference counts would copy every page the zygote shares.
    shared_image.settle(immortal)
    try:
        pid = os.fork()
    except OSError as exc:
        log.warning("the zygote starts fresh: fork failed: %s", exc)
        parent.close()
        child.close()
        return None
    if pid == 0:
        code = 1
        try:
            os.setsid()  # a terminal's Ctrl-C is the parent's to handle, as for a started zygote
            parent.close()
            zygote.run(child, list(preload), immortal)  # never returns
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    child.close()
    parent.setblocking(False)
    return Preforked(pid, parent)


class Zygote:
    """A warm process that forks children with ``preload`` already imported; see the module docstring."""

    def __init__(
        self,
        preload=(),
        *,
        env=None,
        python_path=(),
        start_timeout=START_TIMEOUT,
        preforked=None,
        immortal=True,
    ):
        self.preload = list(preload)
        self.immortal = immortal  # the zygote makes what it preloads immortal (shared_image.py)
        self.preforked = preforked  # a fork_zygote() zygote, the first one used
        self.env = dict(env or {})
        # As a cold child's PYTHONPATH: this engine first, then the parent's folder.
        self.python_path = list(python_path) or [ENGINE_ROOT, os.getcwd()]
        self.start_timeout = start_timeout
        self.current = None
        self.retired = []
        self.starts = 0
        self._lock = asyncio.Lock()
        self._failed_at = None

    @property
    def pid(self):
        return self.current.process.pid if self.current is not None and self.current.alive else None

    async def spawn(self, *, env, cwd=None, path=(), channel, capture_output=False):
        """Fork a child running the container; returns its ZygoteChild, or raises ZygoteUnavailable.

        ``channel`` is the child's end of its socketpair (the caller closes it); ``env`` is the
        child's whole environment; ``path`` goes first on the child's ``sys.path``, as the folders
        of a cold child's PYTHONPATH do.
        """
        generation = await self._running()
        fds = [channel.fileno()]
        readers = []
        if capture_output:
            for _stream in ("stdout", "stderr"):
                read_end, write_end = os.pipe()
                os.set_inheritable(read_end, False)
                readers.append(read_end)
                fds.append(write_end)
        message = {"op": "fork", "env": env, "cwd": os.fspath(cwd) if cwd else None, "path": list(path)}
        if capture_output:
            message["streams"] = ["stdout", "stderr"]
        try:
            future = generation.request(message, fds)
            try:
                child = await asyncio.wait_for(future, FORK_TIMEOUT)
            except TimeoutError:
                raise ZygoteUnavailable(f"the zygote did not fork within {FORK_TIMEOUT:g}s") from None
        except BaseException:
            for fd in readers:
                os.close(fd)
            raise
        finally:
            for fd in fds[1:]:
                os.close(fd)
        if readers:
            child.stdout, child.stderr = [await _stream_reader(fd) for fd in readers]
        return child

    async def _running(self):
        async with self._lock:
            if self.current is not None and self.current.alive:
                return self.current
            if self.current is not None:
                code = self.current.process.returncode
                log.warning(
                    "the zygote (pid %s) died (code %s); starting a new one", self.current.process.pid, code
                )
                self.current.close()
                self.current = None
            if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_AFTER:
                raise ZygoteUnavailable("the zygote could not start a moment ago")
            try:
                self.current = await self._start()
            except ZygoteUnavailable:
                self._failed_at = time.monotonic()
                raise
            self._failed_at = None
            return self.current

    async def _start(self):
        if self.preforked is not None:
            preforked, self.preforked = self.preforked, None
            preforked.attach()
            return await self._ready(Generation(preforked, preforked.sock))
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent.set_inheritable(False)
        env = {
            **os.environ,
            **self.env,
            ZYGOTE_FD_ENV: str(child.fileno()),
            PRELOAD_ENV: json.dumps(self.preload),
            IMMORTAL_ENV: "1" if self.immortal else "0",
        }
        env["PYTHONSAFEPATH"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*self.python_path, env.get("PYTHONPATH", "")]))
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relieve_app.pool.zygote",
                env=env,
                pass_fds=(child.fileno(),),
                start_new_session=True,  # a terminal's Ctrl-C is the master's to handle, as for children
            )
        except OSError as exc:
            parent.close()
            raise ZygoteUnavailable(f"the zygote could not be started: {exc}") from exc
        finally:
            child.close()
        parent.setblocking(False)
        return await self._ready(Generation(process, parent))

    async def _ready(self, generation):
        process = generation.process
        try:
            ready = await asyncio.wait_for(asyncio.shield(generation.ready), self.start_timeout)
        except (TimeoutError, ZygoteUnavailable) as exc:
            generation.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise ZygoteUnavailable(f"the zygote did not start: {exc or 'no answer in time'}") from None
        self.starts += 1
        for item, error in ready.get("failed", []):
            log.warning("the zygote could not preload %s: %s; children load it themselves", item, error)
        if ready.get("threads", 1) != 1:
            log.warning("the zygote runs %s threads: a fork copies only the calling one", ready["threads"])
        log.info(
            "zygote started (pid %s) with %s preloaded", process.pid, ", ".join(self.preload) or "the engine"
        )
        return generation

    async def restart(self):
        """A new zygote for the children to come (their code reloaded); the old one leaves once its
        children have. Raises ZygoteUnavailable when the new one cannot start."""
        async with self._lock:
            self._retire_current()
            self._failed_at = None
        await self._running()

    async def stop(self, timeout=STOP_TIMEOUT):
        """Close every zygote; children still running are left running."""
        async with self._lock:
            self._retire_current()
            generations, self.retired = self.retired, []
            for generation in generations:
                generation.close()
            for generation in generations:
                try:
                    await asyncio.wait_for(generation.process.wait(), timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        generation.process.kill()
                    await generation.process.wait()

    def _retire_current(self):
        if self.current is not None:
            self.current.retire()
            self.retired.append(self.current)
            self.current = None
        self.retired = [g for g in self.retired if g.sock is not None or g.process.returncode is None]


def _undo_late_fork(pid):
    """A child forked after its spawn stopped waiting and started the task cold: killed, or it
    would load the task's script before it found its channel's other end closed. Its report of
    ``forked`` comes before any of its ``exit``: a pid the zygote has reaped is not taken again
    until the kernel's pids wrap around."""
    log.warning("the zygote forked pid %s after its spawn gave up waiting; killing it", pid)
    with contextlib.suppress(ProcessLookupError):
        pidfd = os.pidfd_open(pid)
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)


async def _stream_reader(fd):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader
