"""Two hosts, one PostgreSQL: gunicorn and runrelieve in network namespaces, posted to from here.

Runs in the PostgreSQL pass of `make test`: SQLite is one host by design (see test_masters.py).
"""

import os
import re
import signal
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from relieve_app.models import MailOutcome, RelieveMaster, TaskEvent, TaskRecord
from tests.e2e import deployment, netns
from tests.e2e.conftest import wait_until
from tests.smtp_sink import SMTPSink

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="several hosts share one PostgreSQL; this runs in the PostgreSQL pass of `make test`",
    ),
]

SLOW_SWEEP = "300"  # seconds: a message delivered sooner did not wait for the sweep


@pytest.fixture
def network():
    try:
        netns.check_available()
    except netns.Unavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the two-host tests, but {exc}")
        pytest.skip(f"no network namespaces here: {exc}")
    with netns.Network() as network:
        yield network


@pytest.fixture
def hosts(transactional_db, network, tmp_path):
    """Two hosts' sites, `a` and `b`, and an SMTP sink on a's gateway; change `site.env` before a start."""
    a, b = network.add(), network.add()
    with SMTPSink(host=a.gateway) as sink:
        env = deployment.environment(
            deployment.socket_database_url(connection.settings_dict),
            sink,
            RELIEVE_SWEEP_INTERVAL=SLOW_SWEEP,
            RELIEVE_LOG_LEVEL="DEBUG",  # the master's "task N done by" lines, which done_by() reads
        )
        sites = {
            "host-a": deployment.Site(a, "host-a", tmp_path / "a", env),
            "host-b": deployment.Site(b, "host-b", tmp_path / "b", env),
        }
        yield sites["host-a"], sites["host-b"], sink
        deployment.stop(sites.values())


def subjects(sink):
    return [message["Subject"] for message in sink.messages]


