"""One master per lock file: beside an SQLite database, and beside every master's socket.

The operating system drops the lock when the process ends, however it ends, so a killed master
never blocks the next one. The holder writes who it is into the file, so a master refused there
can say which one runs; a graceful stop empties it. A master that finds a name still written
there, once it holds the lock, knows that master ended without stopping: killed, or crashed.
"""

import fcntl
import json
import os

from relieve_app.tasks.master.errors import StartupError


def sqlite_refusal(database):
    return (
        f"another relieve master ({{holder}}) already runs on the SQLite database {database}; "
        "SQLite takes one master per database file: stop that one first, "
        "or use PostgreSQL to run several"
    )


def socket_refusal(socket_path):
    return (
        f"another relieve master ({{holder}}) already runs on the socket {socket_path}; "
        "stop it first or use --socket"
    )


class MasterLock:
    """``refusal`` is the message a second master stops with; ``{holder}`` names the first."""

    def __init__(self, path, refusal):
        self.path = str(path)
        self.refusal = refusal
        self._fd = None
        self._predecessor = None

    def acquire(self, identity):
        """Hold the lock for this process's life; returns the id of a holder that never released it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StartupError(self.refusal.format(holder=holder)) from None
        except OSError as exc:
            os.close(fd)
            raise StartupError(f"cannot lock {self.path}: {exc}") from exc
        predecessor = _read_record(fd).get("id")
        os.ftruncate(fd, 0)
        record = {"id": identity.id, "host": identity.host, "pid": identity.pid}
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        ended = isinstance(predecessor, str) and predecessor != identity.id
        self._predecessor = predecessor if ended else None
        return self._predecessor

    def release(self):
        """A graceful stop: unlock and empty the file, so the next holder finds no one left behind."""
        self._let_go(b"")

    def give_back(self):
        """A start that failed: unlock, leaving named the master found dead here, if any, so the
        next start still takes its rows at once (and this one, which held none, is not named)."""
        self._let_go(json.dumps({"id": self._predecessor}).encode() if self._predecessor else b"")

    def _let_go(self, record):
        """Unlock, but leave the file: unlinking it would let two masters lock two different files."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            if record:
                os.pwrite(self._fd, record, 0)
            os.close(self._fd)
            self._fd = None


def _read_record(fd):
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _read_holder(fd):
    record = _read_record(fd)
    if "host" not in record or "pid" not in record:
        return "still starting"
    return f"host {record['host']}, pid {record['pid']}"
