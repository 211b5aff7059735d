"""One master per SQLite file: an exclusive lock on a file beside the database.

The operating system drops the lock when the process ends, however it ends, so a killed master
never blocks the next one. The holder writes who it is into the file, and a master refused
there can say which one runs.
"""

import fcntl
import json
import os

from .endpoint import StartupError


class MasterLock:
    def __init__(self, path, database):
        self.path = str(path)
        self.database = str(database)
        self._fd = None

    def acquire(self, identity):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StartupError(
                f"another relieve master ({holder}) already runs on the SQLite database {self.database}; "
                "SQLite takes one master per database file: stop that one first, "
                "or use PostgreSQL to run several"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StartupError(f"cannot lock {self.path}: {exc}") from exc
        os.ftruncate(fd, 0)
        record = {"id": identity.id, "host": identity.host, "pid": identity.pid}
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self):
        """Unlock, but leave the file: unlinking it would let two masters lock two different files."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd):
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"host {record['host']}, pid {record['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "still starting"
