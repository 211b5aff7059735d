"""The admin's side of schedules and control: the Schedules list and switch, Cancel, and queue pausing."""

import pytest
from django.urls import reverse

from relieve_app.models import PausedQueue, Schedule, TaskRecord
from relieve_app.tasks.cancel import TASK_CANCELLED

pytestmark = pytest.mark.django_db

NOOP = "tests.tasks_fixtures.basic.noop"
SCHEDULES = reverse("admin:relieve_app_schedule_changelist")


@pytest.fixture
def schedule(settings):
    settings.RELIEVE_SCHEDULE = {
        "reports": {
            "task": "tests.tasks_fixtures.basic.noop",
            "cron": "15 3 * * *",
            "timezone": "Europe/Paris",
        },
        "digest": {"task": NOOP, "every": "10m", "enabled": False},
    }


def test_schedules_are_listed_with_rule_zone_and_next_run(admin_client, schedule):
    response = admin_client.get(SCHEDULES)
    assert response.status_code == 200
    text = response.content.decode()
    for words in ("reports", "cron 15 3 * * *", "Europe/Paris", "digest", "every 10m"):
        assert words in text
    assert set(Schedule.objects.values_list("name", flat=True)) == {"reports", "digest"}


def test_enable_and_disable_are_kept_in_the_database(admin_client, schedule):
    admin_client.get(SCHEDULES)
    admin_client.post(SCHEDULES, {"action": "enable", "_selected_action": ["digest"]})
    admin_client.post(SCHEDULES, {"action": "disable", "_selected_action": ["reports"]})
    assert dict(Schedule.objects.values_list("name", "enabled")) == {"digest": True, "reports": False}


def test_the_cancel_action_fails_waiting_tasks_and_leaves_finished_ones(admin_client):
    waiting = TaskRecord.objects.create(task_path="tests.tasks_fixtures.basic.noop", queue_name="default")
    done = TaskRecord.objects.create(
        task_path="tests.tasks_fixtures.basic.noop", queue_name="default", status="SUCCESSFUL"
    )
    changelist = reverse("admin:relieve_app_taskrecord_changelist")
    response = admin_client.post(
        changelist, {"action": "cancel", "_selected_action": [waiting.pk, done.pk]}, follow=True
    )
    text = response.content.decode()
    assert "1 task cancelled." in text and "1 finished task left alone." in text
    waiting.refresh_from_db()
    assert waiting.status == "FAILED" and waiting.errors[-1]["exception_class_path"] == TASK_CANCELLED
    done.refresh_from_db()
    assert done.status == "SUCCESSFUL" and done.errors == []


def test_the_pool_page_pauses_and_resumes_a_queue(admin_client):
    pool = reverse("admin:relieve_pool")
    action = reverse("admin:relieve_pool_queue")
    response = admin_client.post(action, {"name": "mail", "action": "pause"}, follow=True)
    assert "Queue mail paused" in response.content.decode()
    assert PausedQueue.objects.filter(name="mail").exists()
    page = admin_client.get(pool).content.decode()
    assert 'value="resume">Resume</button>' in page and "paused" in page
    assert admin_client.post(action, {"name": "nope", "action": "pause"}, follow=True).status_code == 200
    assert not PausedQueue.objects.filter(name="nope").exists()
    admin_client.post(action, {"name": "mail", "action": "resume"})
    assert not PausedQueue.objects.exists()
    assert admin_client.get(action).status_code == 405
