"""The "Relieve pool" views: staff only, the state as JSON, charts from the database, the banner."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from relieve_app.models import MailOutcome, TaskEvent, UsageSample
from relieve_app.monitor import dashboard

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:relieve_pool")
STATE = reverse("admin:relieve_pool_state")
CHARTS = reverse("admin:relieve_pool_charts")


def outcome(status, **fields):
    defaults = {"emitter": "a@example.org", "recipient": "me@example.com", "subject": "s", "body": "b" * 40}
    return MailOutcome.objects.create(status=status, **{**defaults, **fields})


def test_only_staff_allowed_to_view_outcomes_get_in(client, master_socket):
    for url in (PAGE, STATE, CHARTS):
        assert client.get(url).status_code == 302  # to the admin's login
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(STATE).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_mailoutcome"))
    assert client.get(STATE).status_code == 200


def test_the_state_without_a_master_still_counts_the_messages(admin_client, master_socket):
    now = timezone.now()
    outcome("sent", sent_at=now - timedelta(seconds=10))
    outcome("sent", sent_at=now - timedelta(minutes=30))
    outcome("failed")
    outcome("queued")

    state = admin_client.get(STATE).json()

    assert state["masters"] == [] and str(master_socket) in state["error"]
    assert state["outcomes"] == {"queued": 1, "sending": 0, "sent": 2, "retrying": 0, "failed": 1}
    assert state["recent"]["minute"] == {"delivered": 1, "failed": 1}
    assert state["recent"]["hour"] == {"delivered": 2, "failed": 1}


def test_the_page_shows_the_banner_and_the_charts(admin_client, master_socket):
    response = admin_client.get(PAGE)
    content = response.content.decode()
    assert response.status_code == 200
    assert 'id="relieve-master-down" class="relieve-banner" role="alert"' in content  # not hidden
    assert content.count('class="relieve-chart"') == 3
    assert "relieve_app/pool.js" in content and "relieve-initial-state" in content


def test_the_banner_is_hidden_while_a_master_answers(admin_client, fake_master):
    fake_master()
    content = admin_client.get(reverse("admin:relieve_app_mailoutcome_changelist")).content.decode()
    assert 'id="relieve-master-down" class="relieve-banner" hidden' in content
    assert PAGE in content  # the link to the pool page


def test_every_relieve_admin_page_has_the_banner_and_the_link(admin_client, master_socket):
    row = outcome("failed")
    pages = [
        reverse("admin:relieve_app_mailoutcome_changelist"),
        reverse("admin:relieve_app_mailoutcome_change", args=[row.pk]),
        reverse("admin:relieve_app_taskevent_changelist"),
        reverse("admin:relieve_app_usagesample_changelist"),
        reverse("admin:app_list", args=["relieve_app"]),
    ]
    for url in pages:
        content = admin_client.get(url).content.decode()
        assert "No relieve master is running" in content, url
        assert PAGE in content, url
    assert PAGE in admin_client.get(reverse("admin:index")).content.decode()


def test_nothing_can_be_deleted_and_details_have_their_times(admin_client, master_socket):
    row = outcome("failed")
    content = admin_client.get(
        reverse("admin:relieve_app_mailoutcome_change", args=[row.pk])
    ).content.decode()
    assert "deletelink" not in content
    assert "Created:" in content and "Updated:" in content and "Sent:" in content
    assert admin_client.get(reverse("admin:relieve_app_mailoutcome_delete", args=[row.pk])).status_code == 403
    changelist = admin_client.get(reverse("admin:relieve_app_mailoutcome_changelist")).content.decode()
    assert "delete_selected" not in changelist


def test_the_charts_count_what_the_database_holds():
    now = timezone.now().replace(second=30)
    for seconds in (0, 5, 10):
        outcome("sent", sent_at=now - timedelta(minutes=2, seconds=seconds))
    failed = outcome("failed")
    TaskEvent.objects.create(
        task_name="mail0", event="error", created_at=now - timedelta(minutes=2), outcome=failed
    )
    for minutes, memory in ((50, 40), (20, 42), (1, 45)):
        UsageSample.objects.create(
            task_name="mail0",
            pid=10,
            memory=memory * 2**20,
            cpu_percent=0,
            created_at=now - timedelta(minutes=minutes),
        )
    UsageSample.objects.create(
        task_name="mail1", pid=11, memory=2**20, cpu_percent=0, created_at=now - timedelta(hours=2)
    )

    per_minute = {s.label: s.points for s in dashboard.messages_per_minute(now).series}
    assert sum(y for _x, y in per_minute["delivered"]) == 3
    assert max(y for _x, y in per_minute["delivered"]) == 3  # the three in one minute
    assert sum(y for _x, y in per_minute["attempt failed"]) == 1
    assert len(per_minute["delivered"]) in (1440, 1441)

    memory = {s.label: s.points for s in dashboard.memory_per_child(now).series}
    assert list(memory) == ["mail0"]  # mail1's sample is older than the hour
    assert [y for _x, y in memory["mail0"]] == [40.0, 42.0, 45.0]
    assert [x for x, _y in memory["mail0"]] == [-50.0, -20.0, -1.0]


def test_the_pool_is_an_entry_of_the_apps_own_section_of_the_admin_index(admin_client, master_socket):
    """The host's admin keeps its index: the app's section lists the pool beside its models."""
    app_list = admin_client.get(reverse("admin:index")).context["app_list"]
    [section] = [app for app in app_list if app["app_label"] == "relieve_app"]
    [entry] = [model for model in section["models"] if model["admin_url"] == PAGE]
    assert entry["name"] == "Live pool" and not entry["add_url"]


def test_staff_who_may_not_view_outcomes_see_no_pool_entry(client, master_socket):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_taskrecord"))
    client.force_login(staff)
    [section] = client.get(reverse("admin:index")).context["app_list"]
    assert [model["object_name"] for model in section["models"]] == ["TaskRecord"]
    assert client.get(PAGE).status_code == 403


def test_the_state_lists_running_tasks_with_progress_and_how_full_each_queue_is(
    admin_client, master_socket, settings
):
    from relieve_app.models import TaskProgress, TaskRecord
    from relieve_app.monitor import status_text

    settings.RELIEVE_MAX_READY = {"mail": 10}
    path = "tests.tasks_fixtures.basic.add"
    running = TaskRecord.objects.create(
        task_path=path,
        queue_name="default",
        backend="default",
        status="RUNNING",
        last_attempted_at=timezone.now(),
    )
    TaskProgress.objects.create(task_result=running, done=4, total=8, note="half")
    for _ in range(3):
        TaskRecord.objects.create(task_path=path, queue_name="mail", backend="default")

    state = admin_client.get(STATE).json()

    [task] = state["running_tasks"]
    assert task["id"] == running.pk and task["progress"]["done"] == 4 and task["progress"]["note"] == "half"
    assert state["fullness"] == {"mail": {"ready": 3, "limit": 10}}
    text = "\n".join(status_text.render(state, "sock"))
    assert "queue mail: 3 of at most 10 ready (RELIEVE_MAX_READY)" in text
    assert f"#{running.pk} {path} on default: 4 of 8 (50%): half" in text
    assert task["detached"] is None


def test_a_task_finishing_in_a_child_of_a_stopped_master_says_so(admin_client, master_socket):
    from relieve_app.models import TaskRecord
    from relieve_app.monitor import status_text
    from relieve_app.tasks.owners import detached_owner

    row = TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.add",
        queue_name="default",
        backend="default",
        status="RUNNING",
        owner=detached_owner("old:7:1", 4242),
        last_attempted_at=timezone.now(),
    )
    [task] = admin_client.get(STATE).json()["running_tasks"]
    assert task["detached"] == "finishing in child pid 4242 of stopped master old:7:1"
    text = "\n".join(status_text.render(admin_client.get(STATE).json(), "sock"))
    assert f"#{row.pk} tests.tasks_fixtures.basic.add on default (finishing in child pid 4242" in text


def test_the_mail_chart_counts_the_failed_attempts_of_contact_mail_alone():
    """Another task's failures (twelve a minute of them) are not messages that failed."""
    now = timezone.now().replace(second=30)
    message = outcome("retrying")
    TaskEvent.objects.create(task_name="mail0", event="timeout", created_at=now, outcome=message)
    for _ in range(12):
        TaskEvent.objects.create(task_name="default0", event="error", created_at=now)

    chart = dashboard.messages_per_minute(now)
    per_minute = {s.label: s.points for s in chart.series}
    assert sum(y for _x, y in per_minute["attempt failed"]) == 1
    assert chart.title.startswith("Contact mail")  # the chart says which tasks it counts
    assert dashboard.delivery_percentiles(now).title.startswith("Contact mail")
    assert "all queues" in dashboard.memory_per_child(now).title
