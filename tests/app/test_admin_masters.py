"""The admin lists the masters sharing the database, read-only, with the gone ones marked."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from relieve_app.models import RelieveMaster, TaskRecord
from relieve_app.tasks.master import presence
from relieve_app.tasks.master.identity import MasterIdentity

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:relieve_app_relievemaster_changelist")


def register(host, pid, lease):
    me = MasterIdentity(host, pid, datetime(2026, 1, 1, tzinfo=UTC))
    presence.register(me, lease, 4, ["mail"])
    return me


def test_masters_are_listed_with_their_state(admin_client):
    register("web-1", 101, 30)
    register("web-2", 202, -1)  # vanished: its lease ended

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    rows = {row.host: row for row in response.context["cl"].result_list}
    assert (rows["web-1"].gone, rows["web-2"].gone) == (False, True)
    page = response.content.decode()
    assert "gone" in page and "running" in page
    assert "Add master" not in page and "Delete selected" not in page


def test_a_master_cannot_be_changed_or_deleted_by_hand(admin_client):
    me = register("web-1", 101, 30)
    change = reverse("admin:relieve_app_relievemaster_change", args=[me.id])

    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"host": "elsewhere"}).status_code == 403
    delete = reverse("admin:relieve_app_relievemaster_delete", args=[me.id])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert RelieveMaster.objects.get().host == "web-1"


def test_a_gone_master_shows_the_rows_it_held(admin_client):
    gone = register("web-2", 202, -1)
    for status in ("RUNNING", "RUNNING", "SUCCESSFUL"):
        TaskRecord.objects.create(
            task_path="tests.tasks_fixtures.basic.add",
            queue_name="default",
            backend="default",
            status=status,
            owner=gone.id,
            lease_until=timezone.now() - timedelta(seconds=5),
        )

    page = admin_client.get(CHANGELIST).content.decode()
    link = re.search(r'<a href="([^"]*owner=[^"]*)">2</a>', page)
    assert link, page

    held = admin_client.get(link.group(1).replace("&amp;", "&"))
    assert held.status_code == 200
    assert held.context["cl"].result_count == 2
