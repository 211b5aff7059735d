"""The Mail task against a real SMTP server, with a recording object standing in for the channel."""

import pytest

from relieve_app.contact.mail import render

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
        "id": 7,
        "emitter": "visitor@example.com",
        "recipient": "me@example.com",
        "subject": "Hello",
        "body": "**bold** text\r\n\r\n- one\r\n- two\r\n",
        "attempt": 1,
        **fields,
    }


@pytest.fixture(autouse=True)
def from_address(mail_settings):
    mail_settings.DEFAULT_FROM_EMAIL = FROM


def events(mail):
    return [(event, payload) for event, (payload,) in mail.channel.events]


def parts(message):
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


def test_render_keeps_the_source_as_text_and_markdown_as_html():
    text, html = render("# Title\r\n\r\n**bold** and *em*\r\n\r\n1. one\r\n2. two\r\n")
    assert text == "# Title\n\n**bold** and *em*\n\n1. one\n2. two\n"
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong> and <em>em</em>" in html
    assert "<li>one</li>" in html
    assert html.startswith("<!DOCTYPE html>")
    assert "<body>" in html


def test_sends_markdown_as_text_and_html(mail, smtp_sink):
    assert mail.send_mail(make_job()) is True
    (message,) = smtp_sink.wait_for(1)
    assert message.get_content_type() == "multipart/alternative"
    content = parts(message)
    assert content.keys() == {"text/plain", "text/html"}
    assert content["text/plain"].replace("\r\n", "\n") == "**bold** text\n\n- one\n- two\n"
    assert "<strong>bold</strong>" in content["text/html"]
    assert "<li>one</li>" in content["text/html"]


def test_headers_and_envelope(mail, smtp_sink):
    mail.send_mail(make_job(subject="Question about relieve"))
    (message,) = smtp_sink.wait_for(1)
    assert message["From"] == FROM
    assert message["To"] == "me@example.com"
    assert message["Reply-To"] == "visitor@example.com"
    assert message["Subject"] == "Question about relieve"
    assert smtp_sink.envelopes[0].mail_from == "noreply@example.com"
    assert smtp_sink.envelopes[0].rcpt_tos == ["me@example.com"]


def test_hostile_markup_reaches_the_recipient_inert(mail, smtp_sink):
    mail.send_mail(make_job(body=HOSTILE_BODY))
    html = parts(smtp_sink.wait_for(1)[0])["text/html"]
    for inert in ("<script", "alert", "javascript:", "data:", "<img", "evil.example", "onerror", "onclick"):
        assert inert not in html
    assert "style=" not in html
    assert "<iframe" not in html
    assert "tracker words" in html
    assert '<a href="https://example.com/" rel="nofollow noopener noreferrer">fine link</a>' in html


def test_success_is_an_info_event_with_the_id(mail, smtp_sink):
    assert mail.send_mail(make_job(id=41, attempt=2)) is True
    assert events(mail) == [("info", {"id": 41, "attempt": 2, "message": "Mail sent to me@example.com"})]


def test_refusal_is_an_error_event_with_the_smtp_code(mail, smtp_sink):
    smtp_sink.refuse_next(1)
    assert mail.send_mail(make_job(id=8)) is False
    ((event, payload),) = events(mail)
    assert event == "error"
    assert payload["id"] == 8
    assert payload["attempt"] == 1
    assert payload["code"] == 550
    assert payload["type"] == "SMTPDataError"
    assert "refused by sink" in payload["message"]
    assert smtp_sink.refused == 1

    assert mail.send_mail(make_job(id=9)) is True
    assert smtp_sink.sessions == 1


def test_one_connection_serves_many_mails(mail, smtp_sink):
    for number in range(5):
        assert mail.send_mail(make_job(id=number)) is True
    assert len(smtp_sink.wait_for(5)) == 5
    assert smtp_sink.sessions == 1
    assert [payload["id"] for _, payload in events(mail)] == [0, 1, 2, 3, 4]


def test_server_restarted_between_mails_is_reconnected_silently(mail, smtp_sink):
    assert mail.send_mail(make_job(id=1)) is True
    smtp_sink.stop()
    smtp_sink.start()
    assert mail.send_mail(make_job(id=2)) is True
    assert [event for event, _ in events(mail)] == ["info", "info"]
    assert len(smtp_sink.wait_for(2)) == 2
    assert smtp_sink.sessions == 2


def test_server_down_is_an_error_event_and_the_task_recovers(mail, smtp_sink):
    assert mail.send_mail(make_job(id=1)) is True
    smtp_sink.stop()
    assert mail.send_mail(make_job(id=2)) is False
    event, payload = events(mail)[-1]
    assert event == "error"
    assert payload["id"] == 2
    assert payload["type"] == "ConnectionRefusedError"
    assert payload["code"] is None

    smtp_sink.start()
    assert mail.send_mail(make_job(id=3)) is True
    assert events(mail)[-1] == ("info", {"id": 3, "attempt": 1, "message": "Mail sent to me@example.com"})
    assert [message["Subject"] for message in smtp_sink.wait_for(2)] == ["Hello", "Hello"]


def test_slow_server_is_an_error_without_a_second_send(mail, smtp_sink):
    mail.connection.timeout = 0.3
    smtp_sink.stall = 2
    assert mail.send_mail(make_job(id=5)) is False
    event, payload = events(mail)[-1]
    assert (event, payload["id"], payload["type"]) == ("error", 5, "SMTPServerDisconnected")
    assert "timed out" in payload["message"]
    assert smtp_sink.sessions == 1

    smtp_sink.stall = 0
    assert mail.send_mail(make_job(id=6)) is True


@pytest.mark.parametrize("field", ["subject", "emitter"])
def test_line_break_in_a_header_is_refused_without_a_crash(mail, smtp_sink, field):
    job = make_job(id=3, **{field: "visitor@example.com\r\nBcc: victim@example.com"})
    assert mail.send_mail(job) is False
    ((event, payload),) = events(mail)
    assert event == "error"
    assert payload["id"] == 3
    assert payload["type"] == "ValueError"
    assert payload["code"] is None

    assert mail.send_mail(make_job(id=4)) is True
    (message,) = smtp_sink.wait_for(1)
    assert message["Bcc"] is None
    assert smtp_sink.envelopes[0].rcpt_tos == ["me@example.com"]
