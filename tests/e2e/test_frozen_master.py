"""A master frozen past its call timeout keeps the answers its children gave meanwhile."""

import os
import signal
import time

import pytest
from django.test import Client

from relieve_app.models import MailOutcome
from tests.e2e.conftest import wait_until
from tests.e2e.test_delivery import all_sent, post

pytestmark = pytest.mark.e2e


def test_a_master_frozen_past_the_call_timeout_does_not_send_again(master, smtp_sink):
    master.env["RELIEVE_CALL_TIMEOUT"] = "1.5"
    smtp_sink.stall = 0.8
    master.start(workers=1)
    pk = post(Client(), 1, subject="answered while frozen")
    # The row says "sending" once claimed, a moment before the master hands the job over: only the
    # child's own SMTP session shows that the child holds it, so the freeze waits for that.
    wait_until(
        lambda: (
            MailOutcome.objects.filter(pk=pk, status="sending").exclude(task_name="").exists()
            and smtp_sink.sessions >= 1
        ),
        message="the message in a child, talking to the SMTP server",
    )
    os.kill(master.process.pid, signal.SIGSTOP)
    try:
        smtp_sink.wait_for(1, timeout=10)  # the child sends and answers while its master is frozen
        time.sleep(2.5)  # well past the call timeout
    finally:
        os.kill(master.process.pid, signal.SIGCONT)

    wait_until(all_sent([pk]), message="the message recorded as sent")
    time.sleep(1.0)  # long enough for a wrongly killed child's retry to reach the sink
    assert [str(m["Subject"]) for m in smtp_sink.messages] == ["answered while frozen"]
    row = MailOutcome.objects.get(pk=pk)
    assert row.attempts == 1
    assert not row.events.filter(event="timeout").exists()
