"""The master's zygote (RELIEVE_PRELOAD): what its children must not get from it, and its end."""

import signal
from pathlib import Path

import pytest
from django.tasks import TaskResultStatus

from relieve_app.pool.shared_image import IMMORTAL
from tests.e2e.conftest import wait_until
from tests.e2e.test_tasks import finished
from tests.pool.conftest import IMMORTAL_HERE
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.e2e


def parent_of(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"  # a zombie is gone for our purpose


def test_a_connection_the_task_module_opens_on_import_stays_out_of_the_forked_children(master, tmp_path):
    """One connection shared by the zygote's children would mix their queries on one socket."""
    connections = tmp_path / "connections.txt"
    master.env.update(
        CONNECTIONS_FILE=str(connections),
        RELIEVE_TASK="tests.tasks_fixtures.connects_at_import:Runner",
    )
    master.start(workers=1)
    lines = lambda: connections.read_text().split("\n")[:-1] if connections.exists() else []  # noqa: E731
    wait_until(lambda: len(lines()) == 2, message="both children started")  # one per queue
    for line in lines():
        imported_by, pid, connected = line.split()
        assert imported_by != pid, "imported by the zygote, not by the child"
        assert connected == "False"


def test_the_zygote_leaves_with_a_killed_master_and_the_children_leave_on_their_own(master):
    master.start(workers=1)
    children = [c["pid"] for c in master.status()["children"]]
    zygote = parent_of(children[0])
    assert zygote != master.process.pid and all(parent_of(pid) == zygote for pid in children)
    master.stop(signal.SIGKILL)
    wait_until(lambda: not alive(zygote), timeout=10, message="the zygote to exit")
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=10, message="the orphans to exit")


@pytest.mark.parametrize("immortal", ["True", "False"])
def test_what_the_master_loaded_is_immortal_in_the_children_unless_turned_off(master, immortal):
    """RELIEVE_PRELOAD_IMMORTAL reaches the fork of the first zygote: a child that takes references
    to Django's own functions then leaves their pages shared, or copies them."""
    master.env["RELIEVE_PRELOAD_IMMORTAL"] = immortal
    master.start(workers=1)
    result = finished(basic.count_of_django_setup.enqueue())
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert (result.return_value == IMMORTAL) is (immortal == "True" and IMMORTAL_HERE)


def command_line(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_the_zygote_is_forked_from_the_master_itself_so_they_share_what_django_loaded(master):
    master.start(workers=1)
    children = [c["pid"] for c in master.status()["children"]]
    zygote = parent_of(children[0])
    assert parent_of(zygote) == master.process.pid
    # Forked, not started: the master's own command line, and its pages until either writes them.
    assert command_line(zygote) == command_line(master.process.pid)
    assert "zygote started" in master.output()
