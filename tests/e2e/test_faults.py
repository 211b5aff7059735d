"""Nothing accepted is lost: SMTP refusing, a child killed mid-send, the master down or killed."""

import os
import signal
import stat

import pytest
from django.db import connection
from django.test import Client

from relieve_app.models import MailOutcome
from relieve_app.tasks import client
from tests.e2e.conftest import wait_until
from tests.e2e.test_delivery import all_sent, post
from tests.smtp_sink import TRY_LATER

pytestmark = pytest.mark.e2e


def outcome(pk):
    return MailOutcome.objects.get(pk=pk)


def subjects(sink):
    return [message["Subject"] for message in sink.messages]


def test_a_temporary_refusal_is_retried_until_attempts_run_out(master, smtp_sink):
    smtp_sink.refusal = TRY_LATER
    smtp_sink.refuse_if = lambda subject: subject == "always refused"
    master.start()
    web = Client()
    smtp_sink.refuse_next(1)
    once = post(web, 1, subject="refused once")
    wait_until(all_sent([once]), message="the once-refused message sent on its second attempt")
    always = post(web, 2, subject="always refused")
    wait_until(lambda: outcome(always).status == "failed", message="the always-refused message failed")

    assert outcome(once).attempts == 2
    failed = outcome(always)
    assert failed.attempts == 3  # RELIEVE_MAX_ATTEMPTS in the fixture
    assert "451" in failed.error and "SMTP 451" in failed.error
    assert failed.events.filter(event="error").count() == 3
    assert subjects(smtp_sink) == ["refused once"]


def test_a_permanent_refusal_fails_at_once_with_the_smtp_reply(master, smtp_sink):
    smtp_sink.refuse_if = lambda subject: subject == "refused for good"
    master.start()
    pk = post(Client(), 1, subject="refused for good")
    wait_until(lambda: outcome(pk).status == "failed", message="the refused message failed")
    smtp_sink.refuse_if = None
    refused = smtp_sink.refused
    sent = post(Client(), 2, subject="after it")  # a later message shows the master moved on
    wait_until(all_sent([sent]), message="the next message sent")

    failed = outcome(pk)
    assert failed.attempts == 1
    assert "550 5.7.1 refused by sink" in failed.error and "SMTP 550" in failed.error
    assert failed.events.filter(event="error").count() == 1
    assert smtp_sink.refused == refused == 1


def test_child_killed_in_the_middle_of_a_send(master, smtp_sink):
    smtp_sink.stall = 3.0
    master.start()
    pk = post(Client(), 1, subject="survives a kill")
    row = wait_until(
        lambda: MailOutcome.objects.filter(pk=pk, status="sending").exclude(task_name="").first(),
        message="the message in a child",
    )
    child = next(c for c in master.status()["children"] if c["name"] == row.task_name)
    os.kill(child["pid"], signal.SIGKILL)
    smtp_sink.stall = 0.0

    wait_until(all_sent([pk]), message="the message sent after its child was killed")
    assert "survives a kill" in subjects(smtp_sink)
    assert outcome(pk).attempts == 2
    restarted = wait_until(
        lambda: next(c for c in master.status()["children"] if c["name"] == row.task_name),
        message="the killed child restarted",
    )
    assert restarted["pid"] != child["pid"] and restarted["restarts"] >= 1


def test_messages_posted_while_the_master_is_down_are_sent_once_it_starts(master, smtp_sink, caplog):
    web = Client()
    ids = [post(web, n) for n in range(5)]
    assert set(MailOutcome.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"queued"}
    if connection.vendor != "postgresql":  # there a NOTIFY hands tasks over, never the socket
        assert "stays queued" in caplog.text

    master.start()
    wait_until(all_sent(ids), message="the queued messages sent by the start-up sweep")
    assert sorted(subjects(smtp_sink)) == sorted(f"message {n}" for n in range(5))


def test_master_killed_and_started_again_loses_nothing(master, smtp_sink):
    smtp_sink.stall = 0.3
    master.start(workers=2)
    old_children = [c["pid"] for c in master.status()["children"]]
    web = Client()
    ids = [post(web, n) for n in range(10)]
    wait_until(lambda: smtp_sink.messages, message="a first delivery")
    master.stop(signal.SIGKILL)
    # Orphaned children notice their master is gone and leave.
    wait_until(lambda: not any(_alive(pid) for pid in old_children), timeout=10, message="orphans to exit")

    smtp_sink.stall = 0.0
    master.start(workers=2)
    wait_until(all_sent(ids), message="every message sent after the restart")
    assert set(subjects(smtp_sink)) == {f"message {n}" for n in range(10)}


def test_a_hung_send_is_killed_after_the_call_timeout_and_retried(master, smtp_sink):
    master.env["RELIEVE_CALL_TIMEOUT"] = "1.5"
    smtp_sink.stall = 4.0
    master.start()
    pk = post(Client(), 1, subject="hung once")
    wait_until(lambda: outcome(pk).status == "retrying", message="the hung attempt given up")
    smtp_sink.stall = 0.0
    wait_until(all_sent([pk]), message="the retry sent")
    assert outcome(pk).attempts == 2
    assert "killing it" in master.output()
    timeout = outcome(pk).events.get(event="timeout")
    assert "within 1.5s" in timeout.payload["message"]


def test_second_master_on_the_same_socket_is_refused(master):
    master.start()
    second = master.run_once()
    assert second.returncode == 1
    assert f"another relieve master is already answering on {master.socket_path}" in second.stderr
    assert client.request("ping")["queues"] == {"default": 2, "mail": 2}  # the first one is untouched


def test_socket_is_private_and_a_stale_one_is_replaced(master):
    master.start()
    assert stat.S_IMODE(os.stat(master.socket_path).st_mode) == 0o600
    master.stop(signal.SIGKILL)
    assert os.path.exists(master.socket_path)  # left behind by the killed master
    master.start()
    assert client.request("ping")["queues"] == {"default": 2, "mail": 2}
    assert "removing stale socket" in master.output()


def test_a_file_in_the_way_of_the_socket_is_refused_with_a_clear_message(master):
    with open(master.socket_path, "w") as blocker:
        blocker.write("not a socket")
    with pytest.raises(AssertionError, match="exists and is not a socket"):
        master.start()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat_file:  # a zombie is gone for our purpose
        return stat_file.read().split()[2] != "Z"
