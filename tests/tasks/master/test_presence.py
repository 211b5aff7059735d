"""A master's row: registered, renewed, gone by the database's clock, forgotten a day later."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from relieve_app.models import RelieveMaster
from relieve_app.tasks.master import presence
from relieve_app.tasks.master.identity import MasterIdentity

pytestmark = pytest.mark.django_db


def identity(pid=4242, host="web-1"):
    return MasterIdentity(host=host, pid=pid, started_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))


def test_the_id_names_host_pid_and_start():
    assert identity().id == "web-1:4242:20260102T030405.678901Z"
    assert str(identity()) == "host web-1, pid 4242"
    assert MasterIdentity.current("web-2").host == "web-2"


def test_register_then_heartbeat_renews_the_lease():
    me = identity()
    presence.register(me, 30, 4, ["mail"])
    row = RelieveMaster.objects.with_gone().get()
    assert (row.host, row.pid, row.children, row.queues, row.gone) == ("web-1", 4242, 4, ["mail"], False)
    assert timedelta(seconds=29) < row.expires_at - row.heartbeat_at <= timedelta(seconds=31)

    RelieveMaster.objects.update(heartbeat_at=row.heartbeat_at - timedelta(minutes=1))
    assert presence.heartbeat(me, 30, 3, ["mail"]) is True
    renewed = RelieveMaster.objects.get()
    assert renewed.heartbeat_at > row.heartbeat_at - timedelta(minutes=1) and renewed.children == 3


def test_a_lease_that_ran_out_is_gone():
    presence.register(identity(1), 30, 1, ["mail"])
    presence.register(identity(2), -1, 1, ["mail"])  # its lease ended a second ago, by the database

    assert list(RelieveMaster.objects.gone().values_list("pid", flat=True)) == [2]
    assert list(RelieveMaster.objects.live().values_list("pid", flat=True)) == [1]


def test_a_missing_row_is_registered_again_by_the_heartbeat():
    assert presence.heartbeat(identity(), 30, 2, ["mail"]) is False
    assert RelieveMaster.objects.get().children == 2


def test_masters_gone_for_a_day_are_forgotten_and_leave_removes_the_row():
    presence.register(identity(1), 30, 1, ["mail"])
    presence.register(identity(2), 30, 1, ["mail"])
    RelieveMaster.objects.filter(pid=2).update(expires_at=timezone.now() - timedelta(days=2))

    presence.heartbeat(identity(1), 30, 1, ["mail"])
    assert list(RelieveMaster.objects.values_list("pid", flat=True)) == [1]
    presence.leave(identity(1))
    assert not RelieveMaster.objects.exists()
