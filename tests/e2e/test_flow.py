"""Flow control and visibility with real masters and children: on SQLite one master, on PostgreSQL two.

Unique enqueues raced by several processes, a concurrency cap whose attempts never overlap, a rate
measured over time, progress read from another process, each reason a task waits, back-pressure
through the API and the contact page, and the metrics view of a live pool.
"""

import itertools
import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.tasks import TaskResultStatus
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from relieve_app.control import QueueFull, pause_queue, progress, resume_queue
from relieve_app.models import MailOutcome, RelieveMaster, TaskRecord, TaskStart
from relieve_app.monitor.why import why_waiting
from relieve_app.tasks import client
from relieve_app.tasks.master.lanes import AHEAD, SMOOTHING
from tests.e2e.conftest import ROOT, MasterProcess, database_url, wait_until
from tests.e2e.test_tasks import finished, running
from tests.tasks_fixtures import basic, flow

pytestmark = pytest.mark.e2e

SUCCESSFUL = TaskResultStatus.SUCCESSFUL
TWO_MASTERS = connection.vendor == "postgresql"  # SQLite has one master per file


@pytest.fixture
def masters(master, tmp_path):
    """Start the pool: one master, and on PostgreSQL a second on a socket of its own (woken by NOTIFY)."""
    started = [master]

    def start(workers=3, **env):
        master.env.update(env)
        master.start(workers=workers)
        if TWO_MASTERS:
            second = MasterProcess(tmp_path / "second.sock", tmp_path / "second.log", dict(master.env))
            second.start(workers=workers)
            started.append(second)
            wait_until(
                lambda: answers(second.socket_path), message="the second master to answer on its socket"
            )
        return started

    yield start
    for process in started[1:]:
        process.stop()


def answers(socket_path):
    try:
        return client.request("ping", socket_path=socket_path)
    except client.ClientError:
        return None


ENQUEUE = """
import os, sys, time
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
import django
django.setup()
from tests.tasks_fixtures import flow
while not os.path.exists({gate!r}):
    time.sleep(0.005)
print(flow.unique_add.enqueue(7, b=8).id)
"""


def test_concurrent_unique_enqueues_from_several_processes_make_one_row(master, tmp_path):
    gate = tmp_path / "go"
    script = ENQUEUE.format(root=str(ROOT), gate=str(gate))
    env = {**master.env, "RELIEVE_SOCKET": str(tmp_path / "nobody.sock")}  # the row waits: no master yet
    racers = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    gate.touch()
    ids = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(ids) == 1 and TaskRecord.objects.count() == 1

    master.start(workers=1)
    [only] = ids
    assert finished(flow.unique_add.get_result(only)).return_value == 15
    assert flow.unique_add.enqueue(7, b=8).id != only  # it ran: a new call is a new row


def test_a_capped_task_never_overlaps_and_holds_up_nothing_else(masters, tmp_path):
    masters(workers=3)
    spans, free = tmp_path / "spans.txt", tmp_path / "free.txt"
    capped = [flow.capped.enqueue(str(spans), 0.3) for _ in range(5)]
    others = [flow.free.enqueue(str(free)) for _ in range(6)]

    assert [finished(result).status for result in capped + others] == [SUCCESSFUL] * 11
    runs = sorted(tuple(map(float, line.split())) for line in spans.read_text().splitlines())
    assert len(runs) == 5
    for (_start, end), (next_start, _end) in itertools.pairwise(runs):
        assert next_start >= end, f"attempts overlapped: {runs}"
    gaps = [next_start - end for (_start, end), (next_start, _end) in itertools.pairwise(runs)]
    if not TWO_MASTERS:  # the end of an attempt wakes what its cap held on the same master: no 1 s poll
        assert sum(gaps) < 1.0, gaps
    # The free tasks did not wait behind the held ones: all done before the capped ones were.
    assert max(map(float, free.read_text().split())) < runs[-1][0]


def test_a_rate_limit_measured_over_time(masters, tmp_path):
    masters(workers=3)
    stamps = tmp_path / "starts.txt"
    results = [flow.rated.enqueue(str(stamps)) for _ in range(9)]

    assert [finished(result).status for result in results] == [SUCCESSFUL] * 9
    claimed = sorted(start.timestamp() for start in TaskStart.objects.values_list("at", flat=True))
    started = sorted(map(float, stamps.read_text().split()))
    assert len(started) == 9
    for index, first in enumerate(claimed):  # the log the claims judged by: exact
        assert len([at for at in claimed[index:] if at < first + 2.0]) <= 3, claimed
    for index, first in enumerate(started):  # inside the tasks: the children's own delays aside
        assert len([at for at in started[index:] if at < first + 1.75]) <= 3, started
    assert started[-1] - started[0] >= 3.5  # 9 starts at 3 per 2 s: three windows at least


def test_progress_is_seen_from_another_process_while_the_task_runs(masters, tmp_path):
    masters(workers=1)
    gate = tmp_path / "gate"
    result = running(flow.progressing.enqueue(str(gate), 5))

    seen = wait_until(lambda: (p := progress(result.id)) and p["done"] == 5 and p, message="the last step")
    assert (seen["total"], seen["note"]) == (5, "step 5")
    gate.touch()
    assert finished(result).return_value == 5
    assert progress(result.id)["done"] == 5


