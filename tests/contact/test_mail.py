"""The contact mail task as a child runs it, against a real SMTP server: its report when the mail is
sent, MailRefused for a refusal the server means (5xx), RetryLater for anything worth another try."""

import pytest
from django.core.mail.backends import smtp as smtp_backend

from relieve_app.contact.mailtask import MailRefused, send_contact_mail
from relieve_app.contact.render import render_once
from relieve_app.tasks.retry import RetryLater

pytestmark = pytest.mark.timeout(60)

FROM = "relieve <noreply@example.com>"
HOSTILE_BODY = """Hello, this is a long enough message.

<script>alert("script")</script>
[click](javascript:alert('href')) and [data](data:text/html;base64,PHNjcmlwdD4=)
<img src="http://evil.example/pixel.png" onerror="alert('onerror')">
![tracker words](http://evil.example/track.png)
<a href="https://example.com/" onclick="alert('onclick')" style="color: red">fine link</a>
<iframe src="http://evil.example/frame"></iframe>
"""


def make_job(**fields):
    return {
        "emitter": "visitor@example.com",
        "recipient": "me@example.com",
        "subject": "Hello",
        "body": "**bold** text\r\n\r\n- one\r\n- two\r\n",
        **fields,
    }


def send(job):
    """What a child does with the task: its return value is the report the master stores."""
    return send_contact_mail.call(job)


SENT = {"message": "Mail sent to me@example.com"}


@pytest.fixture(autouse=True)
def from_address(mail_settings):
    mail_settings.DEFAULT_FROM_EMAIL = FROM


def parts(message):
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


def test_render_keeps_the_source_as_text_and_markdown_as_html():
    rendered = render_once("# Title\r\n\r\n**bold** and *em*\r\n\r\n1. one\r\n2. two\r\n")
    text, html = rendered.text, rendered.html
    assert text == "# Title\n\n**bold** and *em*\n\n1. one\n2. two\n"
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong> and <em>em</em>" in html
    assert "<li>one</li>" in html
    assert html.startswith("<!DOCTYPE html>")
    assert "<body>" in html


def test_sends_markdown_as_text_and_html(mail, smtp_sink):
    assert send(make_job()) == SENT
    (message,) = smtp_sink.wait_for(1)
    assert message.get_content_type() == "multipart/alternative"
    content = parts(message)
    assert content.keys() == {"text/plain", "text/html"}
    assert content["text/plain"].replace("\r\n", "\n") == "**bold** text\n\n- one\n- two\n"
    assert "<strong>bold</strong>" in content["text/html"]
    assert "<li>one</li>" in content["text/html"]


def test_headers_and_envelope(mail, smtp_sink):
    send(make_job(subject="Question about relieve"))
    (message,) = smtp_sink.wait_for(1)
    assert message["From"] == FROM
    assert message["To"] == "me@example.com"
    assert message["Reply-To"] == "visitor@example.com"
    assert message["Subject"] == "Question about relieve"
    assert smtp_sink.envelopes[0].mail_from == "noreply@example.com"
    assert smtp_sink.envelopes[0].rcpt_tos == ["me@example.com"]


def test_hostile_markup_reaches_the_recipient_inert(mail, smtp_sink):
    send(make_job(body=HOSTILE_BODY))
    html = parts(smtp_sink.wait_for(1)[0])["text/html"]
    for inert in ("<script", "alert", "javascript:", "data:", "<img", "evil.example", "onerror", "onclick"):
        assert inert not in html
    assert "style=" not in html
    assert "<iframe" not in html
    assert "tracker words" in html
    assert '<a href="https://example.com/" rel="nofollow noopener noreferrer">fine link</a>' in html


def test_refusal_fails_the_task_at_once_with_the_smtp_code(mail, smtp_sink):
    smtp_sink.refuse_next(1)
    with pytest.raises(MailRefused, match=r"^550 .*refused by sink.* \(SMTP 550\)$"):
        send(make_job())
    assert smtp_sink.refused == 1

    assert send(make_job()) == SENT
    assert smtp_sink.sessions == 1


def test_one_connection_serves_many_mails(mail, smtp_sink):
    for number in range(5):
        assert send(make_job(subject=f"Hello {number}")) == SENT
    assert [message["Subject"] for message in smtp_sink.wait_for(5)] == [f"Hello {n}" for n in range(5)]
    assert smtp_sink.sessions == 1


def test_server_restarted_between_mails_is_reconnected_silently(mail, smtp_sink):
    assert send(make_job()) == SENT
    smtp_sink.stop()
    smtp_sink.start()
    assert send(make_job()) == SENT
    assert len(smtp_sink.wait_for(2)) == 2
    assert smtp_sink.sessions == 2


def test_server_down_asks_for_a_retry_and_the_task_recovers(mail, smtp_sink):
    assert send(make_job()) == SENT
    smtp_sink.stop()
    with pytest.raises(RetryLater, match="Connection refused") as refused:
        send(make_job())
    assert isinstance(refused.value.__cause__, ConnectionRefusedError)

    smtp_sink.start()
    assert send(make_job()) == SENT
    assert [message["Subject"] for message in smtp_sink.wait_for(2)] == ["Hello", "Hello"]


def test_slow_server_asks_for_a_retry_without_a_second_send(mail, smtp_sink):
    mail.connection.timeout = 0.3
    smtp_sink.stall = 2
    with pytest.raises(RetryLater, match="timed out"):
        send(make_job())
    assert smtp_sink.sessions == 1

    smtp_sink.stall = 0
    assert send(make_job()) == SENT


@pytest.mark.parametrize("field", ["subject", "emitter"])
def test_line_break_in_a_header_is_refused_without_a_crash(mail, smtp_sink, field):
    job = make_job(**{field: "visitor@example.com\r\nBcc: victim@example.com"})
    with pytest.raises(RetryLater) as refused:
        send(job)
    assert isinstance(refused.value.__cause__, ValueError)

    assert send(make_job()) == SENT
    (message,) = smtp_sink.wait_for(1)
    assert message["Bcc"] is None
    assert smtp_sink.envelopes[0].rcpt_tos == ["me@example.com"]


def test_each_address_is_parsed_once_however_many_mails_and_a_bad_one_fails_each_time(
    mail, smtp_sink, monkeypatch
):
    parsed = []
    parse = smtp_backend.AddressHeader.value_parser

    def counted(value):
        parsed.append(value)
        return parse(value)

    monkeypatch.setattr(smtp_backend.AddressHeader, "value_parser", staticmethod(counted))
    for number in range(3):
        assert send(make_job(subject=f"Hello {number}")) == SENT
    assert len(smtp_sink.wait_for(3)) == 3
    assert sorted(parsed) == sorted([FROM, "me@example.com"])  # From and To, once each

    for _ in range(2):
        with pytest.raises(RetryLater, match="must be a single address"):
            send(make_job(recipient="me@example.com, other@example.com"))
    assert parsed.count("me@example.com, other@example.com") == 2


def test_the_rehearsal_before_the_zygotes_fork_composes_a_mail_and_sends_nothing(mail, smtp_sink):
    from relieve_app.contact import render_process
    from relieve_app.contact.mail import rehearse
    from relieve_app.pool import warm_up

    assert rehearse in warm_up._registered  # registered by importing the mail task's module
    rehearse()
    assert smtp_sink.sessions == 0 and smtp_sink.messages == []
    converter = render_process.prepare()  # built by the rehearsal: the renderers forked after get it
    assert render_process.prepare() is converter
    assert "<strong>the page</strong>" in converter.to_html("**the page**")
