"""What the web side uses to reach the relieve master over its Unix socket.

One request per connection, in the frames of ``relieve_app.pool.framing``::

    request:  {"op": "submit", "args": {"id": 42}}
    reply:    {"ok": true, "result": {"queued": 42}}
          or  {"ok": false, "error": {"type": "UnknownOperation", "message": "..."}}

The whole round trip (connect, send, reply) is bounded by RELIEVE_ACK_TIMEOUT, so a view never
waits longer than that for a master that is down, busy or hung.
"""

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
    timeout = app_settings.RELIEVE_ACK_TIMEOUT if timeout is None else timeout
    frame = encode({"op": op, "args": args})
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_remaining(deadline))
            sock.connect(path)
            sock.settimeout(_remaining(deadline))
            sock.sendall(frame)
            reply = _receive(sock, deadline)
    except TimeoutError:
        raise MasterUnavailable(f"no answer from the relieve master at {path} within {timeout}s") from None
    except OSError as exc:
        raise MasterUnavailable(f"cannot reach the relieve master at {path}: {exc}") from exc
    return _result(reply, path)


def submit(outcome_id):
    """Hand a saved MailOutcome to the master; False (never an exception) when it did not take it."""
    try:
        request("submit", id=outcome_id)
    except ClientError as exc:
        logger.warning(
            "Outcome %s was not handed to the relieve master at %s (%s); "
            "it stays queued for the master's sweep.",
            outcome_id,
            app_settings.RELIEVE_SOCKET,
            exc,
        )
        return False
    return True


def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _receive(sock, deadline):
    decoder = FrameDecoder()
    while True:
        sock.settimeout(_remaining(deadline))
        data = sock.recv(65536)
        if not data:
            raise MasterUnavailable("the relieve master closed the connection without answering")
        frames = decoder.feed(data)
        if frames:
            return frames[0]


def _result(reply, path):
    if isinstance(reply, FrameError):
        raise MasterUnavailable(f"unreadable reply from the relieve master at {path}: {reply}")
    if reply.get("ok") is True:
        return reply.get("result")
    error = reply.get("error")
    if reply.get("ok") is False and isinstance(error, dict):
        raise MasterError(str(error.get("type", "Error")), str(error.get("message", "")))
    raise MasterUnavailable(f"malformed reply from the relieve master at {path}: {reply!r:.200}")
