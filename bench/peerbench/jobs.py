"""The one send every system performs, and how each peer is handed a saved MailOutcome.

`deliver(outcome_id)` reads the row, renders and sends as relieve's children do, through the
contact mail task's own function (one `Mail` per process, keeping its SMTP connection open), then
marks the row sent.
"""

from django.db.models import F
from django.tasks import task
from django.utils import timezone

from relieve_app.contact.mailtask import job_of, send_contact_mail
from relieve_app.contact.render import render_once
from relieve_app.models import MailOutcome


class DeliveryFailed(Exception):
    """The SMTP server refused the mail; the peer's own retry policy takes over."""


def deliver(outcome_id):
    outcome = MailOutcome.objects.get(pk=outcome_id)
    try:
        send_contact_mail.call(job_of(outcome))
    except Exception as exc:
        raise DeliveryFailed(f"outcome {outcome_id} was refused: {exc}") from exc
    now = timezone.now()
    MailOutcome.objects.filter(pk=outcome_id).update(
        status=MailOutcome.Status.SENT, attempts=F("attempts") + 1, sent_at=now, updated_at=now
    )


@task
def send_outcome(outcome_id):
    """The Django Tasks form of the send: the same function whatever TASKS names."""
    deliver(outcome_id)


# hand-overs, called by the view on commit with the saved row --------------------


def deliver_outcome(outcome):
    deliver(outcome.pk)


def enqueue_task(outcome):
    send_outcome.enqueue(outcome.pk)


def enqueue_django_q(outcome):
    from django_q.tasks import async_task

    async_task("bench.peerbench.jobs.deliver", outcome.pk)


def enqueue_post_office(outcome):
    """post_office keeps the finished mail in its own row, so the rendering happens here."""
    from django.conf import settings
    from post_office import mail

    rendered = render_once(outcome.body)
    text, html = rendered.text, rendered.html
    mail.send(
        [outcome.recipient],
        settings.DEFAULT_FROM_EMAIL,
        subject=outcome.subject,
        message=text,
        html_message=html,
        headers={"Reply-To": outcome.emitter},
        priority="medium",
    )