def test_each_reason_a_task_waits(master, tmp_path, settings):
    later = basic.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)
    row = lambda result: TaskRecord.objects.get(pk=result.id)  # noqa: E731
    assert any("No live master serves its queue 'default'" in r for r in why_waiting(row(later)))

    master.start(workers=1, queues=["default=1"])
    wait_until(lambda: not any("No live master" in r for r in why_waiting(row(later))), message="registered")
    [reason] = why_waiting(row(later))
    assert reason.startswith("Its run_after is ahead")

    pause_queue("default")
    paused = basic.add.enqueue(4, 4)
    assert why_waiting(row(paused)) == ["Its queue 'default' is paused."]
    resume_queue("default")
    assert finished(paused).return_value == 8

    gate = tmp_path / "gate"
    holder = running(flow.capped_until.enqueue(str(gate)))
    held = flow.capped_until.enqueue(str(gate) + ".never")
    assert any(r.startswith("Its concurrency cap holds it: 1 of at most 1") for r in why_waiting(row(held)))
    gate.touch()
    assert finished(holder).status == SUCCESSFUL
    running(flow.capped_until.get_result(held.id))  # the cap freed: the held one starts
    (tmp_path / "gate.never").touch()
    assert finished(flow.capped_until.get_result(held.id)).status == SUCCESSFUL

    first = finished(flow.rare.enqueue())
    second = flow.rare.enqueue()
    assert first.status == SUCCESSFUL
    wait_until(
        lambda: any(
            r.startswith("Its rate limit (1 starts per 1h00m) holds it until")
            for r in why_waiting(row(second))
        )
    )
    assert row(second).status == "READY" and row(second).worker_ids == []

    # The tasks so far were short: the lane would claim the next one ahead for the child while the
    # blocker has just started, and count it running. One long task puts its average past AHEAD.
    long_ms = round(2 * AHEAD / SMOOTHING * 1000)
    assert finished(basic.sleep_ms.enqueue(long_ms)).status == SUCCESSFUL
    busy_gate = tmp_path / "busy"
    blocker = running(basic.wait_for_file.enqueue(str(busy_gate)))
    ahead, mine = basic.add.enqueue(2, 2), basic.add.enqueue(3, 3)
    assert why_waiting(row(mine)) == [
        "Every child of its queue is busy (1 running on 1 children), and 1 tasks are ahead of it."
    ]
    out = StringIO()
    call_command("relievestatus", "--task", str(mine.id), stdout=out)
    assert "waiting: Every child of its queue is busy" in out.getvalue()
    busy_gate.touch()
    assert [finished(r).status for r in (blocker, ahead, mine)] == [SUCCESSFUL] * 3


def test_a_full_queue_refuses_through_the_api_and_the_contact_page(masters, settings):
    settings.RELIEVE_MAX_READY = {"mail": 3}
    for n in range(3):  # READY while no master runs: the queue is full of them
        basic.add.using(queue_name="mail").enqueue(n, n)
    with pytest.raises(QueueFull):
        basic.add.using(queue_name="mail").enqueue(9, 9)

    body = {"emitter": "ada@example.com", "subject": "Hello", "body": "Kept while the mail queue is full."}
    page = Client().post("/contact/", body)
    as_json = Client().post(
        "/contact/", json.dumps(body), content_type="application/json", HTTP_ACCEPT="application/json"
    )
    assert page.status_code == as_json.status_code == 503
    assert "Kept while the mail queue is full." in page.content.decode() and page["Retry-After"]
    assert TaskRecord.objects.count() == 3 and MailOutcome.objects.count() == 0

    masters(workers=1)  # the children drain the queue: room again
    wait_until(lambda: not TaskRecord.objects.filter(status="READY").exists(), message="the queue to drain")
    assert Client().post("/contact/", body).status_code == 303


def test_the_metrics_of_a_live_pool(masters, settings):
    masters(workers=2, RELIEVE_USAGE_INTERVAL="0.3")
    settings.RELIEVE_METRICS_TOKEN = "a-token-long-enough-for-the-check"
    assert finished(basic.add.enqueue(1, 2)).status == SUCCESSFUL

    def scrape():
        response = Client().get(
            "/contact/metrics/", HTTP_AUTHORIZATION=f"Bearer {settings.RELIEVE_METRICS_TOKEN}"
        )
        assert response.status_code == 200
        return {f.name: f for f in text_string_to_metric_families(response.content.decode())}

    found = wait_until(lambda: (f := scrape()) and f["relieve_child_resident_memory_bytes"].samples and f)
    assert found["relieve_master_up"].samples[0].value == 1
    assert found["relieve_masters_live"].samples[0].value == (2 if TWO_MASTERS else 1), list(
        RelieveMaster.objects.values()
    )
    states = {(s.labels["queue"], s.labels["state"]): s.value for s in found["relieve_children"].samples}
    assert states[("default", "running")] == 2
    assert all(s.value > 1_000_000 for s in found["relieve_child_resident_memory_bytes"].samples)
    assert {s.labels["child"] for s in found["relieve_child_restarts"].samples} >= {"default0", "default1"}
    counts = [s for s in found["relieve_task_duration_seconds"].samples if s.name.endswith("_count")]
    assert counts[0].labels["task"] == "tests.tasks_fixtures.basic.add" and counts[0].value == 1
    assert database_url()
