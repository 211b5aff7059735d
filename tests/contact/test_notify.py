"""The owner's notice of a failed message, sent to a real SMTP server by the master's own mailer."""

import asyncio

from relieve_app.contact import notify

JOB = {
    "id": 12,
    "emitter": "visitor@example.org",
    "recipient": "me@example.com",
    "subject": "Quote request",
    "body": "Hello,\nplease send me a quote for the work.",
    "attempt": 5,
}


def test_the_summary_quotes_the_message_and_answers_the_visitor(mail_settings, smtp_sink):
    mail_settings.RELIEVE_FAILURE_NOTIFY = "owner@example.net"
    assert notify.send_summary(JOB, "550 mailbox unavailable (SMTP 550)") == "summary"
    (mail,) = smtp_sink.wait_for(1)
    assert mail["To"] == "owner@example.net" and mail["Reply-To"] == "visitor@example.org"
    text = mail.get_content()
    assert "after 5 attempts" in text and "550 mailbox unavailable" in text
    assert "> please send me a quote for the work." in text
    assert "/admin/relieve_app/mailoutcome/12/change/" in text


def test_a_refused_summary_is_followed_by_a_short_notice(mail_settings, smtp_sink):
    mail_settings.RELIEVE_FAILURE_NOTIFY = "owner@example.net"
    smtp_sink.refuse_next(1)
    assert notify.send_summary(JOB, "552 message content rejected") == "notice"
    (mail,) = smtp_sink.wait_for(1)
    assert smtp_sink.refused == 1
    text = mail.get_content()
    assert "please send me a quote" not in text and "kept in the admin" in text


def test_nobody_is_told_when_the_setting_is_empty(mail_settings, smtp_sink):
    mail_settings.RELIEVE_FAILURE_NOTIFY = ""
    recorded = []
    asyncio.run(notify.failed(JOB, "550", lambda *args: recorded.append(args)))
    assert recorded == [] and smtp_sink.messages == []


def test_an_unreachable_mail_server_is_recorded_not_raised(mail_settings, smtp_sink):
    mail_settings.RELIEVE_FAILURE_NOTIFY = "owner@example.net"
    smtp_sink.stop()
    recorded = []
    asyncio.run(notify.failed(JOB, "550", lambda *args: recorded.append(args)))
    (_fn, task, event, payload, outcome_id) = recorded[0]
    assert (task, event, outcome_id) == ("master", "notify", 12)
    assert payload["sent"] is False and payload["message"]
