import smtplib
import socket

import pytest

from tests.smtp_sink import SMTPSink

pytestmark = pytest.mark.timeout(30)


def send(sink, subjects):
    """Send one message per subject over one connection; the refused subjects, in order."""
    refused = []
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        for subject in subjects:
            try:
                client.sendmail("a@example.com", ["b@example.com"], f"Subject: {subject}\r\n\r\nbody\r\n")
            except smtplib.SMTPDataError as exc:
                assert exc.smtp_code == 550
                refused.append(subject)
    return refused


def test_keeps_parsed_messages_and_counts_sessions():
    with SMTPSink() as sink:
        send(sink, ["one", "two"])
        send(sink, ["three"])
        messages = sink.wait_for(3)
    assert [message["Subject"] for message in messages] == ["one", "two", "three"]
    assert sink.envelopes[0].mail_from == "a@example.com"
    assert sink.envelopes[0].rcpt_tos == ["b@example.com"]
    assert sink.sessions == 2


def test_refuse_share_repeats_with_the_same_seed():
    subjects = [f"m{index}" for index in range(60)]
    runs = []
    for _ in range(2):
        with SMTPSink(refuse_share=0.3, seed=7) as sink:
            runs.append(send(sink, subjects))
        assert sink.refused == len(runs[-1])
        assert len(sink.messages) == len(subjects) - sink.refused
    assert runs[0] == runs[1]
    assert 5 < len(runs[0]) < 35
    with SMTPSink(refuse_share=0.3, seed=8) as sink:
        assert send(sink, subjects) != runs[0]


def test_refuse_next_and_refuse_if():
    with SMTPSink(refuse_if=lambda subject: "spam" in subject) as sink:
        sink.refuse_next(2)
        assert send(sink, ["a", "b", "c", "spam d", "e"]) == ["a", "b", "spam d"]
    assert [message["Subject"] for message in sink.messages] == ["c", "e"]
    assert sink.refused == 3


def test_stop_and_start_on_the_same_port():
    with SMTPSink() as sink:
        port = sink.port
        client = smtplib.SMTP(sink.host, sink.port, timeout=5)
        client.noop()
        sink.stop()  # also drops the connection still open
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((sink.host, port), timeout=1).close()
        sink.start()
        assert sink.port == port
        send(sink, ["back"])
        assert sink.wait_for(1)[0]["Subject"] == "back"


def test_wait_for_says_how_many_arrived():
    with SMTPSink() as sink:
        send(sink, ["only"])
        with pytest.raises(TimeoutError, match="1 of 2"):
            sink.wait_for(2, timeout=0.1)


def test_stall_share_picks_a_repeatable_share_of_messages():
    def picks(seed, share):
        sink = SMTPSink(stall=0.5, stall_share=share, seed=seed)
        return [sink._stall_for() for _ in range(200)]

    some = picks(0, 0.25)
    assert set(some) == {0.0, 0.5}
    assert 25 <= some.count(0.5) <= 75  # a quarter of 200, give or take
    assert picks(0, 0.25) == some  # the same seed stalls the same messages
    assert picks(0, 1.0) == [0.5] * 200
    assert picks(0, 0.0) == [0.0] * 200
