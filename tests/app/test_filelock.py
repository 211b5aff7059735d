"""One master per SQLite file: the lock names its holder and dies with it."""

import fcntl
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from relieve_app.endpoint import StartupError
from relieve_app.filelock import MasterLock
from relieve_app.identity import MasterIdentity

HOLD = """
import sys, time
from datetime import UTC, datetime
from relieve_app.filelock import MasterLock
from relieve_app.identity import MasterIdentity
MasterLock(sys.argv[1], "db").acquire(MasterIdentity("web-9", 99, datetime.now(UTC)))
print("locked", flush=True)
time.sleep(60)
"""


def me():
    return MasterIdentity("web-1", 1234, datetime.now(UTC))


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    first = MasterLock(tmp_path / "db.lock", tmp_path / "db.sqlite3")
    first.acquire(me())
    with pytest.raises(StartupError, match=r"another relieve master \(host web-1, pid 1234\) already runs"):
        MasterLock(tmp_path / "db.lock", tmp_path / "db.sqlite3").acquire(me())

    first.release()
    again = MasterLock(tmp_path / "db.lock", tmp_path / "db.sqlite3")
    again.acquire(me())
    again.release()


def test_a_killed_holder_leaves_the_lock_free(tmp_path):
    path = tmp_path / "db.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(StartupError, match=r"host web-9, pid 99"):
            MasterLock(path, "db").acquire(me())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()

    lock = MasterLock(path, "db")
    lock.acquire(me())  # the kernel released it with the process
    lock.release()


def test_a_holder_that_has_not_written_yet_is_still_starting(tmp_path):
    path = tmp_path / "db.lock"
    with open(path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StartupError, match=r"\(still starting\)"):
            MasterLock(path, "db").acquire(me())
