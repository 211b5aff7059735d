"""The live state of the pool, as `relievestatus`, the admin's "Relieve pool" page and its JSON show it.

The master answers the socket's ``status`` operation itself (``tasks/master/status.py``); ``collect``
asks it over the socket and adds what the database knows.
"""

from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from relieve_app.models import MailOutcome, TaskRecord
from relieve_app.tasks import backpressure, client, owners
from relieve_app.tasks import progress as task_progress
from relieve_app.tasks.pausing import paused_queues

RUNNING_SHOWN = 50  # running tasks listed, the longest running first


def collect(timeout=1.0, now=None, socket_path=None):
    """Everything a status display shows; ``masters`` is empty when none answers (``error`` says why)."""
    masters, error = [], None
    try:
        masters.append(client.request("status", timeout=timeout, socket_path=socket_path))
    except client.ClientError as exc:
        error = str(exc)
    try:
        counts = {**outcome_counts(now), **tasks_now()}
        counts["paused"] = sorted(paused_queues())  # the database's word, even with no master up
    except DatabaseError as exc:  # a health check still answers for the master when the database is down
        counts = {"checked_at": (now or timezone.now()).isoformat(), "outcomes": None, "recent": None}
        counts.update(paused=[], running_tasks=[], fullness={})
        error = f"{error}; database: {exc}" if error else f"database: {exc}"
    return {"masters": masters, "error": error, **counts}


def tasks_now():
    """The running tasks with their progress, and how full each bounded queue is (RELIEVE_MAX_READY)."""
    rows = list(
        TaskRecord.objects.filter(status=TaskRecord.Status.RUNNING)
        .order_by("last_attempted_at", "pk")
        .values_list("pk", "task_path", "queue_name", "last_attempted_at", "owner")[:RUNNING_SHOWN]
    )
    reported = task_progress.of_many(pk for pk, *_rest in rows)
    running = []
    for pk, path, queue, since, owner in rows:
        done = reported.get(pk)
        running.append(
            {
                "id": pk,
                "task": path,
                "queue": queue,
                "since": since.isoformat() if since else None,
                "progress": {**done, "at": done["at"].isoformat()} if done else None,
                # None, or in words: a child finishing it for a master that stopped (tasks/failsafe.py)
                "detached": owners.describe(owner) if owners.is_detached(owner) else None,
            }
        )
    return {"running_tasks": running, "fullness": backpressure.fullness()}


def outcome_counts(now=None):
    """Rows by status, and what was delivered or failed for good in the last minute and hour."""
    now = now or timezone.now()
    by_status = dict.fromkeys(MailOutcome.Status.values, 0)
    for row in MailOutcome.objects.order_by().values("status").annotate(n=Count("id")):
        by_status[row["status"]] = row["n"]
    recent = {}
    for label, span in (("minute", timedelta(minutes=1)), ("hour", timedelta(hours=1))):
        since = now - span
        recent[label] = {
            "delivered": MailOutcome.objects.filter(status="sent", sent_at__gte=since).count(),
            "failed": MailOutcome.objects.filter(status="failed", updated_at__gte=since).count(),
        }
    return {"checked_at": now.isoformat(), "outcomes": by_status, "recent": recent}


def master_alive(timeout=0.3):
    """Whether a master answers on RELIEVE_SOCKET now; for pages that only need yes or no."""
    try:
        client.request("ping", timeout=timeout)
    except client.ClientError:
        return False
    return True
