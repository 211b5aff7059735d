"""What a visitor is told about their message, in plain words, on the thank-you page and in JSON.

Only the state and a reason a visitor can act on: never the message, the addresses or the raw SMTP
reply, which may name the site's own mail servers.
"""

import re

from relieve_app.models import MailOutcome

Status = MailOutcome.Status

TEXT = {
    Status.QUEUED: "Your message is queued: it will be sent in a moment.",
    Status.SENDING: "Your message is being sent.",
    Status.RETRYING: "The mail server did not take your message yet; we are trying again.",
    Status.SENT: "Your message has been sent. We will reply by email.",
    Status.FAILED: (
        "Your message could not be sent: {reason} It is kept, and the site's owner can send it again."
    ),
}
FINAL = {Status.SENT, Status.FAILED}
SMTP_CODE = re.compile(r"(?:^|:\s)([245])\d\d\b")


def describe(reference, status, error=""):
    """The state of one message as the page and the status endpoint give it."""
    return {
        "reference": reference,
        "status": status,
        "final": status in FINAL,
        "text": TEXT.get(status, TEXT[Status.QUEUED]).format(reason=failure_reason(error)),
    }


def of(outcome):
    return describe(outcome.reference, outcome.status, outcome.error)


def failure_reason(error):
    """A kept error in words: a 5xx reply was a refusal, a 4xx one a delay; else no server answered."""
    match = SMTP_CODE.search(error or "")
    if match and match[1] == "5":
        return "the mail server refused it."
    if match and match[1] == "4":
        return "the mail server kept asking us to try later."
    return "we could not reach the mail server."
