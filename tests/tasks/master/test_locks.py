"""One master per lock file: the lock names its holder, dies with it, and names a holder that crashed."""

import fcntl
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from relieve_app.tasks.master.errors import StartupError
from relieve_app.tasks.master.identity import MasterIdentity
from relieve_app.tasks.master.locks import MasterLock, socket_refusal, sqlite_refusal

HOLD = """
import sys, time
from datetime import UTC, datetime
from relieve_app.tasks.master.locks import MasterLock, sqlite_refusal
from relieve_app.tasks.master.identity import MasterIdentity
MasterLock(sys.argv[1], sqlite_refusal("db")).acquire(MasterIdentity("web-9", 99, datetime.now(UTC)))
print("locked", flush=True)
time.sleep(60)
"""


def me():
    return MasterIdentity("web-1", 1234, datetime.now(UTC))


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    first = MasterLock(tmp_path / "db.lock", sqlite_refusal(tmp_path / "db.sqlite3"))
    first.acquire(me())
    with pytest.raises(StartupError, match=r"another relieve master \(host web-1, pid 1234\) already runs"):
        MasterLock(tmp_path / "db.lock", sqlite_refusal(tmp_path / "db.sqlite3")).acquire(me())

    first.release()
    again = MasterLock(tmp_path / "db.lock", sqlite_refusal(tmp_path / "db.sqlite3"))
    again.acquire(me())
    again.release()


def test_a_killed_holder_leaves_the_lock_free(tmp_path):
    path = tmp_path / "db.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(StartupError, match=r"host web-9, pid 99"):
            MasterLock(path, sqlite_refusal("db")).acquire(me())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()

    lock = MasterLock(path, sqlite_refusal("db"))
    predecessor = lock.acquire(me())  # the kernel released it with the process
    assert predecessor is not None and predecessor.startswith("web-9:99:")  # it ended without stopping
    lock.release()


def test_a_holder_that_released_the_lock_is_no_predecessor(tmp_path):
    path = tmp_path / "socket.lock"
    first = MasterLock(path, socket_refusal("relieve.sock"))
    assert first.acquire(me()) is None
    first.release()

    second = MasterLock(path, socket_refusal("relieve.sock"))
    assert second.acquire(me()) is None
    with pytest.raises(StartupError, match=r"\(host web-1, pid 1234\) already runs on the socket relieve"):
        MasterLock(path, socket_refusal("relieve.sock")).acquire(me())
    second.release()


def test_a_holder_that_has_not_written_yet_is_still_starting(tmp_path):
    path = tmp_path / "db.lock"
    with open(path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StartupError, match=r"\(still starting\)"):
            MasterLock(path, sqlite_refusal("db")).acquire(me())


def test_a_start_that_fails_leaves_named_only_the_master_found_dead(tmp_path):
    path = tmp_path / "socket.lock"
    path.write_text(json.dumps({"id": "web-9:99:killed", "host": "web-9", "pid": 99}))  # left by a kill

    failed = MasterLock(path, socket_refusal("relieve.sock"))
    assert failed.acquire(me()) == "web-9:99:killed"
    failed.give_back()  # its start failed: it held nothing

    again = MasterLock(path, socket_refusal("relieve.sock"))
    assert again.acquire(me()) == "web-9:99:killed"  # still known dead, so still taken over at once
    again.release()

    fresh = MasterLock(path, socket_refusal("relieve.sock"))
    assert fresh.acquire(me()) is None
    fresh.give_back()
    last = MasterLock(path, socket_refusal("relieve.sock"))
    assert last.acquire(me()) is None
    last.release()
