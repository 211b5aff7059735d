"""The Mail task: what each relieve child runs to turn one contact job into one sent mail.

The master hands a job over with `call("send_mail", job)`. Children never touch the database, so the
job carries everything: `{"id", "emitter", "recipient", "subject", "body", "attempt"}`. The outcome
goes back as an `info` or `error` event carrying the job's id, never as an exception: a call has no
caller to raise to, and the master needs the id to record the outcome.
"""

import contextlib
import os
import smtplib
import threading

from django.conf import settings
from django.core.mail import mailers

from relieve_app.conf import app_settings
from relieve_app.contact.message import ContactMessage
from relieve_app.contact.render import Renderer, render_once


def render(body):
    """Text part and HTML part (None when the body goes out as text only) of a Markdown body."""
    rendered = render_once(body)
    return rendered.text, rendered.html


def describe(exc):
    """Message and SMTP reply code of a failure, as an admin should read them on the outcome."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        address, (code, reply) = next(iter(exc.recipients.items()))
        return f"{address}: {code} {_text(reply)}", code
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}", exc.smtp_code
    return str(exc) or type(exc).__name__, None


def _text(reply):
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def connection_lost(exc):
    """Whether a failure means the kept connection is gone rather than the mail refused.

    smtplib's errors are OSErrors too; of those only a disconnection says the link itself broke.
    """
    if isinstance(exc, smtplib.SMTPException):
        return isinstance(exc, smtplib.SMTPServerDisconnected)
    return isinstance(exc, OSError)


def timed_out(exc):
    """smtplib turns a read timeout into a disconnection; the timeout stays as its context."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def setup_django():
    """A child starts as a bare interpreter: load the project's settings before the first mail."""
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        django.setup()


class Mail:
    """Sends the jobs of one child over one SMTP connection, opened on first use and kept."""

    def __init__(self):
        setup_django()
        self.channel = None
        # Django 6.1 deprecates get_connection() and EmailMessage(connection=...): the default mailer
        # is the backend itself, and holding on to it is what keeps its SMTP connection.
        self.connection = mailers.default
        self._lock = threading.Lock()  # the connection is not safe to share between calls
        # Markdown runs in a process of its own, killed past its deadline: no body can hold this child.
        self.renderer = Renderer(timeout=app_settings.RELIEVE_RENDER_TIMEOUT)

    def set_channel(self, channel):
        self.channel = channel

    def start(self, *arguments):
        """Called once the child is up: the renderer imports Markdown while no mail waits for it."""
        self.renderer.start()

    def send_mail(self, job):
        """Send one job's mail and report it; True when the server accepted it."""
        report = {"id": job["id"], "attempt": job["attempt"]}
        try:
            mail, rendered = self.build_message(job)
            self.deliver(mail)
        except Exception as exc:
            message, code = describe(exc)
            self._emit("error", {**report, "message": message, "code": code, "type": type(exc).__name__})
            return False
        self._emit("info", {**report, **self.sent_report(job, rendered)})
        return True

    def build_message(self, job):
        """The mail of a job; without an HTML part when the body could not be rendered in time."""
        rendered = self.renderer.render(job["body"])
        message = ContactMessage(
            subject=job["subject"],
            body=rendered.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[job["recipient"]],
            reply_to=[job["emitter"]],
        )
        if rendered.html is not None:
            message.attach_alternative(rendered.html, "text/html")
        return message, rendered

    @staticmethod
    def sent_report(job, rendered):
        message = f"Mail sent to {job['recipient']}"
        if rendered.fallback is None:
            return {"message": message}
        return {"message": f"{message} as text only: {rendered.fallback}", "text_only": rendered.fallback}

    def close(self):
        self.renderer.close()
        self.close_connection()

    def close_connection(self):
        with contextlib.suppress(OSError):  # smtplib's errors included: a dead link may fail to QUIT
            self.connection.close()

    def deliver(self, message):
        """Send on the kept connection; when the server dropped it, reconnect and try once more.

        A timeout is no drop: the server is alive but slow and may still deliver what it was given,
        so the mail is not sent again here (and no second wait holds the child); the master retries.
        """
        with self._lock:
            try:
                self._send(message)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                self.close_connection()
                if timed_out(exc):
                    raise
                self._send(message)

    def _send(self, message):
        self.connection.open()  # opened here, send_messages() leaves it open for the next job
        self.connection.send_messages([message])

    def _emit(self, event, payload):
        if self.channel is not None:
            self.channel.send(event, payload)
