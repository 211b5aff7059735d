"""Why has my task not started? Each reason, read from the table as it is, in the admin and relievestatus."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from relieve_app.control import pause_queue, resume_queue
from relieve_app.models import RelieveMaster, TaskProgress, TaskRecord, TaskStart
from relieve_app.monitor.why import why_waiting

pytestmark = pytest.mark.django_db

PATH = "tests.tasks_fixtures.basic.add"


def task(status="READY", queue="default", path=PATH, **fields):
    return TaskRecord.objects.create(
        task_path=path, queue_name=queue, backend="default", status=status, **fields
    )


def master(queues=("default",), children=2, host="h"):
    now = timezone.now()
    return RelieveMaster.objects.create(
        id=f"{host}:1:1",
        host=host,
        pid=1,
        started_at=now,
        heartbeat_at=now,
        expires_at=now + timedelta(minutes=1),
        children=children,
        queues=list(queues),
    )


@pytest.fixture(autouse=True)
def no_local_master(master_socket):
    """Nothing answers on the socket: children are known from the masters' rows alone."""


def test_nothing_holds_it():
    master()
    assert why_waiting(task()) == ["Nothing holds it back: a master should start it within moments."]


def test_its_run_after_is_ahead():
    master()
    reasons = why_waiting(task(run_after=timezone.now() + timedelta(minutes=10)))
    assert len(reasons) == 1 and reasons[0].startswith("Its run_after is ahead: it may start at ")
    assert "(in 9m5" in reasons[0] or "(in 10m00s)" in reasons[0]


def test_its_queue_is_paused():
    master()
    pause_queue("default")
    assert why_waiting(task()) == ["Its queue 'default' is paused."]
    pause_queue("mail")
    resume_queue("default")
    assert why_waiting(task()) == ["Nothing holds it back: a master should start it within moments."]


def test_no_live_master_serves_its_queue():
    assert why_waiting(task()) == ["No live master serves its queue 'default': no master is running."]
    master(queues=["mail"])
    gone = master(host="old")
    RelieveMaster.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert why_waiting(task()) == [
        "No live master serves its queue 'default' (1 live masters serve other queues)."
    ]


def test_its_cap_holds_it():
    master()
    task("RUNNING", path="tests.tasks_fixtures.flow.capped", concurrency=1)
    [reason] = why_waiting(task(path="tests.tasks_fixtures.flow.capped", concurrency=1))
    assert reason.startswith("Its concurrency cap holds it: 1 of at most 1 attempts")


def test_its_rate_holds_it_until_the_oldest_start_leaves_the_window():
    master()
    path = "tests.tasks_fixtures.flow.rated"
    TaskStart.objects.create(task_path=path, at=timezone.now() - timedelta(seconds=20))
    [reason] = why_waiting(task(path=path, rate="1/m"))
    assert reason.startswith("Its rate limit (1 starts per 1m00s) holds it until ")
    assert "(in 40s)" in reason or "(in 39s)" in reason


def test_tasks_ahead_while_every_child_is_busy():
    master(children=2)
    task("RUNNING"), task("RUNNING")
    early = timezone.now() - timedelta(minutes=1)
    task(enqueued_at=early), task(priority=5)
    task(run_after=timezone.now() + timedelta(hours=1), enqueued_at=early)  # not due: not ahead
    mine = task(enqueued_at=early + timedelta(seconds=1))
    task()  # behind it
    assert why_waiting(mine) == [
        "Every child of its queue is busy (2 running on 2 children), and 2 tasks are ahead of it."
    ]


def test_a_task_not_waiting_says_so():
    assert why_waiting(task("RUNNING")) == ["It is not waiting: it is running."]


def test_the_admin_detail_of_a_ready_task_says_why_and_shows_progress(admin_client):
    waiting = task(run_after=timezone.now() + timedelta(minutes=10))
    page = admin_client.get(
        reverse("admin:relieve_app_taskrecord_change", args=[waiting.pk])
    ).content.decode()
    assert "Why is it waiting?" in page and "Its run_after is ahead" in page
    assert "No live master serves its queue" in page

    running = task("RUNNING")
    TaskProgress.objects.create(task_result=running, done=3, total=10, note="copying")
    page = admin_client.get(
        reverse("admin:relieve_app_taskrecord_change", args=[running.pk])
    ).content.decode()
    assert "Why is it waiting?" not in page
    assert (
        '<progress class="relieve-progress" value="3.0" max="10.0">' in page
        and "3 of 10 (30%): copying" in page
    )


def test_relievestatus_task_says_why_and_how_far():
    waiting = task(run_after=timezone.now() + timedelta(minutes=10))
    out = StringIO()
    call_command("relievestatus", "--task", str(waiting.pk), "--timeout", "0.1", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"task {waiting.pk} {PATH} on queue default: READY"
    assert lines[1].startswith("waiting: Its run_after is ahead")
    assert lines[2].startswith("waiting: No live master serves its queue")

    running = task("RUNNING")
    TaskProgress.objects.create(task_result=running, done=2, total=None, note="")
    out = StringIO()
    call_command("relievestatus", "--task", str(running.pk), "--json", stdout=out)
    state = __import__("json").loads(out.getvalue())
    assert state["status"] == "RUNNING" and state["waiting_because"] == [] and state["progress"]["done"] == 2


def test_relievestatus_task_unknown_id_is_a_clear_error():
    with pytest.raises(Exception, match="no task has the id 424242"):
        call_command("relievestatus", "--task", "424242")


def test_a_task_a_child_finishes_for_a_stopped_master_says_so_and_busies_no_live_child():
    from relieve_app.tasks.owners import detached_owner

    master(children=1)
    lease = timezone.now() + timedelta(seconds=30)
    held = task("RUNNING", owner=detached_owner("old:7:1", 4242), lease_until=lease)
    [reason] = why_waiting(held)
    assert "finishing in child pid 4242 of stopped master old:7:1" in reason
    assert "once its lease runs out" in reason
    # The live master's only child is free: the detached task does not hold the one waiting back.
    assert why_waiting(task()) == ["Nothing holds it back: a master should start it within moments."]
