"""Tells the site owner when a contact message ends ``failed``, by the master's own mail, not a child's.

The visitor's message is in the database either way; this mail makes sure someone knows. It leaves
from the master through Django's default mailer on a connection of its own. If the server refuses
the full summary (its quoted body may be what the server objects to), a short notice without the
body, pointing to the admin, is tried once.
"""

import asyncio
import logging
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from relieve_app.conf import app_settings
from relieve_app.models import MailOutcome, TaskEvent

log = logging.getLogger(__name__)


def summary(job, error, *, with_body=True):
    tries = f"{job['attempt']} attempt{'' if job['attempt'] == 1 else 's'}"
    lines = [
        f"A message sent through the contact page could not be delivered after {tries}.",
        "",
        f"From:    {job['emitter']}",
        f"Subject: {job['subject']}",
        f"Error:   {error}",
        f"Admin:   /admin/relieve_app/mailoutcome/{job['id']}/change/",
        "",
    ]
    if with_body:
        lines += ["The message:", "", *(f"> {line}" for line in job["body"].splitlines()), ""]
    else:
        lines += ["The message is kept in the admin at the address above.", ""]
    lines.append("Reply to this mail to answer the visitor.")
    return EmailMessage(
        subject=f"A contact message could not be delivered (#{job['id']})",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[app_settings.RELIEVE_FAILURE_NOTIFY],
        reply_to=[job["emitter"]],
    )


def send_summary(job, error):
    """Send the summary, or the short notice if the summary is refused; returns which one went."""
    try:
        summary(job, error).send()
        return "summary"
    except smtplib.SMTPResponseException as exc:
        log.warning(
            "the summary of failed outcome %s was refused (%s); sending a short notice", job["id"], exc
        )
    summary(job, error, with_body=False).send()
    return "notice"


async def failed(job, error, record):
    """Send the owner a mail about a message that failed for good; ``record`` gets a ``notify`` event."""
    recipient = app_settings.RELIEVE_FAILURE_NOTIFY
    if not recipient:
        return
    try:
        sent = await asyncio.to_thread(send_summary, job, error)
    except Exception as exc:
        log.error("could not tell %s that outcome %s failed: %s", recipient, job["id"], exc)
        payload = {"id": job["id"], "to": recipient, "sent": False, "message": str(exc)[:500]}
    else:
        log.info("told %s that outcome %s failed (%s)", recipient, job["id"], sent)
        payload = {"id": job["id"], "to": recipient, "sent": sent}
    record(add_notice, "master", "notify", payload, job["id"])


def add_notice(task_name, event, payload, outcome_id):
    """The ``notify`` event, linked to its message unless that was deleted meanwhile."""
    if not MailOutcome.objects.filter(pk=outcome_id).exists():
        outcome_id = None
    TaskEvent.objects.create(
        task_name=task_name, event=event, payload=payload, outcome_id=outcome_id, created_at=timezone.now()
    )
