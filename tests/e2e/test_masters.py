"""Masters are visible in the database: registered, kept alive by a heartbeat, gone when they vanish.

And on SQLite there is only ever one: a second `runrelieve` on the same file is refused.
"""

import os
import signal
import time

import pytest
from django.db import connection
from django.tasks import TaskResultStatus

from relieve_app.models import RelieveMaster, TaskEvent
from relieve_app.tasks import client
from tests.e2e.conftest import wait_until
from tests.e2e.test_tasks import child_pid, finished, running
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.e2e

only_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the one-master lock is SQLite's; PostgreSQL takes several masters"
)


@pytest.fixture
def fast_heartbeat(master):
    master.env.update(RELIEVE_HEARTBEAT="0.2", RELIEVE_LEASE="1", RELIEVE_HOST="web-1")
    return master


def test_a_master_registers_renews_its_lease_and_leaves_on_sigterm(fast_heartbeat):
    master = fast_heartbeat
    master.start(workers=2)
    row = RelieveMaster.objects.get()
    assert (row.host, row.pid, row.children) == ("web-1", master.process.pid, 4)  # 2 per queue
    assert row.queues == ["default", "mail"]
    assert row.id == master.status()["owner"]
    assert row.id.startswith(f"web-1:{master.process.pid}:")

    first_beat = row.heartbeat_at
    wait_until(
        lambda: RelieveMaster.objects.get().heartbeat_at > first_beat, timeout=30, message="a heartbeat"
    )
    assert not RelieveMaster.objects.with_gone().get().gone

    assert master.stop() == 0
    assert not RelieveMaster.objects.exists()


def test_a_killed_master_shows_as_gone_once_its_lease_ran_out(fast_heartbeat):
    master = fast_heartbeat
    master.start(workers=1)
    master.stop(signal.SIGKILL)

    wait_until(lambda: RelieveMaster.objects.gone().exists(), timeout=30, message="the master gone")
    row = RelieveMaster.objects.with_gone().get()
    assert row.gone and row.pid == master.process.pid
    assert not RelieveMaster.objects.live().exists()


def test_the_next_master_on_a_killed_masters_socket_takes_its_tasks_at_once(master, tmp_path):
    """Its lease need not run out: the lock beside the socket says the first master is dead."""
    master.env.update(RELIEVE_LEASE="600", RELIEVE_HEARTBEAT="0.5")  # waiting for the lease: 10 minutes
    master.start(workers=1, queues=["default=1"])
    first = master.status()["owner"]
    gate = tmp_path / "gate"
    result = running(basic.wait_for_file.enqueue(str(gate)))
    child = child_pid(master, "default0")
    os.kill(child, signal.SIGSTOP)  # it dies with its master, as on a crash of the machine:
    master.stop(signal.SIGKILL)  # frozen, it cannot hold the row for itself (RELIEVE_FAILSAFE)
    os.kill(child, signal.SIGKILL)
    gate.touch()

    restarted = time.monotonic()
    master.start(workers=1, queues=["default=1"])
    result = finished(result, timeout=60)

    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 2
    assert time.monotonic() - restarted < 60
    takeover = TaskEvent.objects.get(task_result_id=result.id, event="takeover")
    assert takeover.payload["from"] == first
    assert f"master {first} ended without stopping" in master.output()


@only_sqlite
def test_a_second_master_on_the_same_sqlite_file_is_refused_naming_the_first(master, tmp_path):
    master.env["RELIEVE_HOST"] = "web-1"
    master.start()

    second = master.run_once("--socket", str(tmp_path / "other.sock"))

    assert second.returncode == 1
    assert f"another relieve master (host web-1, pid {master.process.pid}) already runs" in second.stderr
    assert "SQLite" in second.stderr
    assert client.request("ping")["workers"] == 4  # the first one is untouched
    assert RelieveMaster.objects.count() == 1


@only_sqlite
def test_the_next_master_starts_once_the_first_was_killed(master, tmp_path):
    master.start(workers=1)
    master.stop(signal.SIGKILL)  # the kernel drops its lock with the process

    assert master.start(workers=1)["workers"] == 2  # one per queue
