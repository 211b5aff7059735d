"""The master's Unix socket: who may own the path, and how requests become replies.

Frames are those of ``relieve_app.pool.framing``. A request is ``{"op": <name>, "args": {...}}``;
its reply is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"type", "message"}}``,
unless the request says ``"reply": false``.
An operation is a ``handle_<op>`` method of the object given as ``operations``; anything else,
and any frame that cannot be read, gets an error reply: bad input never costs the master.
The connections themselves, a burst of them included, are served by ``connections.py``.
"""

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path

from relieve_app.pool.framing import FrameError, encode
from relieve_app.tasks.master.connections import Acceptor
from relieve_app.tasks.master.errors import StartupError

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, one for the NUL


class Endpoint:
    def __init__(self, path, operations, *, client_timeout=10.0):
        self.path = Path(path)
        self.operations = operations
        self.client_timeout = client_timeout
        self.acceptor = None

    def check(self):
        """Everything about the path that can be known before a child starts: fail now, with the fix."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise StartupError(
                f"socket path {self.path} is longer than {MAX_SOCKET_PATH} bytes, the limit of "
                "a Unix socket address; choose a shorter --socket"
            )
        if self.client_timeout <= 0:
            raise StartupError(f"RELIEVE_CLIENT_TIMEOUT must be positive (got {self.client_timeout})")
        _check_folder(self.path.parent)
        if self.path.is_dir():
            raise StartupError(
                f"{self.path} is a folder; --socket (RELIEVE_SOCKET) names the socket file itself, "
                f"e.g. {self.path / 'relieve.sock'}"
            )

    def claim(self):
        """Refuse a path another master answers on; remove a stale socket file."""
        path = self.path
        try:
            with _umask_at_least(0o022):  # nobody else may replace the socket in a folder made here
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            raise StartupError(f"cannot create the socket's folder {path.parent}: {reason}{FIX}") from exc
        if not path.exists() and not path.is_symlink():
            return
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise StartupError(f"{path} exists and is not a socket; remove it or choose another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise StartupError(f"cannot check {path}: {exc}") from exc
            log.info("removing stale socket %s", path)
            path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise StartupError(
            f"another relieve master is already answering on {path}; stop it first or use --socket"
        )

    async def listen(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket is born 0600: only this user may talk to the master
        try:
            sock.bind(str(self.path))
            # The kernel's longest queue: a burst of clients waits there, not in the master's memory.
            sock.listen(socket.SOMAXCONN)
        except OSError as exc:  # what check() could not foresee, e.g. the folder changed meanwhile
            sock.close()
            if exc.errno == errno.EADDRINUSE:  # claim() found it free: someone bound it since
                raise StartupError(
                    f"{self.path} was taken while this master started: another relieve master may "
                    "answer there; stop it first or use --socket"
                ) from exc
            raise StartupError(f"cannot listen on {self.path}: {exc.strerror or exc}{FIX}") from exc
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        sock.setblocking(False)
        self.acceptor = Acceptor(asyncio.get_running_loop(), sock, self.answer, self.client_timeout)
        self.acceptor.start()

    def close(self):
        if self.acceptor is not None:
            self.acceptor.close()
            self.acceptor = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    def answer(self, frame):
        """The framed reply to send for ``frame``; None for a request that wants none."""
        reply = self.reply(frame)
        # A client that waits for no answer (``client.announce``) may be gone already.
        if isinstance(frame, dict) and frame.get("reply") is False:
            return None
        try:
            return encode(reply)
        except FrameError as exc:
            return encode(error("ReplyTooLarge", str(exc)))

    def reply(self, frame):
        if isinstance(frame, FrameError):
            return error("ProtocolError", str(frame))
        op, args = frame.get("op"), frame.get("args", {})
        valid = isinstance(op, str) and op.isidentifier()
        handler = getattr(self.operations, f"handle_{op}", None) if valid else None
        if handler is None:
            return error("UnknownOperation", f"unknown operation {op!r}"[:200])
        if not isinstance(args, dict):
            return error("BadArguments", "args must be an object")
        try:
            return {"ok": True, "result": handler(**args)}
        except (TypeError, ValueError) as exc:
            return error("BadArguments", f"{op}: {exc}"[:500])
        except Exception as exc:  # a bug in a handler costs this reply, not the connection
            log.exception("operation %s failed", op)
            return error("InternalError", f"{op}: {type(exc).__name__}: {exc}"[:500])


FIX = "; fix that or choose another --socket (RELIEVE_SOCKET)"


def _check_folder(folder):
    """The socket's folder is a folder this user may write and search, or can be created."""
    existing = next(path for path in (folder, *folder.parents) if os.path.lexists(path))
    if not existing.is_dir():
        what = "a broken link" if not existing.exists() else "a file"
        raise StartupError(f"cannot put the socket in {folder}: {existing} is {what}, not a folder{FIX}")
    if not os.access(existing, os.W_OK | os.X_OK):
        user = f"this user (uid {os.geteuid()})"
        if existing == folder:
            raise StartupError(f"the socket's folder {folder} is not writable by {user}{FIX}")
        raise StartupError(
            f"cannot create the socket's folder {folder}: {existing} is not writable by {user}{FIX}"
        )


def error(kind, message):
    # A message may quote the client's input: lone surrogates from JSON escapes are not UTF-8.
    message = message.encode("utf-8", "backslashreplace").decode()
    return {"ok": False, "error": {"type": kind, "message": message}}


@contextlib.contextmanager
def _umask_at_least(mask):
    previous = os.umask(mask)
    os.umask(previous | mask)
    try:
        yield
    finally:
        os.umask(previous)
