"""No queue at all: the view renders and sends the mail before it answers."""

from .base import System

IN_VIEW = System(
    name="send_mail-in-view",
    label="send_mail in the view",
    enqueue="bench.peerbench.jobs.deliver_outcome",
    has_workers=False,
    note="the gunicorn workers send; a POST waits for SMTP",
)
