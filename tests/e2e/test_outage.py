"""A database outage loses no outcome and sends nothing twice; a master that cannot reach it says so."""

import socket
import time

import pytest
from django.db import connection
from django.test import Client

from relieve_app.models import MailOutcome
from tests.e2e.conftest import database_url, wait_until
from tests.e2e.test_delivery import all_sent, post
from tests.tcp_proxy import TCPProxy

pytestmark = pytest.mark.e2e

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the outage is a cut TCP proxy in front of PostgreSQL; `make test` runs this on PostgreSQL",
)


@postgres_only
def test_outcomes_written_during_an_outage_are_kept_and_nothing_is_sent_twice(master, smtp_sink):
    db = connection.settings_dict
    with TCPProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)) as proxy:
        master.env["DATABASE_URL"] = database_url().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
        smtp_sink.stall = 1.0
        master.start(workers=2)
        web = Client()
        ids = [post(web, n) for n in range(6)]
        wait_until(
            lambda: (
                MailOutcome.objects.filter(pk__in=ids, status="sending").exclude(task_name="").count() == 2
            ),
            message="two sends in the children",
        )
        proxy.cut()  # the children answer while the master cannot write
        wait_until(lambda: len(smtp_sink.messages) >= 2, message="the two sends delivered during the outage")
        time.sleep(8)  # the outage goes on: the sweep runs every second meanwhile
        proxy.restore()
        smtp_sink.stall = 0.0

        wait_until(all_sent(ids), timeout=60, message="every message sent once the database is back")
        subjects = sorted(str(m["Subject"]) for m in smtp_sink.messages)
        assert subjects == [f"message {n}" for n in range(6)], "a message was sent twice or not at all"
        assert {MailOutcome.objects.get(pk=pk).attempts for pk in ids} == {1}
        assert "retrying until it commits" in master.output()


def test_a_master_that_cannot_reach_its_database_says_so(master):
    master.env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{_closed_port()}/relieve"
    result = master.run_once()
    assert result.returncode == 1
    assert "the database cannot be reached" in result.stderr
    assert "migrate" not in result.stderr


def test_a_master_on_a_database_without_tables_says_migrate(master, tmp_path):
    master.env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = master.run_once()
    assert result.returncode == 1
    assert "run `python manage.py migrate`" in result.stderr


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@postgres_only
def test_a_master_stopped_during_an_outage_names_the_outcomes_it_could_not_record(master, smtp_sink):
    db = connection.settings_dict
    with TCPProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)) as proxy:
        master.env["DATABASE_URL"] = database_url().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
        master.env["RELIEVE_GRACE"] = "2"
        smtp_sink.stall = 1.0
        master.start(workers=1)
        pk = post(Client(), 1, subject="sent while the database is away")
        wait_until(
            lambda: MailOutcome.objects.filter(pk=pk, status="sending").exclude(task_name="").exists(),
            message="the send in a child",
        )
        proxy.cut()
        smtp_sink.wait_for(1, timeout=10)
        wait_until(lambda: "retrying until it commits" in master.output(), message="the write kept")
        assert master.stop() == 0

    task = MailOutcome.objects.get(pk=pk).task_result_id
    assert f"the database took no outcome for [{task}]" in master.output()
    assert MailOutcome.objects.get(pk=pk).status == "sending"  # the next start sends it again
