"""The master's zygote (RELIEVE_PRELOAD): what its children must not get from it, and its end."""

import pytest

from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e


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
