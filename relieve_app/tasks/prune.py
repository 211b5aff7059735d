"""Pruning finished task results, as a task a RELIEVE_SCHEDULE entry runs and as ``prunetasks``.

RELIEVE_SCHEDULE = {"prune": {"task": "relieve_app.tasks.prune.prune_results", "cron": "0 4 * * *"}}
"""

import re
from datetime import timedelta

from django.tasks import task
from django.utils import timezone

from relieve_app.conf import app_settings, backend_alias
from relieve_app.models import TaskEvent, TaskRecord

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text):
    """``"7d"`` as a timedelta; ValueError saying how to write one."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not match:
        raise ValueError(f"{text!r}: write a number and a unit, like 7d, 12h, 30m or 2w")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def old_results(older_than):
    cutoff = timezone.now() - parse_age(older_than)
    return TaskRecord.objects.filter(status__in=TaskRecord.FINISHED, finished_at__lt=cutoff)


def prune(older_than):
    """Delete finished results older than ``older_than``, with their events; returns how many."""
    old = old_results(older_than)
    # Events of a contact message stay with its MailOutcome; the others go with their task.
    TaskEvent.objects.filter(task_result__in=old, outcome__isnull=True).delete()
    return old.delete()[1].get(TaskRecord._meta.label, 0)


@task(backend=backend_alias())
def prune_results(older_than=None):
    """Delete finished task results older than ``older_than`` (RELIEVE_KEEP_RESULTS by default)."""
    older_than = older_than or app_settings.RELIEVE_KEEP_RESULTS
    return {"deleted": prune(older_than), "older_than": older_than}
