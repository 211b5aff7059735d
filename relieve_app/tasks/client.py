"""What the web side uses to reach the relieve master over its Unix socket.

Requests in the frames of ``relieve_app.pool.framing``, one or several per connection::

    request:  {"op": "submit", "args": {"id": 42, "queue": "mail"}}
    reply:    {"ok": true, "result": {"queued": 42}}
          or  {"ok": false, "error": {"type": "UnknownOperation", "message": "..."}}

A request with ``"reply": false`` gets no reply (``announce``).

The whole round trip (connect, send, replies) is bounded by RELIEVE_ACK_TIMEOUT, so a view never
waits longer than that for a master that is down, busy or hung. Tasks committed together are
handed over together, on one connection (``submit_many``). ``enqueue()`` waits for no reply at
all (``announce``): the master's sweep is the safety net for what it did not take.
"""

import contextlib
import logging
import socket
import time

from relieve_app.conf import app_settings
from relieve_app.pool.framing import FrameDecoder, FrameError, encode

logger = logging.getLogger(__name__)


class ClientError(Exception):
    """The master did not do what was asked."""


class MasterUnavailable(ClientError):
    """No usable answer: socket missing or refused, timeout, connection closed, or a bad frame."""


class MasterError(ClientError):
    """The master answered and refused: it keeps the type and message it sent."""

    def __init__(self, type, message):
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


def request(op, *, timeout=None, socket_path=None, **args):
    """Send one operation to the master at ``socket_path`` (RELIEVE_SOCKET) and return its result,
    within ``timeout`` (RELIEVE_ACK_TIMEOUT)."""
    path = socket_path or app_settings.RELIEVE_SOCKET
    [reply] = exchange([{"op": op, "args": args}], timeout=timeout, socket_path=path)
    return _result(reply, path)


@contextlib.contextmanager
def _sent(path, frames, deadline):
    """A connection to the master's socket with ``frames`` written on it, each step by ``deadline``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_remaining(deadline))
        sock.connect(path)
        sock.settimeout(_remaining(deadline))
        sock.sendall(frames)
        yield sock


def exchange(requests, *, timeout=None, socket_path=None):
    """Send requests over one connection and return the master's replies, in order, unread."""
    path = socket_path or app_settings.RELIEVE_SOCKET
    timeout = app_settings.RELIEVE_ACK_TIMEOUT if timeout is None else timeout
    frames = b"".join(encode(request) for request in requests)
    deadline = time.monotonic() + timeout
    try:
        with _sent(path, frames, deadline) as sock:
            return _receive(sock, deadline, len(requests))
    except TimeoutError:
        raise MasterUnavailable(f"no answer from the relieve master at {path} within {timeout}s") from None
    except OSError as exc:
        raise MasterUnavailable(f"cannot reach the relieve master at {path}: {exc}") from exc


def submit(task_id, **hints):
    """Hand a committed task to the master; False (never an exception) when it did not take it.

    ``hints`` (queue, priority, run_after as a Unix time) let the master order it without reading
    the row first; they are left out when they are the defaults.
    """
    return submit_many([(task_id, hints)]) == 1


def submit_many(tasks):
    """Hand ``(task_id, hints)`` pairs to the master over one connection; how many it took.

    Never raises: a task the master did not take stays READY in the database for its sweep.
    """
    if not tasks:
        return 0
    try:
        replies = exchange([{"op": "submit", "args": {"id": task_id, **hints}} for task_id, hints in tasks])
    except ClientError as exc:
        _not_handed([task_id for task_id, _hints in tasks], exc)
        return 0
    taken = 0
    for (task_id, _hints), reply in zip(tasks, replies, strict=True):
        try:
            _result(reply, app_settings.RELIEVE_SOCKET)
        except ClientError as exc:
            _not_handed([task_id], exc)
        else:
            taken += 1
    return taken


def announce(tasks):
    """Tell the master of committed ``(task_id, hints)`` pairs without waiting for its answer.

    A request then costs one connect and one write, however busy the master is. Whether the
    master took them is not known here: what it did not take stays READY for its sweep. Returns
    whether the frames were written; never raises.
    """
    if not tasks:
        return False
    path = app_settings.RELIEVE_SOCKET
    frames = b"".join(
        encode({"op": "submit", "args": {"id": task_id, **hints}, "reply": False}) for task_id, hints in tasks
    )
    deadline = time.monotonic() + app_settings.RELIEVE_ACK_TIMEOUT
    try:
        with _sent(path, frames, deadline):
            pass
    except TimeoutError:
        _not_handed([task_id for task_id, _hints in tasks], "no room on its socket in time")
        return False
    except OSError as exc:
        _not_handed([task_id for task_id, _hints in tasks], f"cannot reach it: {exc}")
        return False
    return True


def _not_handed(ids, exc):
    if len(ids) == 1:
        tasks, verb, rest = f"Task {ids[0]}", "was", "it stays"
    else:
        tasks, verb, rest = f"Tasks {ids[0]} and {len(ids) - 1} more", "were", "they stay"
    logger.warning(
        "%s %s not handed to the relieve master at %s (%s); %s queued for the master's sweep.",
        tasks,
        verb,
        app_settings.RELIEVE_SOCKET,
        exc,
        rest,
    )


def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _receive(sock, deadline, count):
    decoder = FrameDecoder()
    replies = []
    while len(replies) < count:
        sock.settimeout(_remaining(deadline))
        data = sock.recv(65536)
        if not data:
            raise MasterUnavailable("the relieve master closed the connection without answering")
        replies += decoder.feed(data)
    return replies[:count]


def _result(reply, path):
    if isinstance(reply, FrameError):
        raise MasterUnavailable(f"unreadable reply from the relieve master at {path}: {reply}")
    if reply.get("ok") is True:
        return reply.get("result")
    error = reply.get("error")
    if reply.get("ok") is False and isinstance(error, dict):
        raise MasterError(str(error.get("type", "Error")), str(error.get("message", "")))
    raise MasterUnavailable(f"malformed reply from the relieve master at {path}: {reply!r:.200}")
