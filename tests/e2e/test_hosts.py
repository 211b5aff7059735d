"""Two hosts, one PostgreSQL: gunicorn and runrelieve in network namespaces, posted to from here.

Runs in the PostgreSQL pass of `make test`: SQLite is one host by design (see test_masters.py).
"""

import os
import time

import pytest
from django.db import connection

from relieve_app.models import MailOutcome, RelieveMaster
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
    """Two hosts, `a` and `b`, and an SMTP sink on a's gateway; `hosts.site(name, **env)` makes a site."""
    a, b = network.add(), network.add()
    with SMTPSink(host=a.gateway) as sink:
        env = deployment.environment(
            deployment.socket_database_url(connection.settings_dict),
            sink,
            RELIEVE_SWEEP_INTERVAL=SLOW_SWEEP,
        )
        sites = {
            "host-a": deployment.Site(a, "host-a", tmp_path / "a", env),
            "host-b": deployment.Site(b, "host-b", tmp_path / "b", env),
        }
        yield sites["host-a"], sites["host-b"], sink
        deployment.stop(sites.values())


def subjects(sink):
    return [message["Subject"] for message in sink.messages]


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
    assert "stays queued" in a.log("web.log")  # host-a has no master: its socket path led nowhere
    assert max(took) < float(SLOW_SWEEP) / 10, took  # woken by NOTIFY, not by a sweep
    print(f"POST on host-a to sent by host-b: {sorted(took)[len(took) // 2] * 1000:.0f} ms median")
