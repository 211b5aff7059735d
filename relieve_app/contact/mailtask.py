"""The contact mail as a ``django.tasks`` task, run in the master's children on the "mail" queue
(CONTACT_MAIL_QUEUE; the backend's "default" queue in a project whose TASKS lists no "mail").

The job carries the whole message, so sending needs no database. Each child keeps one ``Mail``
and with it one SMTP connection across jobs. A refusal the server means (5xx) fails the task at
once; anything temporary (connection refused or dropped, a timeout, 4xx) asks to be retried
later with a growing delay.
"""

import functools

from django.tasks import task

from relieve_app.conf import backend_alias, contact_mail_queue
from relieve_app.contact.mail import Mail, describe
from relieve_app.tasks.retry import RetryLater


class MailRefused(Exception):
    """The SMTP server refused the message for good (5xx): sending it again would not help."""


@functools.cache
def kept_mail():
    """This child's Mail, made on the first job: its connection stays open for the next ones."""
    mail = Mail()
    mail.start()
    return mail


def job_of(outcome):
    """The job of a stored message: what the task needs, all of it, so the child reads no row."""
    return {field: getattr(outcome, field) for field in ("emitter", "recipient", "subject", "body")}


@task(queue_name=contact_mail_queue(), backend=backend_alias())
def send_contact_mail(job):
    """Send one contact message: ``{"emitter", "recipient", "subject", "body"}``."""
    mail = kept_mail()
    try:
        message, rendered = mail.build_message(job)
        mail.deliver(message)
    except Exception as exc:
        message, code = describe(exc)
        text = f"{message} (SMTP {code})" if code else message
        if code is not None and 500 <= code < 600:
            raise MailRefused(text) from exc
        raise RetryLater(text) from exc
    return Mail.sent_report(job, rendered)