def post_to_both(a, b, count):
    """`count` posts, alternating between the two web servers, from two client threads."""
    ids = {}

    def client(site, numbers):
        for n in numbers:
            ids[site.post(n)] = f"{site.name} {n}"

    threads = [
        threading.Thread(target=client, args=(a, range(0, count, 2))),
        threading.Thread(target=client, args=(b, range(1, count, 2))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(ids) == count
    return ids


def all_sent(ids):
    return lambda: MailOutcome.objects.filter(pk__in=ids, status="sent").count() == len(ids)


def done_by(site):
    """Task ids this site's master finished, from its log."""
    return {int(n) for n in re.findall(r"task (\d+) done by", site.log("master.log"))}


def fast_leases(*sites, lease="3"):
    for site in sites:
        site.env.update(RELIEVE_HEARTBEAT="0.3", RELIEVE_LEASE=lease, RELIEVE_SWEEP_INTERVAL="0.5")


def test_a_web_server_on_a_host_without_a_master_is_served_at_once_over_notify(hosts):
    a, b, sink = hosts
    a.start_web()
    b.start_master()
    wait_until(lambda: RelieveMaster.objects.filter(host="host-b").exists(), message="b registered")

    took = []
    for n in range(5):
        posted = time.monotonic()
        pk = a.post(n)
        wait_until(
            lambda pk=pk: MailOutcome.objects.filter(pk=pk, status="sent").exists(),
            timeout=30,
            interval=0.01,
            message=f"message {n} from host-a sent by host-b's master",
        )
        took.append(time.monotonic() - posted)

    assert sorted(subjects(sink)) == [f"host-a {n}" for n in range(5)]
    # host-a has no master, and needs none: enqueue() left the socket alone, its NOTIFY told host-b's.
    assert "stays queued" not in a.log("web.log")
    assert max(took) < float(SLOW_SWEEP) / 10, took  # woken by NOTIFY, not by a sweep
    print(f"POST on host-a to sent by host-b: {sorted(took)[len(took) // 2] * 1000:.0f} ms median")


def test_nothing_is_sent_twice_while_both_masters_are_alive(hosts):
    a, b, sink = hosts
    fast_leases(a, b)  # sweeps every half second look at the other master's rows while it sends them
    sink.stall = 0.3
    for site in (a, b):
        site.start_master(workers=2)
        site.start_web()

    ids = post_to_both(a, b, 60)
    wait_until(all_sent(ids), timeout=120, message="60 messages sent")

    counts = Counter(subjects(sink))
    assert sorted(counts) == sorted(ids.values()) and set(counts.values()) == {1}, counts
    tasks = set(MailOutcome.objects.filter(pk__in=ids).values_list("task_result_id", flat=True))
    by_a, by_b = done_by(a), done_by(b)
    assert by_a and by_b, "both masters sent"
    assert not by_a & by_b and by_a | by_b == tasks
    assert not TaskEvent.objects.filter(event="takeover").exists()


def test_a_killed_master_s_rows_move_to_the_other_after_its_lease(hosts):
    a, b, sink = hosts
    fast_leases(a, b)
    a.env["RELIEVE_FAILSAFE"] = "false"  # a lost host: its children end with its master, none finishes
    sink.stall = 4.0  # the sends host-a holds cannot end before the kill, however slow this machine
    a.start_master(workers=2)
    a.start_web()
    ids = [a.post(n) for n in range(6)]
    a_id = a.request("status")["owner"]
    wait_until(
        lambda: TaskRecord.objects.filter(owner=a_id, status="RUNNING").exists(),
        message="rows held by host-a's master",
    )
    b.start_master(workers=2)

    held = set(TaskRecord.objects.filter(owner=a_id, status="RUNNING").values_list("pk", flat=True))
    a.kill_master(signal.SIGKILL)
    sink.stall = 0.0
    wait_until(all_sent(ids), timeout=120, message="every message sent after the kill")

    received = Counter(subjects(sink))
    assert set(received) == {f"host-a {n}" for n in range(6)}  # nothing lost
    takeovers = TaskEvent.objects.filter(event="takeover")
    assert {e.task_result_id for e in takeovers} >= held - done_by(a)  # what host-a had not finished
    assert held - done_by(a), "host-a held sends when it was killed"
    assert {e.payload["from"] for e in takeovers} == {a_id}
    b_id = b.request("status")["owner"]
    assert {e.payload["by"] for e in takeovers} == {b_id}
    duplicates = {subject for subject, count in received.items() if count > 1}
    taken_subjects = set(
        MailOutcome.objects.filter(task_result__in=[e.task_result_id for e in takeovers]).values_list(
            "subject", flat=True
        )
    )
    assert duplicates <= taken_subjects  # a second send only where a kill cut the first one short
    print(f"takeover: {len(takeovers)} rows moved, {len(duplicates)} sent twice")
    wait_until(
        lambda: RelieveMaster.objects.with_gone().get(host="host-a").gone, message="host-a shown as gone"
    )


def test_a_gracefully_stopped_master_releases_its_rows_at_once(hosts):
    a, b, sink = hosts
    fast_leases(a, b, lease="600")  # only the release, not a lease running out, can move them
    a.env["RELIEVE_GRACE"] = "0.2"
    sink.stall = 2.0
    a.start_master(workers=2)
    a.start_web()
    ids = [a.post(n) for n in range(4)]
    a_id = a.request("status")["owner"]
    wait_until(
        lambda: TaskRecord.objects.filter(owner=a_id, status="RUNNING").exists(), message="rows held by a"
    )
    b.start_master(workers=2)

    assert a.kill_master(signal.SIGTERM) == 0
    assert not RelieveMaster.objects.filter(host="host-a").exists()
    sink.stall = 0.0
    wait_until(all_sent(ids), timeout=60, message="every message sent by host-b")
    assert {f"host-a {n}" for n in range(4)} == set(subjects(sink))
    assert not TaskEvent.objects.filter(event="takeover").exists()
