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

import markdown
import nh3
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

HTML_DOCUMENT = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n<body>\n{}\n</body></html>\n'

# The body is written by any visitor: only markup that cannot run, load or style anything survives.
SANITISER = nh3.Cleaner(
    tags={
        *("p", "br", "strong", "em", "b", "i", "code", "pre", "blockquote", "hr", "a"),
        *("ul", "ol", "li", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "sup", "sub", "abbr"),
    },
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "abbr": {"title"}, "ol": {"start"}},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="nofollow noopener noreferrer",
)


class _ImagesAsText(Treeprocessor):
    """A remote image tells its owner when and where the mail was read: keep its words only."""

    def run(self, root):
        for element in root.iter("img"):
            alt = element.get("alt", "")
            element.attrib.clear()
            element.tag, element.text = "span", alt  # span is not in the safelist: its text stays


class ImagesAsText(Extension):
    def extendMarkdown(self, md):
        md.treeprocessors.register(_ImagesAsText(md), "images_as_text", 15)  # after "inline" (20)


def render(body):
    """Plain text and sanitised HTML for a Markdown body; the text part is the source itself."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    fragment = markdown.markdown(text, extensions=["extra", "sane_lists", ImagesAsText()])
    return text, HTML_DOCUMENT.format(SANITISER.clean(fragment))


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

    def set_channel(self, channel):
        self.channel = channel

    def send_mail(self, job):
        """Send one job's mail and report it; True when the server accepted it."""
        report = {"id": job["id"], "attempt": job["attempt"]}
        try:
            self.deliver(self.build_message(job))
        except Exception as exc:
            message, code = describe(exc)
            self._emit("error", {**report, "message": message, "code": code, "type": type(exc).__name__})
            return False
        self._emit("info", {**report, "message": f"Mail sent to {job['recipient']}"})
        return True

    def build_message(self, job):
        text, html = render(job["body"])
        message = EmailMultiAlternatives(
            subject=job["subject"],
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[job["recipient"]],
            reply_to=[job["emitter"]],
        )
        message.attach_alternative(html, "text/html")
        return message

    def close(self):
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
                self.close()
                if timed_out(exc):
                    raise
                self._send(message)

    def _send(self, message):
        self.connection.open()  # opened here, send_messages() leaves it open for the next job
        self.connection.send_messages([message])

    def _emit(self, event, payload):
        if self.channel is not None:
            self.channel.send(event, payload)
