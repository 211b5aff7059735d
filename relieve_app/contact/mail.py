"""One child's sending side: the mail of a contact job, and the SMTP connection it keeps.

``mailtask.send_contact_mail`` keeps one ``Mail`` per child and sends each job through it; the job
carries the whole message (``{"emitter", "recipient", "subject", "body"}``), so no row is read here.
"""

import contextlib
import email.policy
import functools
import smtplib
import threading

from django.conf import settings
from django.core.mail import mailers

from relieve_app.conf import app_settings
from relieve_app.contact.message import ContactMessage
from relieve_app.contact.render import HTML_DOCUMENT, Rendered, Renderer
from relieve_app.pool import warm_up
from relieve_app.tasks.runner import setup_django

# What rehearse() renders and composes: the usual shapes of a contact mail, nothing from a visitor.
REHEARSAL_JOB = {"emitter": "visitor@example.org", "recipient": "owner@example.com"}
REHEARSAL_BODY = "Hello, a *question* about **the page**:\n\n- one\n- two, [a link](https://example.org/)\n"


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


def remember_addresses(backend):
    """Django's SMTP backend parses From and each recipient with the email package's full header
    parser on every send, about 0.13 ms each; a contact mail's From and To are the same each time, so
    each child parses each once. What does not parse is not remembered: it fails every time."""
    parse = getattr(backend, "prep_address", None)
    if parse is None:  # not an SMTP backend: it parses no address
        return
    remembered = functools.lru_cache(maxsize=256)(parse)

    def prep_address(address, force_ascii=True):
        if isinstance(address, str):
            return remembered(address, force_ascii)
        return parse(address, force_ascii)

    backend.prep_address = prep_address


def compose(job, rendered):
    """The message of a job whose body is rendered: the text part, and the HTML part if there is one."""
    message = ContactMessage(
        subject=job["subject"],
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[job["recipient"]],
        reply_to=[job["emitter"]],
    )
    if rendered.html is not None:
        message.attach_alternative(rendered.html, "text/html")
    return message


@warm_up.register
def rehearse():
    """A sample mail rendered and composed, as far as the bytes the SMTP backend would send, and not
    sent: run before the master's zygote forks (``relieve_app.pool.warm_up``), so that the mail
    children and their renderer share this code warm instead of each copying its pages. The
    renderer's converter is built here too (``render_process.prepare``); Markdown is imported here
    only, not by the web process that imports this module to hand mails over."""
    from relieve_app.contact import render_process

    converter = render_process.prepare()
    for n in range(warm_up.ROUNDS):
        rendered = Rendered(REHEARSAL_BODY, HTML_DOCUMENT.format(converter.to_html(REHEARSAL_BODY)))
        message = compose({**REHEARSAL_JOB, "subject": f"Rehearsal {n}"}, rendered)
        message.message(policy=email.policy.SMTP).as_bytes()


class Mail:
    """Sends the jobs of one child over one SMTP connection, opened on first use and kept."""

    def __init__(self):
        setup_django()
        # Django 6.1 deprecates get_connection() and EmailMessage(connection=...): the default mailer
        # is the backend itself, and holding on to it is what keeps its SMTP connection.
        self.connection = mailers.default
        remember_addresses(self.connection)
        self._lock = threading.Lock()  # the connection is not safe to share between calls
        # Markdown runs in a process of its own, killed past its deadline: no body can hold this child.
        self.renderer = Renderer(timeout=app_settings.RELIEVE_RENDER_TIMEOUT)

    def start(self, *arguments):
        """Called once the child is up: the renderer imports Markdown while no mail waits for it."""
        self.renderer.start()

    def build_message(self, job):
        """The mail of a job; without an HTML part when the body could not be rendered in time."""
        rendered = self.renderer.render(job["body"])
        return compose(job, rendered), rendered

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
